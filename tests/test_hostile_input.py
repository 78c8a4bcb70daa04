"""Hostile input for every reader: random bytes, random text, mutated valid files and the classic bad cases.

The contract: whatever the bytes, a reader returns what it read or raises lmtransfer's own error (``DataError``
for data files, ``ConfigError`` for run configs) whose message is one printable line that names the file, and
the line where there is one. Never an exception from inside a library, never a hang: each example has a
hypothesis deadline and each test a wall-clock limit (SIGALRM).

Set ``LMTRANSFER_HOSTILE_TALLY=path.json`` to save how many cases of each kind ran and how they ended (the
data behind docs/reliability.md, part 2).
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import os
import re
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import sklearn.model_selection  # noqa: F401  (imported here so that its import time counts against no deadline)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmtransfer.config.loading import load_config
from lmtransfer.config.schema import DataConfig, RunConfig
from lmtransfer.core.errors import ConfigError, DataError, LmtError
from lmtransfer.data.conll import read_conll
from lmtransfer.data.splits import Split
from lmtransfer.data.squad import read_squad
from lmtransfer.data.tables import ClassificationData, load_classification, read_table

EXAMPLES = int(os.environ.get("LMTRANSFER_FUZZ_EXAMPLES", "150"))  # per property; 150 keeps the file under a minute
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),  # one example; a reader that takes longer on a tiny input is a bug
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# wall clock per test; a property's limit grows with its examples (45 s for the default 150)
LIMIT_S = {"property": max(45, int(EXAMPLES * 0.3)), "example": 10}


class Hang(BaseException):  # a BaseException, so that hypothesis does not catch it and try to shrink a hang
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    limit = LIMIT_S["property" if getattr(request.function, "is_hypothesis_test", False) else "example"]

    def expired(signum, frame):
        raise Hang(f"{request.node.name} ran over {limit} s: a reader hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------- the contract

TALLY: dict[str, dict] = {}


@pytest.fixture(autouse=True, scope="module")
def _save_tally():
    yield
    if os.environ.get("LMTRANSFER_HOSTILE_TALLY"):
        Path(os.environ["LMTRANSFER_HOSTILE_TALLY"]).write_text(json.dumps(TALLY, indent=1), encoding="utf-8")


def record(kind: str, result: object) -> None:
    entry = TALLY.setdefault(kind, {"cases": 0, "parsed": 0, "errors": 0, "messages": []})
    entry["cases"] += 1
    if isinstance(result, LmtError):
        entry["errors"] += 1
        message = str(result).replace(result.path or "", Path(result.path or "").name, 1)
        if len(entry["messages"]) < 5 and message[:200] not in entry["messages"]:
            entry["messages"].append(message[:200])
    else:
        entry["parsed"] += 1


def line_count(raw: bytes, yaml_breaks: bool = False) -> int:
    """Lines in ``raw``, counting \\r\\n, \\r and \\n (and YAML's NEL, LS and PS) as line ends."""
    if yaml_breaks:
        return len(re.split(r"\r\n|[\r\n\x85\u2028\u2029]", raw.decode("utf-8", errors="replace")))
    return len(re.split(rb"\r\n|\r|\n", raw))


def check_error(err: LmtError, where: dict[str | None, int | None]) -> None:
    """One printable line that starts with one of the files in ``where``, and a line number inside that file.

    ``where`` holds None only for a config read without a file, whose errors have no file to name."""
    message = str(err)
    assert message.isprintable(), f"not one printable line: {message!r}"  # no line breaks, no lone surrogates
    assert err.path in where, message
    assert err.path is None or message.startswith(f"{err.path}: "), message
    lines = where[err.path]
    if err.line is not None and lines is not None:
        assert 1 <= err.line <= lines, message


def outcome(kind: str, error: type[LmtError], call, where: dict[str | None, int | None]):
    """``call()``, or the ``error`` it raised (checked). Any other exception propagates and fails the test."""
    try:
        result = call()
    except error as err:
        check_error(err, where)
        result = err
    record(kind, result)
    return result


def check_unicode(*texts: str) -> None:
    for text in texts:
        text.encode("utf-8")  # a lone surrogate would fail here, and later in the tokenizer


def check_split(split: Split, labelled: bool) -> None:
    assert len(split.texts) == len(split.lines) > 0
    assert all(text.strip() for text in split.texts)
    assert split.lines == sorted(split.lines)
    check_unicode(*split.texts)
    if labelled:
        assert len(split.labels) == len(split.texts) and all(label and label == label.strip() for label in split.labels)
        check_unicode(*split.labels)
    else:
        assert split.labels is None


def check_conll(sentences) -> None:
    assert sentences
    for sentence in sentences:
        assert len(sentence.words) == len(sentence.tags) == len(sentence.lines) == len(sentence.line_numbers) > 0
        assert all(tag == "O" or tag[:2] in ("B-", "I-", "E-", "S-") for tag in sentence.tags)


def check_squad(examples, report) -> None:
    assert len({example.id for example in examples}) == len(examples) == report["questions"]
    for example in examples:
        assert example.is_impossible == (not example.answers)
        check_unicode(example.id, example.question, example.context)
        for answer in example.answers:
            assert example.context[answer.start : answer.start + len(answer.text)] == answer.text


def check_config(config: RunConfig, tmp: Path) -> None:
    saved = tmp / "resolved.yaml"
    saved.write_text(config.to_yaml(), encoding="utf-8")
    assert load_config(saved).model_dump() == config.model_dump()  # what a run saves loads back the same


# ---------------------------------------------------------------------------------------------- strategies

any_bytes = st.binary(max_size=2048)
any_text = st.text(max_size=512).map(lambda text: text.encode("utf-8"))


def flavoured(alphabet: str) -> st.SearchStrategy[bytes]:
    """Text made mostly of a format's own punctuation, which gets further into its parser than noise."""
    return st.text(alphabet=st.sampled_from(list(alphabet)), max_size=400).map(lambda text: text.encode("utf-8"))


MUTATIONS = ("drop", "duplicate", "shuffle", "cut", "insert", "flip", "columns")


@st.composite
def mutated(draw, valid: bytes, separators: tuple[bytes, ...] = (b",",)) -> bytes:
    """``valid`` after 1-4 of: drop / duplicate / shuffle lines, cut at a byte, insert or flip bytes, or add or
    remove a column (a separator) on one line."""
    data = valid
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(MUTATIONS))
        if operation == "cut":
            data = data[: draw(st.integers(0, len(data)))]
            continue
        if operation in ("insert", "flip"):
            at = draw(st.integers(0, max(len(data) - 1, 0)))
            new = draw(st.binary(min_size=1, max_size=8))
            data = data[:at] + new + data[at + (operation == "flip") :]
            continue
        lines = data.split(b"\n")
        i = draw(st.integers(0, len(lines) - 1))
        if operation == "drop":
            del lines[i]
        elif operation == "duplicate":
            lines.insert(i, lines[i])
        elif operation == "shuffle":
            lines = draw(st.permutations(lines))
        else:
            separator = draw(st.sampled_from(separators))
            parts = lines[i].split(separator)
            if len(parts) > 1 and draw(st.booleans()):
                del parts[draw(st.integers(0, len(parts) - 1))]
            else:
                parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from([b"", b"x", b"B-X", b"7", b'"'])))
            lines[i] = separator.join(parts)
        data = b"\n".join(lines)
    return data


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------- valid files

VALID_TABLE = {
    "csv": b'text,label\ngood film,pos\n"a ""quoted"", multi\nline text",neg\nfine,very good\ngood film,pos\n',
    "tsv": b'text\tlabel\ngood film\tpos\nit \'s "fine"\tneg\nok\t very good \ngood film\tpos\n',
    "jsonl": (
        b'{"text": "good film", "label": "pos"}\n{"text": "caf\xc3\xa9 \\u00e9", "label": 1}\n\n'
        b'{"text": "ok", "label": "very good", "extra": [1, {"a": null}]}\n'
    ),
}
TABLE_SEPARATORS = {"csv": (b",", b'"'), "tsv": (b"\t",), "jsonl": (b",", b":", b'"', b"{")}
VALID_CONLL = (
    b"-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
    b"Peter NNP B-NP B-PER\nBlackburn\tNNP\tI-NP\tI-PER\n"
)
CONTEXT = "the cat sat on the mat. the cat ran."
SQUAD_DOC = {
    "version": "v2.0",
    "data": [
        {
            "title": "Cats",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {"id": "q1", "question": "who sat?", "answers": [{"text": "the cat", "answer_start": 0}]},
                        {"id": "q2", "question": "where?", "answers": [{"text": "the mat", "answer_start": 15}]},
                        {"id": "q3", "question": "what flew?", "answers": [], "is_impossible": True},
                    ],
                },
                {"context": "caf\u00e9 au lait", "qas": [{"id": "q4", "question": "what?", "answers": []}]},
            ],
        }
    ],
}
SQUAD_DOC["data"][0]["paragraphs"][1]["qas"][0]["answers"] = [{"text": "lait", "answer_start": 8}]
VALID_SQUAD = json.dumps(SQUAD_DOC, indent=1, ensure_ascii=False).encode("utf-8")
VALID_YAML = b"""# a run config
strategy: feature
encoder:
  model: minilm
  max_length: 128
features:
  layers: [-1, -2]
  pooling: mean
data:
  train: train.csv
  format: csv
  label_column: "y"
head:
  type: mlp
  hidden_size: 64
train:
  epochs: 3
  lr: 1.0e-3
"""


def test_the_valid_files_parse(tmp_path):
    for fmt, data in VALID_TABLE.items():
        assert "very good" in read_table(write(tmp_path, f"ok.{fmt}", data)).labels
    assert len(read_conll(write(tmp_path, "ok.conll", VALID_CONLL))) == 2
    assert len(read_squad(write(tmp_path, "ok.json", VALID_SQUAD))[0]) == 4
    assert load_config(write(tmp_path, "ok.yaml", VALID_YAML)).data.label_column == "y"


# ---------------------------------------------------------------------------------------------- read_table

TABLE_ALPHABET = 'text,label\t\n\r"{}[]:0123456789 \\ufeé\x00'
FORMATS = st.sampled_from(["csv", "tsv", "jsonl"])


def read_any_table(path: Path, fmt: str, labelled: bool, kind: str, lines: int):
    call = lambda: read_table(path, "text", "label" if labelled else None, fmt)  # noqa: E731
    result = outcome(kind, DataError, call, {str(path): lines})
    if isinstance(result, Split):
        check_split(result, labelled)


@FUZZ
@given(
    data=st.one_of(any_bytes, any_text, flavoured(TABLE_ALPHABET)),
    suffix=st.sampled_from(["csv", "tsv", "jsonl", "json", "txt", ""]),
    fmt=st.sampled_from(["auto", "csv", "tsv", "jsonl"]),
    labelled=st.booleans(),
)
def test_read_table_random_input(tmp_path, data, suffix, fmt, labelled):
    path = write(tmp_path, f"in.{suffix}" if suffix else "in", data)
    read_any_table(path, fmt, labelled, "table: random bytes / text", line_count(data))


@FUZZ
@given(fmt=FORMATS, labelled=st.booleans(), draw=st.data())
def test_read_table_mutated_valid_file(tmp_path, fmt, labelled, draw):
    data = draw.draw(mutated(VALID_TABLE[fmt], TABLE_SEPARATORS[fmt]))
    read_any_table(write(tmp_path, f"in.{fmt}", data), "auto", labelled, "table: mutated valid file", line_count(data))


def table_bytes(rows: list[tuple[str, object]], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows).encode()
    if fmt == "tsv":  # unquoted
        return "".join(f"{t}\t{y}\n" for t, y in [("text", "label"), *rows]).encode("utf-8")
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([("text", "label"), *rows])
    return buffer.getvalue().encode("utf-8")


cell = st.text(max_size=20)


@FUZZ
@given(fmt=FORMATS, rows=st.lists(st.tuples(cell, cell | st.integers(-(10**6), 10**6)), max_size=6))
def test_read_table_reads_back_what_was_written(tmp_path, fmt, rows):
    """Any text a writer can store (quotes, commas, line breaks, U+2028 ...) reads back unchanged."""
    if fmt == "tsv":  # TSV is unquoted: no tab or line break inside a value
        rows = [(t, y) for t, y in rows if not re.search(r"[\t\r\n]", f"{t}{y}")]
    data = table_bytes(rows, fmt)
    path = write(tmp_path, f"in.{fmt}", data)
    result = outcome("table: round trip of written rows", DataError, lambda: read_table(path), {str(path): None})
    good = rows and all(t.strip() and str(y).strip() for t, y in rows)
    if good:
        assert isinstance(result, Split), result
        assert result.texts == [t for t, _ in rows] and result.labels == [str(y).strip() for _, y in rows]
    else:
        assert isinstance(result, DataError)


# ---------------------------------------------------------------------------------------------- load_classification

WORDS = st.sampled_from(["good", "bad", "fine film", "ok", "caf\u00e9"])
LABELS = st.sampled_from(["a", "b", "c d", " e "])
BAD_ROWS = st.sampled_from([("  ", "a"), ("ok", ""), ("ok", " ")])


@st.composite
def small_table(draw) -> list[tuple[str, str]]:
    """0-25 rows of a few words and labels; half the tables get one row with an empty text or label."""
    rows = draw(st.lists(st.tuples(WORDS, LABELS), max_size=25))
    if draw(st.booleans()):
        rows.insert(draw(st.integers(0, len(rows))), draw(BAD_ROWS))
    return rows


@FUZZ
@given(
    train=small_table(),
    held_out=st.none() | st.tuples(small_table(), small_table()),
    dev_fraction=st.floats(0.01, 0.49),
    test_fraction=st.floats(0.01, 0.49),
    max_train=st.none() | st.integers(1, 30),
    seed=st.integers(0, 3),
)
def test_load_classification_small_random_tables(
    tmp_path, train, held_out, dev_fraction, test_fraction, max_train, seed
):
    paths = {"train": write(tmp_path, "train.csv", table_bytes(train, "csv"))}
    if held_out is not None:
        paths["dev"] = write(tmp_path, "dev.csv", table_bytes(held_out[0], "csv"))
        paths["test"] = write(tmp_path, "test.csv", table_bytes(held_out[1], "csv"))
    config = DataConfig(
        **{k: str(p) for k, p in paths.items()},
        dev_fraction=dev_fraction,
        test_fraction=test_fraction,
        max_train_examples=max_train,
        split_seed=seed,
    )
    kind = "load_classification: small random tables"
    result = outcome(kind, DataError, lambda: load_classification(config), {str(p): None for p in paths.values()})
    if isinstance(result, ClassificationData):
        assert result.labels == sorted(set(result.train.labels)) and len(result.train) > 0
        for split in (result.dev, result.test):
            assert len(split) > 0 and set(split.labels) <= set(result.labels)
        if held_out is None and max_train is None:
            assert len(result.train) + len(result.dev) + len(result.test) == len(train)


@FUZZ
@given(draw=st.data())
def test_load_classification_mutated_train_file(tmp_path, draw):
    rows = [(f"text {i}", "ab"[i % 2]) for i in range(12)]
    data = draw.draw(mutated(table_bytes(rows, "csv"), TABLE_SEPARATORS["csv"]))
    config = DataConfig(train=str(write(tmp_path, "train.csv", data)))
    kind = "load_classification: mutated train file"
    outcome(kind, DataError, lambda: load_classification(config), {config.train: line_count(data)})


# ---------------------------------------------------------------------------------------------- read_conll

CONLL_ALPHABET = "EU -DOCSTART-BIOES-PER\t\n\r O\x0c\x85\u2028x"
COLUMNS = st.integers(-5, 5)


def read_any_conll(path: Path, data: bytes, kind: str, tag_column: int = -1, word_column: int = 0) -> None:
    call = lambda: read_conll(path, tag_column, word_column)  # noqa: E731
    result = outcome(kind, DataError, call, {str(path): line_count(data)})
    if not isinstance(result, DataError):
        check_conll(result)


@FUZZ
@given(data=st.one_of(any_bytes, any_text, flavoured(CONLL_ALPHABET)), tag_column=COLUMNS, word_column=COLUMNS)
def test_read_conll_random_input(tmp_path, data, tag_column, word_column):
    path = write(tmp_path, "in.conll", data)
    read_any_conll(path, data, "conll: random bytes / text", tag_column, word_column)


@FUZZ
@given(draw=st.data(), tag_column=st.sampled_from([-1, 3, -2]))
def test_read_conll_mutated_valid_file(tmp_path, draw, tag_column):
    data = draw.draw(mutated(VALID_CONLL, (b" ", b"\t")))
    read_any_conll(write(tmp_path, "in.conll", data), data, "conll: mutated valid file", tag_column)


# ---------------------------------------------------------------------------------------------- read_squad

JSON_ALPHABET = '{}[]:,"0123456789.-eE truefalsnul\\\n\x00é'
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def read_any_squad(path: Path, data: bytes | None, kind: str) -> None:
    where = {str(path): None if data is None else line_count(data)}
    result = outcome(kind, DataError, lambda: read_squad(path), where)
    if not isinstance(result, DataError):
        check_squad(*result)


@FUZZ
@given(data=st.one_of(any_bytes, any_text, flavoured(JSON_ALPHABET)), gzipped=st.booleans())
def test_read_squad_random_input(tmp_path, data, gzipped):
    path = write(tmp_path, "in.json.gz" if gzipped else "in.json", gzip.compress(data) if gzipped else data)
    read_any_squad(path, None if gzipped else data, "squad: random bytes / text (plain or gzipped)")


@FUZZ
@given(draw=st.data(), gzipped=st.booleans())
def test_read_squad_mutated_valid_file(tmp_path, draw, gzipped):
    data = draw.draw(mutated(VALID_SQUAD, (b",", b":", b'"', b"[", b"{")))
    if gzipped and draw.draw(st.booleans()):  # a gzip stream cut short, or a good one
        packed = gzip.compress(data)
        data_on_disk = packed[: draw.draw(st.integers(0, len(packed)))]
    else:
        data_on_disk = gzip.compress(data) if gzipped else data
    path = write(tmp_path, "in.json.gz" if gzipped else "in.json", data_on_disk)
    read_any_squad(path, None if gzipped else data, "squad: mutated valid file (bytes)")


def _json_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.extend(_json_paths(child, (*prefix, key)))
    return found


@st.composite
def mutated_squad(draw) -> object:
    """The valid document after 1-3 of: delete a key or item, replace a value with any JSON, duplicate a list
    item (a question: a duplicate id), or set an integer (an answer_start that points anywhere)."""
    doc = copy.deepcopy(SQUAD_DOC)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(_json_paths(doc)))
        if not where:
            doc = draw(json_values) if draw(st.booleans()) else doc
            continue
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        operation = draw(st.sampled_from(["delete", "replace", "duplicate", "integer"]))
        if operation == "delete":
            del parent[where[-1]]
        elif operation == "replace":
            parent[where[-1]] = draw(json_values)
        elif operation == "duplicate" and isinstance(parent, list):
            parent.insert(where[-1], copy.deepcopy(parent[where[-1]]))
        else:
            parent[where[-1]] = draw(st.integers(-3, 40))
    return doc


@FUZZ
@given(doc=mutated_squad())
def test_read_squad_mutated_document(tmp_path, doc):
    data = json.dumps(doc, indent=1).encode("utf-8")
    read_any_squad(write(tmp_path, "in.json", data), data, "squad: mutated document (JSON tree)")


# ---------------------------------------------------------------------------------------------- load_config

YAML_ALPHABET = "abcdefghij_.:-[]{},'\"!&*#|>%@`?~ \t\n0123456789eE+=<\\"
FIELDS = [
    "strategy",
    "encoder.model",
    "encoder.max_length",
    "features.layers",
    "features.pooling",
    "data.train",
    "data.dev_fraction",
    "head.type",
    "train.lr",
    "train.epochs",
    "lora.target_modules",
    "output_dir",
    "nosuch.field",
    "train",
    "a..b",
    " ",
]
yamlish = st.text(alphabet=st.sampled_from(list(YAML_ALPHABET)), max_size=24) | st.text(max_size=24)
overrides = st.lists(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(FIELDS), yamlish) | st.text(max_size=30), max_size=3
)


def read_any_config(tmp: Path, path: Path | None, data: bytes, items: list[str], kind: str) -> None:
    lines = None if path is None else line_count(data, yaml_breaks=True)
    where = {"command line": None, None: None} if path is None else {str(path): lines, "command line": None}
    result = outcome(kind, ConfigError, lambda: load_config(path, items), where)
    if isinstance(result, RunConfig):
        check_config(result, tmp)


@FUZZ
@given(data=st.one_of(any_bytes, any_text, flavoured(YAML_ALPHABET)))
def test_load_config_random_input(tmp_path, data):
    read_any_config(tmp_path, write(tmp_path, "in.yaml", data), data, [], "config: random bytes / text")


@FUZZ
@given(draw=st.data())
def test_load_config_mutated_valid_file(tmp_path, draw):
    data = draw.draw(mutated(VALID_YAML, (b": ", b"  ", b"-", b"[", b",")))
    read_any_config(tmp_path, write(tmp_path, "in.yaml", data), data, [], "config: mutated valid file")


@FUZZ
@given(items=overrides, with_file=st.booleans())
def test_load_config_random_overrides(tmp_path, items, with_file):
    path = write(tmp_path, "in.yaml", VALID_YAML) if with_file else None
    read_any_config(tmp_path, path, VALID_YAML, items, "config: random key=value overrides")


# ---------------------------------------------------------------------------------------------- explicit cases

PARSES = "parses"
MARKER = "lmtransfer-must-not-exist"  # a file the python-tag payloads would create if they ran
DEEP_JSON = b"[" * 10_000 + b"]" * 10_000
DEEP_YAML = b"train: " + b"[" * 10_000 + b"]" * 10_000 + b"\n"
TEN_MB = "x" * 10_000_000
ONE_MB = "y" * 1_000_000


def squad_with(**changes) -> bytes:
    doc = copy.deepcopy(SQUAD_DOC)
    qa = doc["data"][0]["paragraphs"][0]["qas"][0]
    qa.update(changes.pop("qa", {}))
    doc["data"][0]["paragraphs"][0].update(changes)
    return json.dumps(doc).encode("utf-8")


def squad_one(context: str, answers: list) -> bytes:
    """A file of one paragraph with one question."""
    qa = {"id": "q", "question": "what?", "answers": answers}
    return json.dumps({"data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}).encode("utf-8")


def yaml_bomb(levels: int = 25) -> bytes:
    """A 'billion laughs' mapping: each level refers three times to the one before."""
    lines = ["l0: &l0 {x: 1}"]
    lines += [f"l{i}: &l{i} {{a: *l{i - 1}, b: *l{i - 1}, c: *l{i - 1}}}" for i in range(1, levels)]
    return ("\n".join(lines) + "\n").encode()


# (reader, file name, content, expected: PARSES or a piece of the one-line error after "file: ")
CASES = {
    # empty files
    "table empty csv": ("table", "t.csv", b"", "line 1: empty file: no header row"),
    "table empty jsonl": ("table", "t.jsonl", b"", "no examples in this file"),
    "conll empty": ("conll", "t.conll", b"", "no sentences in this file"),
    "squad empty": ("squad", "t.json", b"", "line 1: not valid JSON"),
    "config empty (all defaults)": ("config", "t.yaml", b"", PARSES),
    # a UTF-8 byte-order mark
    "table bom csv": ("table", "t.csv", b"\xef\xbb\xbf" + VALID_TABLE["csv"], PARSES),
    "table bom jsonl": ("table", "t.jsonl", b"\xef\xbb\xbf" + VALID_TABLE["jsonl"], PARSES),
    "conll bom": ("conll", "t.conll", b"\xef\xbb\xbf" + VALID_CONLL, PARSES),
    "squad bom": ("squad", "t.json", b"\xef\xbb\xbf" + VALID_SQUAD, PARSES),
    "config bom": ("config", "t.yaml", b"\xef\xbb\xbf" + VALID_YAML, PARSES),
    # CRLF line ends
    "table crlf tsv": ("table", "t.tsv", VALID_TABLE["tsv"].replace(b"\n", b"\r\n"), PARSES),
    "table crlf jsonl": ("table", "t.jsonl", VALID_TABLE["jsonl"].replace(b"\n", b"\r\n"), PARSES),
    "table cr-only csv": ("table", "t.csv", b"text,label\rgood,pos\rbad,neg\r", PARSES),
    "conll crlf": ("conll", "t.conll", VALID_CONLL.replace(b"\n", b"\r\n"), PARSES),
    "squad crlf": ("squad", "t.json", VALID_SQUAD.replace(b"\n", b"\r\n"), PARSES),
    "config crlf": ("config", "t.yaml", VALID_YAML.replace(b"\n", b"\r\n"), PARSES),
    # latin-1 bytes
    "table latin-1": ("table", "t.csv", b"text,label\ngood,pos\ncaf\xe9,neg\n", "line 3: bytes that are not UTF-8"),
    "conll latin-1": ("conll", "t.conll", b"EU B-ORG\n\ncaf\xe9 O\n", "line 3: bytes that are not UTF-8"),
    "squad latin-1": ("squad", "t.json", b'{"data": [],\n"title": "caf\xe9"}', "line 2: bytes that are not UTF-8"),
    "config latin-1": ("config", "t.yaml", b"head:\n  type: caf\xe9\n", "line 2: not valid UTF-8"),
    # very long lines
    "table 10 MB line csv": ("table", "t.csv", f"text,label\n{TEN_MB},pos\n".encode(), PARSES),
    "table 1 MB line jsonl": ("table", "t.jsonl", json.dumps({"text": ONE_MB, "label": 1}).encode(), PARSES),
    "conll 1 MB word": ("conll", "t.conll", f"{ONE_MB} O\n".encode(), PARSES),
    "squad 1 MB context": ("squad", "t.json", squad_with(context=ONE_MB + " " + CONTEXT), PARSES),
    "config 1 MB value": ("config", "t.yaml", f"output_dir: {ONE_MB}\n".encode(), PARSES),
    # answer_start that does not match the text: repaired when the text occurs, refused when it does not
    "squad answer_start off": (
        "squad",
        "t.json",
        squad_with(qa={"answers": [{"text": "mat", "answer_start": 3}]}),
        PARSES,
    ),
    "squad answer_start off, long repetitive answer": (  # listing every overlapping occurrence is quadratic
        "squad",
        "t.json",
        squad_one("b" + "a" * 400_000, [{"text": "a" * 200_000, "answer_start": 0}]),
        PARSES,
    ),
    "squad answer absent": (
        "squad",
        "t.json",
        squad_with(qa={"answers": [{"text": "dog", "answer_start": 0}]}),
        "field 'data[0].paragraphs[0].qas[0].answers[0].text': answer text 'dog' does not occur in the context",
    ),
    "squad answer_start past the end": (
        "squad",
        "t.json",
        squad_with(qa={"answers": [{"text": "cat", "answer_start": 10**30}]}),
        "answers[0].answer_start': 1000000000000000000000000000000 is out of range",
    ),
    # ragged column counts
    "table ragged csv": (
        "table",
        "t.csv",
        b"text,label\ngood,pos\nbad,neg,extra\n",
        "line 3: 3 fields, but the header has 2",
    ),
    "table ragged tsv": ("table", "t.tsv", b"text\tlabel\ngood\n", "line 2: 1 fields, but the header has 2"),
    "table jsonl missing key": (
        "table",
        "t.jsonl",
        b'{"text": "a"}\n',
        "line 1: field 'label': missing (columns: text)",
    ),
    "conll ragged (tag is the last column)": ("conll", "t.conll", b"EU NNP B-ORG\nrejects O\n", PARSES),
    "conll too few columns": ("conll", "t.conll", b"EU NNP B-ORG\nrejects\n", "line 2: field 'last column'"),
    # labels with spaces: kept (surrounding spaces stripped); a CoNLL tag cannot hold one (it splits columns)
    "table label with spaces": ("table", "t.csv", b"text,label\ngood, very good \n", PARSES),
    "conll tag with a space": ("conll", "t.conll", b"New B-NEW YORK\n", "line 1: field 'last column': tag 'YORK'"),
    # duplicates: table rows are allowed (both kept); SQuAD question ids are refused
    "table duplicate rows": ("table", "t.csv", b"text,label\ngood,pos\ngood,pos\n", PARSES),
    "squad duplicate id": ("squad", "t.json", squad_with(qa={"id": "q2"}), "duplicate question id 'q2'"),
    # a NUL byte: fine in a value of a CSV / CoNLL file; JSON and YAML refuse the raw control character
    "table nul csv": ("table", "t.csv", b"text,label\na\x00b,pos\n", PARSES),
    "table nul jsonl": ("table", "t.jsonl", b'{"text": "a\x00b", "label": 1}\n', "line 1: not valid JSON"),
    "table nul escape jsonl": ("table", "t.jsonl", b'{"text": "a\\u0000b", "label": 1}\n', PARSES),
    "conll nul": ("conll", "t.conll", b"a\x00b O\n", PARSES),
    "squad nul": ("squad", "t.json", squad_with(context="a\x00b").replace(b"\\u0000", b"\x00"), "not valid JSON"),
    "config nul": ("config", "t.yaml", b"head:\n  type: a\x00b\n", "line 2: not valid YAML"),
    # lone surrogates: UTF-8 bytes for one are not UTF-8; a JSON escape for one is not valid text
    "table surrogate bytes": ("table", "t.csv", b"text,label\n\xed\xa0\x80,pos\n", "line 2: bytes that are not UTF-8"),
    "table surrogate escape": (
        "table",
        "t.jsonl",
        b'{"text": "a\\ud800", "label": 1}\n',
        "line 1: field 'text': a lone surrogate",
    ),
    "table surrogate escape label": ("table", "t.jsonl", b'{"text": "a", "label": "\\udfff"}\n', "field 'label'"),
    "squad surrogate escape": (
        "squad",
        "t.json",
        squad_with().replace(b"the cat sat on", b"\\ud83d cat sat on"),
        "field 'data[0].paragraphs[0].context': a lone surrogate",
    ),
    "config surrogate escape in a key": ("config", "t.yaml", b'head:\n  "\\ud800": 1\n', "field 'head"),
    # deeply nested JSON / YAML: a clean error, no RecursionError
    "table deep json": ("table", "t.jsonl", DEEP_JSON, "line 1: JSON nested too deeply"),
    "squad deep json": ("squad", "t.json", DEEP_JSON, "JSON nested too deeply"),
    "config deep yaml": ("config", "t.yaml", DEEP_YAML, "not valid YAML: nested too deeply"),
    "config alias bomb": ("config", "t.yaml", yaml_bomb(), "line 1: field 'l0': Extra inputs are not permitted"),
    # numbers and dates that Python cannot make
    "table 5000-digit label": ("table", "t.jsonl", b'{"text": "a", "label": ' + b"9" * 5000 + b"}\n", "line 1"),
    "squad 5000-digit offset": (
        "squad",
        "t.json",
        squad_with(qa={"answers": [{"text": "cat", "answer_start": 0}]}).replace(
            b'"answer_start": 0', b'"answer_start": ' + b"1" * 5000
        ),
        "not valid JSON",
    ),
    "config 5000-digit int": ("config", "t.yaml", b"train:\n  seed: " + b"1" * 5000 + b"\n", "line 2: not valid YAML"),
    "config bad date": ("config", "t.yaml", b"head:\n  type: 2001-13-45\n", "line 2: not valid YAML"),
    "config bad !!timestamp": ("config", "t.yaml", b"a: !!timestamp x\n", "line 1: not valid YAML"),
    "config bad !!bool": ("config", "t.yaml", b"a: !!bool x\n", "line 1: not valid YAML"),
    "config empty !!int": ("config", "t.yaml", b"a: !!int ''\n", "line 1: not valid YAML"),
    # python tags: refused by the safe loader, never run
    "config python/object/apply": (
        "config",
        "t.yaml",
        f'a: !!python/object/apply:os.system ["touch {MARKER}"]\n'.encode(),
        "line 1: not valid YAML: could not determine a constructor for the tag",
    ),
    "config python/name": ("config", "t.yaml", b"a: !!python/name:os.system\n", "line 1: not valid YAML"),
    "config yaml key with a line break": ("config", "t.yaml", b'"fo\\no": 1\n', "line 1: field 'fo\\no'"),
}
READERS = {
    "table": (read_table, DataError),
    "conll": (read_conll, DataError),
    "squad": (read_squad, DataError),
    "config": (load_config, ConfigError),
}


@pytest.mark.parametrize("name", list(CASES))
def test_explicit_case(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    reader, file_name, data, expected = CASES[name]
    read, error = READERS[reader]
    path = write(tmp_path, file_name, data)
    lines = line_count(data, yaml_breaks=reader == "config") if len(data) < 100_000 else None
    result = outcome(f"explicit: {reader}", error, lambda: read(path), {str(path): lines})
    if expected == PARSES:
        assert not isinstance(result, LmtError), f"{name}: {result}"
    else:
        assert isinstance(result, error), f"{name}: parsed, expected an error with {expected!r}"
        assert expected in str(result)[len(str(path)) + 2 :], str(result)
    assert not (tmp_path / MARKER).exists()


def test_explicit_results_are_the_expected_values(tmp_path):
    table = read_table(write(tmp_path, "t.csv", b"text,label\ngood, very good \ngood, very good \n"))
    assert table.labels == ["very good", "very good"] and table.lines == [2, 3]  # duplicate rows are kept
    assert read_table(write(tmp_path, "cr.csv", b"text,label\rgood,pos\rbad,neg\r")).texts == ["good", "bad"]
    examples, report = read_squad(
        write(tmp_path, "t.json", squad_with(qa={"answers": [{"text": "mat", "answer_start": 3}]}))
    )
    assert examples[0].answers[0].start == 19 and report["repaired"] == 1 and report["repaired_ids"] == ["q1"]
    assert read_conll(write(tmp_path, "t.conll", b"a\x00b O\n"))[0].words == ["a\x00b"]
    long_answer = squad_one("b" + "a" * 4000, [{"text": "a" * 2000, "answer_start": 0}])
    assert read_squad(write(tmp_path, "long.json", long_answer))[0][0].answers[0].start == 1
    assert len(read_table(write(tmp_path, "long.csv", f"text,label\n{TEN_MB},pos\n".encode())).texts[0]) == 10**7


@pytest.mark.parametrize("reader", list(READERS))
def test_missing_file_and_directory(tmp_path, reader):
    read, error = READERS[reader]
    missing, folder = tmp_path / "missing.csv", tmp_path / "folder.csv"
    folder.mkdir()
    for path in (missing, folder):
        result = outcome(f"explicit: {reader}", error, lambda: read(path), {str(path): None})  # noqa: B023
        assert isinstance(result, error), result


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["train.lr=["], "command line: field 'train.lr=[': not valid YAML"),
        ([f"train.lr=!!python/object/apply:os.system ['touch {MARKER}']"], "could not determine a constructor"),
        (["train.lr=" + "[" * 10_000 + "]" * 10_000], "not valid YAML: nested too deeply"),
        (["train.seed=" + "1" * 5000], "not valid YAML"),
        (["head.type=a\x00b"], "not valid YAML"),
        (["head.type=a\nb"], "command line: field 'head.type=a\\nb'"),
        (["oops"], "an override must look like section.field=value"),
        (["head.type=mlp", "head.type.x=1"], "'type' is not a section"),
    ],
    ids=["unclosed", "python-tag", "deep", "5000-digits", "nul", "line-break", "no-equals", "not-a-section"],
)
def test_bad_overrides(tmp_path, monkeypatch, items, expected):
    monkeypatch.chdir(tmp_path)
    result = outcome(
        "explicit: config overrides", ConfigError, lambda: load_config(None, items), {"command line": None}
    )
    assert isinstance(result, ConfigError) and expected in str(result), result
    assert not (tmp_path / MARKER).exists()
