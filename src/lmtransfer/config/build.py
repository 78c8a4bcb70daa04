"""From data (a mapping, as YAML gives it) to a resolved RunConfig: the schema checks what is written,
``resolve`` the rest; every error names its field, and its line where the data came from a file."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from lmtransfer.config.resolve import resolve
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.source import ConfigSource, located
from lmtransfer.core.errors import ConfigError, shown


def build(data: dict[str, Any], source: ConfigSource | None = None) -> RunConfig:
    """The resolved config of ``data``; a ConfigError (located by ``source``) when it does not validate."""
    try:
        written = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise located(source, *validation_field(exc)) from None
    config = resolve(written, source)
    config._source = source
    return config


def changed(config: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """A new resolved config: ``config`` with the dotted ``changes`` made (the config itself stays as it is)."""
    data = config.model_dump(mode="json", exclude={"compare"})
    for key, value in changes.items():
        set_dotted(data, key, value)
    return build(data, config._source).model_copy(update={"compare": config.compare})


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for key ``a.b``, making sections as needed."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{shown(part)}' is not a section", path="command line", field=shown(key))
        node = child
    node[last] = value


def validation_field(exc: ValidationError) -> tuple[str, str]:
    """The field (dotted) and message of a run config's first validation error; a section's own check
    names its field at the start of its message ("compare.variants: ...")."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
    message = first["msg"].removeprefix("Value error, ")
    named = re.match(r"([a-z_]+(?:\.[a-z_]+)*): (.*)", message)
    if (
        named
        and named.group(1).split(".")[0] in RunConfig.model_fields
        and (not field or named.group(1).startswith(f"{field}."))
    ):
        field, message = named.groups()
    return field or "(top level)", message
