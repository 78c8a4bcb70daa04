"""Tables held in memory, as a run's data: a pandas DataFrame, a ``datasets.Dataset``, a mapping of column
names to lists, a list of row dicts, or a ``(texts, labels)`` pair of lists.

Such a table reaches a split through the same checks as a file (``data.tables.read_records``): this module
only turns it into ``(row, {column: value})`` records, rows counted from 0. A run's config cannot point at
it, so it names it by its fingerprint, ``memory:<16 hex digits>``, as ``data.train`` (and ``dev``, ``test``);
``held`` lends the tables to whatever reads the config within its block (``tables.load_splits`` asks
``table_for``), and the saved config says where the data came from and which data it was.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from lmtransfer.core.errors import DataError, LmtError

PREFIX = "memory:"
_HELD: ContextVar[dict[str, Any] | None] = ContextVar("lmtransfer_held_tables", default=None)
_KINDS = "a pandas DataFrame, a datasets.Dataset, a mapping of columns, a list of row dicts or (texts, labels)"


def columns(table: Any, text_column: str = "text", label_column: str | None = "label") -> dict[str, list]:
    """The table as {column: values}, with plain Python values (numpy scalars unwrapped, a ``datasets``
    class label as its name); ``(texts, labels)`` fills the config's text and label columns."""
    if hasattr(table, "column_names") and hasattr(table, "features"):  # a datasets.Dataset
        found = {str(name): list(table[name]) for name in table.column_names}
        for name, feature in table.features.items():
            names = getattr(feature, "names", None)
            if names:
                found[str(name)] = [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in found[name]]
        return found
    if hasattr(table, "columns") and hasattr(table, "to_dict"):  # a pandas DataFrame
        return {str(name): table[name].tolist() for name in table.columns}
    if isinstance(table, Mapping):
        return {str(name): _plain(values, name) for name, values in table.items()}
    if isinstance(table, tuple) and len(table) == 2 and label_column is not None:
        return {text_column: _plain(table[0], text_column), label_column: _plain(table[1], label_column)}
    if isinstance(table, Sequence) and not isinstance(table, str) and all(isinstance(r, Mapping) for r in table):
        names = list(dict.fromkeys(str(name) for row in table for name in row))
        return {name: [row.get(name) for row in table] for name in names}
    raise DataError(f"a table in memory must be {_KINDS}, not {type(table).__name__}", path="data")


def _plain(values: Any, name: Any) -> list:
    if hasattr(values, "tolist"):  # a numpy array or a pandas Series
        return values.tolist()
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise DataError(f"a column must be a list of values, not {type(values).__name__}", path="data", field=name)
    return list(values)


def records(found: dict[str, list], origin: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row, {column: value})`` for each row of the columns, rows counted from 0; a missing value (None,
    NaN) is refused here, naming its column and row, since no file can hold one."""
    lengths = {name: len(values) for name, values in found.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {size}" for name, size in lengths.items())
        raise DataError(f"columns of different lengths ({listed})", path=origin)
    if not lengths or not max(lengths.values()):
        raise DataError("no rows", path=origin)
    for row in range(next(iter(lengths.values()))):
        record = {name: _value(values[row]) for name, values in found.items()}
        for name, value in record.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise DataError("missing value", path=origin, line=row, field=name)
        yield row, record


def _value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value  # a numpy scalar


def fingerprint(found: dict[str, list]) -> str:
    """The reference a config records for a table: its prefix and a hash of its columns and values."""
    text = json.dumps(found, sort_keys=True, ensure_ascii=False, default=str)
    return PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def is_reference(path: str | None) -> bool:
    return bool(path) and str(path).startswith(PREFIX)


@contextmanager
def held(tables: dict[str, dict[str, list]]) -> Iterator[set[str]]:
    """Within the block, ``table_for(reference)`` finds these tables ({reference: columns}); the set it
    yields fills with the references that were read."""
    used: set[str] = set()
    token = _HELD.set({**(_HELD.get() or {}), **{ref: (found, used) for ref, found in tables.items()}})
    try:
        yield used
    finally:
        _HELD.reset(token)


def table_for(reference: str) -> dict[str, list]:
    """The columns of the table held under ``reference``; outside a ``held`` block (a run trained on data in
    memory, loaded back later) a DataError that says to give the data again."""
    entry = (_HELD.get() or {}).get(reference)
    if entry is None:
        raise DataError("the run's data was a table in memory; give it again (data=...)", path=reference)
    found, used = entry
    used.add(reference)
    return found


def origin_of(reference: str, split: str) -> str:
    """How errors name a split held in memory."""
    return f"{split} data in memory ({reference.removeprefix(PREFIX)})"


def in_rows(error: LmtError) -> LmtError:
    """An error about a table in memory, with its "line" said as the row it is (counted from 0)."""
    if error.line is None or not str(error.path).endswith(")") or " data in memory (" not in str(error.path):
        return error
    return type(error)(error.message, path=f"{error.path}, row {error.line}", field=error.field)
