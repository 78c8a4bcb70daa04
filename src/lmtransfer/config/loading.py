"""Reading a run config: YAML through a safe loader, with the line of every key, and overrides
(``section.field=value`` strings from the command line, or a mapping and keyword arguments from Python);
then ``build`` validates and resolves it, and a compare section's variants are each checked at once.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lmtransfer.config.build import build, set_dotted
from lmtransfer.config.schema import RunConfig
from lmtransfer.config.source import ConfigSource
from lmtransfer.config.variants import bind_variants
from lmtransfer.core.errors import ConfigError, shown
from lmtransfer.core.text import read_bytes


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no python/* tags), whose bad values come as YAML errors with a line.

    Plain SafeLoader raises a bare ValueError for ``2001-13-45`` or a 5000-digit int, KeyError for
    ``!!bool x``, IndexError for ``!!int ''``, AttributeError for ``!!timestamp x``.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            value = node.value if isinstance(node.value, str) else ""
            value = value if len(value) <= 40 else value[:37] + "..."
            problem = f"{value!r} cannot be read as {node.tag.rpartition(':')[2]}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def _yaml_error(exc: Exception, text: str, path: str | Path, field: str | None = None) -> ConfigError:
    """A YAML library error (or RecursionError) as a one-line ConfigError with the line it points at, if any.
    ``field`` is given for a command-line override, which has no lines."""
    line = None
    if isinstance(exc, RecursionError):
        problem = "nested too deeply"
    elif isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        problem = f"unacceptable character #x{exc.character:04x} ({exc.reason})"
        line = text.count("\n", 0, exc.position) + 1
    else:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
    if field is not None:  # a command-line override has no lines
        line = None
    return ConfigError(f"not valid YAML: {shown(problem)}", path=path, line=line, field=field)


def _key_lines(node: yaml.Node) -> dict[str, int]:
    """Map dotted keys of a composed YAML mapping to 1-based line numbers.

    Each node is visited once: following every alias of a node that aliases repeat can take exponential
    time ('billion laughs'); a key reached only through an alias falls back to its section's line.
    """
    lines: dict[str, int] = {}
    queue, seen = deque([(node, "")]), set()
    while queue:  # breadth first, so that of two equal keys the later one wins, as in the loaded data
        current, prefix = queue.popleft()
        if not isinstance(current, yaml.MappingNode) or id(current) in seen:
            continue
        seen.add(id(current))
        for key_node, value_node in current.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            queue.append((value_node, key + "."))
    return lines


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError("an override must look like section.field=value", path="command line", field=shown(item))
    try:
        return key.strip(), yaml.load(raw, Loader=_SafeLoader) if raw.strip() else None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _yaml_error(exc, raw, "command line", field=shown(item)) from None


class _Source(ConfigSource):
    """A config's source where some overrides came from Python (a mapping, keyword arguments): an error about
    one of those names it as an override, not as the command line."""

    def __init__(self, path: Path | None, lines: dict[str, int], overrides: dict[str, str], python: set[str]) -> None:
        super().__init__(path, lines, overrides)
        self.python = python

    def error(self, field: str, message: str) -> ConfigError:
        found = super().error(field, message)
        if found.path == "command line" and (found.field or "").partition("=")[0] in self.python:
            return ConfigError(found.message, path="overrides", field=found.field)
        return found


def _overrides(
    overrides: Sequence[str] | Mapping[str, Any], fields: dict[str, Any]
) -> Iterator[tuple[str, Any, str, bool]]:
    """(dotted key, value, the value as an error shows it, whether it came from Python) of each override, in
    the order they apply."""
    if isinstance(overrides, str):
        raise ConfigError("a list of section.field=value strings or a mapping, not one string", path="overrides")
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
    else:
        for item in overrides:
            key, value = _parse_override(item)
            yield key, value, item.partition("=")[2], False
        pairs = []
    for key, value in [*pairs, *((name.replace("__", "."), value) for name, value in fields.items())]:
        if not isinstance(key, str) or not key.strip():
            raise ConfigError("an override's key must be a dotted field name", path="overrides", field=shown(str(key)))
        yield key.strip(), value, shown(str(value)), True


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    **fields: Any,
) -> RunConfig:
    """Read a YAML run config (safe loader), apply overrides, validate.

    ``overrides`` are ``section.field=value`` strings as ``--set`` takes them (the value read as YAML), or a
    mapping of dotted fields to Python values (``{"head.type": "mlp"}``); keyword arguments are the same
    with ``__`` for the dot (``head__type="mlp"``, ``strategy="finetune"``) and come last. An error about an
    override names it.
    """
    data: dict[str, Any] = {}
    lines: dict[str, int] = {}
    src_path = None if path is None else Path(path)
    if src_path is not None:
        raw = read_bytes(src_path, ConfigError, "config file")
        try:
            text = raw.decode("utf-8")  # PyYAML skips a leading byte-order mark itself
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"not valid UTF-8 ({exc.reason})", path=src_path, line=line) from None
        try:
            node = yaml.compose(text, Loader=_SafeLoader)
            loaded = yaml.load(text, Loader=_SafeLoader)
        except (yaml.YAMLError, RecursionError) as exc:
            raise _yaml_error(exc, text, src_path) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("the top level must be a mapping of sections", path=src_path, line=1)
        data = loaded or {}
        lines = _key_lines(node) if node is not None else {}
    raw_overrides: dict[str, str] = {}
    python: set[str] = set()
    for key, value, raw, typed in _overrides(overrides, fields):
        set_dotted(data, key, value)
        raw_overrides[key] = raw
        (python.add if typed else python.discard)(key)
    source = _Source(src_path, lines, raw_overrides, python)
    config = build(data, source)
    if config.compare is not None:  # every variant is checked now, not halfway through a comparison
        bind_variants(config, data, source)
    return config
