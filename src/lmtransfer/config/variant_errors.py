"""Errors in a comparison's variants, named where the user wrote them: the variant's `set` key (its file
and line), its search's space, or the command line when the variants came from ``--set``."""

from __future__ import annotations

from pathlib import Path

import yaml

from lmtransfer.config.compare_schema import VariantConfig
from lmtransfer.config.schema import RunConfig
from lmtransfer.core.errors import ConfigError, shown


def search_error(config: RunConfig, index: int, variant: VariantConfig, field: str, message: str) -> ConfigError:
    """A searched key that does not make a valid run, named where its search is written."""
    where = f"compare.variants[{index}].search.space" if variant.search else "compare.search.space"
    source = config.compare._source if config.compare else None
    text = f"variant '{variant.name}': a searched value: {shown(message)}"
    if source is None or source.path is None:
        return ConfigError(text, field=shown(f"{where}.{field}"))
    return ConfigError(text, path=source.path, field=shown(f"{where}.{field}"))


def variant_error(config: RunConfig, index: int, variant: VariantConfig, field: str, message: str) -> ConfigError:
    """'file: line N: field 'compare.variants[i].set.F': variant 'name': message', the line that of the set key
    when the variant sets that field, else of the variant itself."""
    compare = config.compare
    assert compare is not None
    source = compare._source
    key = next((k for k in variant.set if k == field or field.startswith(f"{k}.") or k.startswith(f"{field}.")), None)
    where = f"compare.variants[{index}].set.{key}" if key else f"compare.variants[{index}]"
    inherited = "" if key else f"{field} (from the base run): "
    message = f"variant '{variant.name}': {inherited}{shown(message)}"
    if source is None or source.path is None:
        return ConfigError(message, field=shown(where))
    if any(k in ("compare", "compare.variants") for k in source.overrides):  # the variants came from --set
        return ConfigError(message, path="command line", field=shown(where))
    line = _variant_line(source.path, index, key)
    return ConfigError(message, path=source.path, line=line, field=shown(where))


def _variant_line(path: Path, index: int, key: str | None) -> int | None:
    """1-based line of ``compare.variants[index].set[key]`` (or of the variant) in the YAML file."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
    item = _child(_child(node, "compare"), "variants")
    if not isinstance(item, yaml.SequenceNode) or index >= len(item.value):
        return None
    item = item.value[index]
    found = _child(item, "set", key_node=True) if key is None else None
    settings = _child(item, "set")
    if key is not None and isinstance(settings, yaml.MappingNode):
        found = next((k for k, _ in settings.value if k.value == key), None)
    return (found or item).start_mark.line + 1


def _child(node: yaml.Node | None, name: str, key_node: bool = False) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if k.value == name:
            return k if key_node else v
    return None
