"""What a table of labelled texts (a CSV, TSV or JSONL file, or a Hugging Face dataset's train split) is, read
from the table itself: which columns hold the text (one, or a
pair), which the label, and which task the labels make. ``lmtransfer compare DATA`` runs on what this finds
(and prints how it decided); a column or task it cannot tell is refused, naming the columns to choose from.

The rules, each applied only where the user did not say:

- the label column is ``label`` where there is one (else ``--label-column``);
- the text columns are the others, less identifiers (columns whose every value is a whole number): one is
  the text, two (in file order) are a pair; ``text`` and ``text_pair`` are taken first where present;
- the task: labels that are JSON lists or hold the label separator are multi-label; labels that are all
  numbers, some with a fraction or more than ``MAX_CLASSES`` distinct, are scores (regression); anything
  else is classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmtransfer.core.errors import DataError, shown
from lmtransfer.core.text import decode_utf8, read_bytes
from lmtransfer.data.tables import _jsonl_records, _table_records, detect_format

SAMPLE = 512  # texts kept for measuring their lengths and the encoder's speed on them
MAX_CLASSES = 50  # whole-number labels with more distinct values than this are read as scores


@dataclass(frozen=True)
class TableFacts:
    """A table as ``inspect_table`` read it: its columns, which are the text, pair and label, the task, how
    many rows it has and its labels (the distinct values; for multi-label, the distinct single labels)."""

    path: Path  # the file, or the dataset's name or folder
    format: str  # csv, tsv, jsonl, or hf
    columns: tuple[str, ...]
    rows: int
    text_column: str
    text_pair_column: str | None
    label_column: str
    task: str
    labels: tuple[str, ...]
    reason: str  # how the task was found, for the plan
    sample: tuple[str | tuple[str, str], ...] = ()  # up to SAMPLE texts (or pairs) from the table, spread over it
    dev_rows: int | None = None  # a dataset's validation split, its dev (a file's dev is held out of it)

    @property
    def data_fields(self) -> dict[str, object]:
        """The ``data`` section's fields for this table (as a config takes them)."""
        where = "hf" if self.format == "hf" else "train"
        fields: dict[str, object] = {where: str(self.path), "text_column": self.text_column}
        if self.text_pair_column:
            fields["text_pair_column"] = self.text_pair_column
        fields["label_column"] = self.label_column
        return fields


def inspect_table(
    path: str | Path,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    task: str | None = None,
    separator: str = ",",
    fmt: str = "auto",
) -> TableFacts:
    """Read ``path`` (a CSV, TSV or JSONL file; else a Hugging Face dataset's name or ``save_to_disk`` folder)
    and decide what the user left open; a DataError names the file and the columns where it cannot."""
    path, dev_rows = Path(path), None
    if path.is_file():
        fmt = detect_format(path, fmt)
        text = decode_utf8(read_bytes(path), path)
        rows = _jsonl_records(text, path) if fmt == "jsonl" else _table_records(text, path, fmt)
        records = [record for _, record in rows]
    else:
        fmt, (records, dev_rows) = "hf", _dataset_records(str(path))
    if not records:
        raise DataError("no examples in this file", path=path)
    columns = tuple(dict.fromkeys(column for record in records for column in record))
    listed = ", ".join(shown(str(column)) for column in columns)
    label = label_column or ("label" if "label" in columns else None)
    if label is None:
        raise DataError(f"which column holds the labels? give --label-column (columns: {listed})", path=path)
    for given in (label, text_column, text_pair_column):
        if given is not None and given not in columns:
            raise DataError(f"no column '{shown(given)}' (columns: {listed})", path=path)
    first, second = _text_columns(records, columns, label, text_column, text_pair_column, path, listed)
    values = [record.get(label) for record in records]
    found, reason, labels = _task(values, separator) if task is None else (task, "as given", _distinct(values))
    spread = records[:: max(1, len(records) // SAMPLE)][:SAMPLE]
    sample = tuple((str(r.get(first, "")), str(r.get(second, ""))) if second else str(r.get(first, "")) for r in spread)
    return TableFacts(
        path, fmt, columns, len(records), first, second, label, found, tuple(labels), reason, sample, dev_rows
    )


def _dataset_records(name: str) -> tuple[list[dict], int]:
    """The train split of a Hugging Face dataset as records, class labels by their names, and the length of
    its validation split (lmtransfer reads a dataset's train and validation splits)."""
    import datasets

    local = Path(name).expanduser()
    try:
        loaded = datasets.load_from_disk(str(local)) if local.is_dir() else datasets.load_dataset(name)
    except Exception as exc:  # datasets raises many types; the user needs the one line
        raise DataError(
            f"neither a file nor a dataset with a train split: {str(exc).splitlines()[0]}", path=name
        ) from None
    if not isinstance(loaded, datasets.DatasetDict) or not {"train", "validation"} <= set(loaded):
        found = ", ".join(loaded) if isinstance(loaded, datasets.DatasetDict) else "one split"
        raise DataError(f"a dataset needs a train and a validation split (it has {found})", path=name)
    train = loaded["train"]
    names = {c: f.names for c, f in train.features.items() if getattr(f, "names", None)}
    records = [{c: names[c][v] if c in names else v for c, v in row.items()} for row in train]
    return records, len(loaded["validation"])


def _text_columns(records, columns, label, text, pair, path, listed) -> tuple[str, str | None]:
    if text is not None:
        return text, pair
    if "text" in columns:
        return "text", pair or ("text_pair" if "text_pair" in columns else None)
    candidates = [c for c in columns if c != label and c != pair and not _identifiers(records, c)]
    if pair is not None and len(candidates) == 1:
        return candidates[0], pair
    if len(candidates) in (1, 2) and pair is None:
        return candidates[0], (candidates[1] if len(candidates) == 2 else None)
    what = "no column of text" if not candidates else f"{len(candidates)} columns that could be text"
    raise DataError(f"{what}: give --text-column (and --text-pair-column for pairs) (columns: {listed})", path=path)


def _identifiers(records, column: str) -> bool:
    """Whether every value of ``column`` is a whole number (a row id, not a text)."""
    return all(str(record.get(column, "")).strip().lstrip("-").isdigit() for record in records)


def _distinct(values) -> list[str]:
    return sorted({str(v).strip() for v in values})


def _task(values, separator: str) -> tuple[str, str, list[str]]:
    """(task, why, labels) from the label column's values."""
    if any(isinstance(v, list) for v in values) or any(separator in str(v) for v in values):
        singles = {part.strip() for v in values for part in (v if isinstance(v, list) else str(v).split(separator))}
        why = "labels are lists" if any(isinstance(v, list) for v in values) else f"labels hold '{separator}'"
        return "multilabel", why, sorted(s for s in singles if s)
    numbers = [_number(v) for v in values]
    distinct = _distinct(values)
    if all(n is not None for n in numbers):
        fractional = any(n != int(n) for n in numbers)
        if fractional or len(distinct) > MAX_CLASSES:
            why = "labels are numbers with fractions" if fractional else f"labels are {len(distinct)} distinct numbers"
            return "regression", why, []
    return "classification", f"{len(distinct)} distinct labels", distinct


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None
