"""SQuAD v1.1 / v2.0 JSON (optionally gzipped) read into ``QAExample`` objects, every field checked.

``answer_start`` offsets that point at the wrong place are repaired when the answer text occurs elsewhere
in the context. The rest of extractive QA is in ``lmtransfer.tasks``: windows over question + context
(``qa_windows``), answers from start / end scores (``qa_answers``), exact match and F1 (``metrics``).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lmtransfer.core.errors import DataError, shown
from lmtransfer.core.text import decode_utf8, lone_surrogate


@dataclass
class Answer:
    text: str
    start: int  # character offset of ``text`` in the example's context


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[Answer]  # empty exactly when ``is_impossible``
    is_impossible: bool = False


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true or false"}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    return "a number" if isinstance(value, int | float) else _TYPE_NAMES.get(type(value), type(value).__name__)


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """The start of the occurrence of ``text`` in ``context`` nearest ``start`` (the earlier one on a tie).

    Two linear-time ``str.find`` calls: the first occurrence from ``start`` on, and the last one before it (the
    first of the reversed text in the reversed context). Listing every overlapping occurrence, or ``rfind``,
    takes quadratic time on a long repetitive answer. Needs ``0 <= start <= len(context) - len(text)``.
    """
    after = context.find(text, start)
    mirrored = context[::-1].find(text[::-1], len(context) - len(text) - start + 1)
    before = -1 if mirrored == -1 else len(context) - len(text) - mirrored
    found = [position for position in (before, after) if position != -1]
    return min(found, key=lambda p: (abs(p - start), p)) if found else None


def _load_json(path: Path) -> object:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=path) from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic number, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"not a readable gzip file ({exc})", path=path) from None
    text = decode_utf8(raw, path)  # drops a UTF-8 byte-order mark
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", path=path) from None
    except ValueError as exc:  # a number of over 4300 digits, which Python will not convert
        raise DataError(f"not valid JSON: {str(exc).partition(':')[0]}", path=path) from None


@dataclass
class _SquadReader:
    """Walks the parsed JSON; every error names the file and the JSON path of the bad value."""

    path: Path
    seen: dict[str, str] = field(default_factory=dict)  # question id -> JSON path where it first appeared
    report: Counter = field(default_factory=Counter)
    repaired_ids: list[str] = field(default_factory=list)
    version: str | None = None  # the file's "version" value, when it has one

    def fail(self, message: str, where: str | None) -> DataError:
        return DataError(message, path=self.path, field=where)

    def typed(self, value: object, kind: type, where: str | None) -> object:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"expected {_TYPE_NAMES[kind]}, found {_json_type(value)}", where)
        surrogate = lone_surrogate(value) if kind is str else None
        if surrogate is not None:  # from a "\ud800" escape: not valid text, and the tokenizer would fail on it
            raise self.fail(f"a lone surrogate ({shown(surrogate)}) is not valid text", where)
        return value

    def get(self, obj: dict, key: str, kind: type, where: str) -> object:
        field_path = f"{where}.{key}" if where else key
        if key not in obj:
            raise self.fail("required key is missing", field_path)
        return self.typed(obj[key], kind, field_path)

    def read(self, root: object) -> list[QAExample]:
        self.typed(root, dict, None)
        version = root.get("version")
        self.version = version if isinstance(version, str) else None
        examples = []
        for a, article in enumerate(self.get(root, "data", list, "")):
            where = f"data[{a}]"
            self.typed(article, dict, where)
            self.report["articles"] += 1
            for p, paragraph in enumerate(self.get(article, "paragraphs", list, where)):
                examples.extend(self.paragraph(paragraph, f"{where}.paragraphs[{p}]"))
        return examples

    def paragraph(self, paragraph: object, where: str) -> list[QAExample]:
        self.typed(paragraph, dict, where)
        self.report["paragraphs"] += 1
        context = self.get(paragraph, "context", str, where)
        if not context.strip():
            raise self.fail("empty context", f"{where}.context")
        qas = self.get(paragraph, "qas", list, where)
        return [self.question(qa, context, f"{where}.qas[{q}]") for q, qa in enumerate(qas)]

    def question(self, qa: object, context: str, where: str) -> QAExample:
        self.typed(qa, dict, where)
        qid = self.get(qa, "id", str, where)
        if qid in self.seen:
            raise self.fail(f"duplicate question id '{shown(qid)}' (first at {self.seen[qid]})", f"{where}.id")
        self.seen[qid] = where
        question = self.get(qa, "question", str, where)
        if not question.strip():
            raise self.fail("empty question", f"{where}.question")
        impossible = self.get(qa, "is_impossible", bool, where) if "is_impossible" in qa else False
        raw_answers = self.get(qa, "answers", list, where)  # v2's "plausible_answers" are ignored
        if impossible and raw_answers:
            raise self.fail("a question marked is_impossible must have no answers", f"{where}.answers")
        if not impossible and not raw_answers:
            raise self.fail("no answers, and the question is not marked is_impossible", f"{where}.answers")
        answers = [self.answer(item, context, qid, f"{where}.answers[{k}]") for k, item in enumerate(raw_answers)]
        self.report["questions"] += 1
        self.report["answers"] += len(answers)
        self.report["impossible"] += impossible
        return QAExample(qid, question, context, answers, impossible)

    def answer(self, item: object, context: str, qid: str, where: str) -> Answer:
        self.typed(item, dict, where)
        text = self.get(item, "text", str, where)
        if not text.strip():
            raise self.fail("empty answer text", f"{where}.text")
        start = self.get(item, "answer_start", int, where)
        if start < 0 or start + len(text) > len(context):
            message = f"{start} is out of range for an answer of {len(text)} characters in a context of {len(context)}"
            raise self.fail(message, f"{where}.answer_start")
        if context[start : start + len(text)] != text:
            nearest = _nearest_occurrence(context, text, start)
            if nearest is None:
                raise self.fail(f"answer text {text!r} does not occur in the context", f"{where}.text")
            start = nearest
            self.report["repaired"] += 1
            self.repaired_ids.append(qid)
        return Answer(text, start)


def read_squad(path: str | Path) -> tuple[list[QAExample], dict]:
    """Read a SQuAD v1.1 or v2.0 JSON file (``.json`` or gzipped) into examples and a report.

    An ``answer_start`` whose slice of the context is not the answer text is moved to the occurrence of the
    text nearest the given offset (the earlier of two equally near) and counted in ``report["repaired"]``;
    ``report["repaired_ids"]`` holds the question id of each repaired answer. A text that does not occur at all, and any
    other bad input, raises ``DataError`` naming the file and the JSON path (``data[3].paragraphs[0]...``).
    The report also counts articles, paragraphs, questions, answers and impossible (v2) questions.
    """
    path = Path(path)
    reader = _SquadReader(path)
    examples = reader.read(_load_json(path))
    keys = ("articles", "paragraphs", "questions", "answers", "impossible", "repaired")
    report: dict = {"path": str(path), "version": reader.version, **{k: reader.report[k] for k in keys}}
    report["repaired_ids"] = reader.repaired_ids
    return examples, report
