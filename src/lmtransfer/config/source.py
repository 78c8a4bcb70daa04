"""Where a config's values came from (a YAML file with the line of every key, command-line overrides), so
that an error about a field names the file and line, or the override, that set it."""

from __future__ import annotations

from pathlib import Path

from lmtransfer.core.errors import ConfigError, shown


class ConfigSource:
    """A YAML file's path and key lines (dotted key -> 1-based line), and the raw ``--set`` overrides."""

    def __init__(self, path: Path | None, lines: dict[str, int], overrides: dict[str, str]) -> None:
        self.path, self.lines, self.overrides = path, lines, overrides

    def error(self, field: str, message: str) -> ConfigError:
        message = shown(message)
        # the override that set this field, or a section holding it (``nosuch.x=1`` makes section ``nosuch``)
        related = (k for k in self.overrides if k.startswith(f"{field}.") or field.startswith(f"{k}."))
        override = field if field in self.overrides else next(related, None)
        if override is not None:
            return ConfigError(message, path="command line", field=shown(f"{override}={self.overrides[override]}"))
        key = field
        while key and key not in self.lines:  # fall back to the enclosing section's line
            key = key.rpartition(".")[0]
        return ConfigError(message, path=self.path, line=self.lines.get(key), field=shown(field))


def located(source: ConfigSource | None, field: str, message: str) -> ConfigError:
    """A ConfigError for ``field``, located by ``source`` where there is one."""
    return ConfigError(message, field=field) if source is None else source.error(field, message)
