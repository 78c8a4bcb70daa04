"""Extractive question answering (SQuAD v1.1 / v2.0): reading, windows, span decoding and metrics.

The four steps, each usable alone:

1. ``read_squad`` reads SQuAD JSON (optionally gzipped) into ``QAExample`` objects, checking every field and
   repairing ``answer_start`` offsets that point at the wrong place when the answer text occurs elsewhere.
2. ``make_windows`` tokenises question + context with a fast tokenizer into overlapping windows (a long
   context gives several), with the gold start / end token of the first answer for training.
3. ``best_spans`` and ``predict_answers`` turn per-token start / end logits back into answer strings cut
   from the original context, with the SQuAD v2 "no answer" rule when a ``null_threshold`` is given.
4. ``exact_match``, ``f1`` and ``squad_metrics`` score predictions with the official SQuAD normalisation.

Nothing here loads a model or writes a file.
"""

from __future__ import annotations

import gzip
import json
import re
import string
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from lmtransfer.data import decode_utf8, lone_surrogate
from lmtransfer.errors import DataError, shown

# ---------------------------------------------------------------------------------------------- reading


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


# ---------------------------------------------------------------------------------------------- windows


@dataclass
class QAWindows:
    """Tokenised windows over (question, context) pairs: one entry per window in every list / array.

    Windows are not padded (lengths differ); the caller pads per batch with the tokenizer's pad id and
    attention mask 0. A window is ``[CLS] question [SEP] context-part [SEP]`` for BERT-like tokenizers;
    consecutive windows of one example share ``stride`` context tokens. The gold positions point at the
    tokens that cover the first answer when that answer lies wholly in the window, else both at 0 (the
    CLS token), as they do for impossible (v2) questions.
    """

    input_ids: list[np.ndarray]  # each (T_w,) int64
    attention_mask: list[np.ndarray]  # each (T_w,) int64, all ones until the caller pads
    token_type_ids: list[np.ndarray] | None  # each (T_w,) int64; None when the tokenizer makes none
    example_index: np.ndarray  # (W,) int64: the example each window comes from
    context_mask: list[np.ndarray]  # each (T_w,) bool: True on context tokens (sequence id 1)
    context_range: np.ndarray  # (W, 2) int64: first context token, one past the last ((0, 0) if none)
    offsets: list[np.ndarray]  # each (T_w, 2) int64: character span in the original context; -1 off context
    start_positions: np.ndarray  # (W,) int64: gold first answer token, 0 when not in the window
    end_positions: np.ndarray  # (W,) int64: gold last answer token (inclusive), 0 when not in the window

    def __len__(self) -> int:
        return len(self.input_ids)

    def windows_of(self, example: int) -> np.ndarray:
        """The indices of the windows built from example number ``example``, in context order."""
        return np.flatnonzero(self.example_index == example)  # (k,)


def _truncate_questions(tokenizer: PreTrainedTokenizerBase, examples: list[QAExample], limit: int) -> list[str]:
    """Questions stripped and cut after their first ``limit`` tokens (at the end character of token ``limit``)."""
    questions = [example.question.strip() for example in examples]
    if not questions:  # a fast tokenizer fails on an empty batch
        return questions
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    for i, offsets in enumerate(encoded["offset_mapping"]):
        if len(offsets) > limit:
            questions[i] = questions[i][: offsets[limit - 1][1]]
    return questions


def _check_room(
    tokenizer: PreTrainedTokenizerBase, examples: list[QAExample], questions: list[str], max_length: int, stride: int
) -> None:
    """Each window must have room for more than ``stride`` context tokens, or the tokenizer fails (a Rust panic)."""
    if not examples:
        return
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False, verbose=False)["input_ids"]]
    for example, length in zip(examples, lengths):
        room = max_length - specials - length
        if room <= stride:
            raise DataError(
                f"example '{example.id}': the question takes {length} tokens (+{specials} special), leaving "
                f"{room} for the context in max_length={max_length}; that must be more than stride={stride}",
                field="question",
            )


def _gold_tokens(offsets: np.ndarray, context_mask: np.ndarray, example: QAExample) -> tuple[int, int]:
    """First and last token covering the first answer, or (0, 0) when it is not wholly inside this window."""
    if example.is_impossible or not example.answers:
        return 0, 0
    answer = example.answers[0]
    first, last = answer.start, answer.start + len(answer.text)  # characters [first, last)
    tokens = np.flatnonzero(context_mask)  # (C,)
    if tokens.size == 0:
        return 0, 0
    starts, ends = offsets[tokens, 0], offsets[tokens, 1]  # (C,), (C,)
    if starts[0] > first or ends[-1] < last:
        return 0, 0
    start = tokens[np.argmax(ends > first)]  # the first token that ends after the answer begins
    end = tokens[tokens.size - 1 - np.argmax(starts[::-1] < last)]  # the last token that begins before it ends
    return (int(start), int(end)) if start <= end else (0, 0)


def make_windows(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[QAExample],
    max_length: int = 384,
    stride: int = 128,
    max_query_length: int = 64,
    chunk_size: int = 1000,
) -> QAWindows:
    """Tokenise every (question, context) pair into windows of at most ``max_length`` tokens.

    The question (stripped of surrounding whitespace) is first cut to ``max_query_length`` tokens. The context
    is truncated "only_second" with overflow, so a long one gives several windows that overlap by ``stride``
    tokens. Needs a fast tokenizer (for offsets). ``chunk_size`` examples are tokenised per call. A question
    that leaves no more than ``stride`` tokens for the context raises ``DataError`` naming the example.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("make_windows needs a fast (Rust-backed) tokenizer for its offset mapping")
    if max_query_length < 1 or stride < 0 or chunk_size < 1:
        raise ValueError("max_query_length and chunk_size must be positive and stride not negative")
    questions = _truncate_questions(tokenizer, examples, max_query_length)
    _check_room(tokenizer, examples, questions, max_length, stride)
    parts: dict[str, list] = {key: [] for key in ("input_ids", "attention_mask", "token_type_ids", "offsets")}
    example_index, context_mask, context_range, gold = [], [], [], []
    for begin in range(0, len(examples), chunk_size):
        chunk = examples[begin : begin + chunk_size]
        encoded = tokenizer(
            questions[begin : begin + chunk_size],
            [example.context for example in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        for w, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            is_context = np.array([s == 1 for s in encoded.sequence_ids(w)], dtype=bool)  # (T,)
            offsets = np.asarray(encoded["offset_mapping"][w], dtype=np.int64).reshape(-1, 2)  # (T, 2)
            offsets[~is_context] = -1
            positions = np.flatnonzero(is_context)  # (C,)
            example_index.append(begin + sample)
            context_mask.append(is_context)
            context_range.append((positions[0], positions[-1] + 1) if positions.size else (0, 0))
            gold.append(_gold_tokens(offsets, is_context, chunk[sample]))
            parts["offsets"].append(offsets)
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                if key in encoded:
                    parts[key].append(np.asarray(encoded[key][w], dtype=np.int64))  # (T,)
    gold_array = np.array(gold, dtype=np.int64).reshape(-1, 2)  # (W, 2)
    return QAWindows(
        input_ids=parts["input_ids"],
        attention_mask=parts["attention_mask"],
        token_type_ids=parts["token_type_ids"] or None,
        example_index=np.array(example_index, dtype=np.int64),
        context_mask=context_mask,
        context_range=np.array(context_range, dtype=np.int64).reshape(-1, 2),
        offsets=parts["offsets"],
        start_positions=gold_array[:, 0],
        end_positions=gold_array[:, 1],
    )


# ---------------------------------------------------------------------------------------------- decoding


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_mask: np.ndarray,
    max_answer_length: int,
    n_best: int = 20,
) -> list[tuple[float, int, int]]:
    """The ``n_best`` highest-scoring spans as ``(start_logit + end_logit, start, end)``, best first.

    A span is allowed when ``start <= end < start + max_answer_length`` and both its start and its end
    token are context tokens (``context_mask``). Ties keep the span with the smaller start first, then
    the smaller end (the order of a stable sort over spans listed by start, then end). Scores are summed
    in float64. Computed on the (T, max_answer_length) band of the outer sum, not the full (T, T) square.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64).reshape(-1)  # (T,)
    end_logits = np.asarray(end_logits, dtype=np.float64).reshape(-1)  # (T,)
    context_mask = np.asarray(context_mask, dtype=bool).reshape(-1)  # (T,)
    length = start_logits.shape[0]
    if end_logits.shape[0] != length or context_mask.shape[0] != length:
        raise ValueError("start_logits, end_logits and context_mask must have the same length")
    band = min(max_answer_length, length)
    if band < 1 or n_best < 1:
        return []
    ends = np.arange(length)[:, None] + np.arange(band)[None, :]  # (T, L): end token of span (row start, col k)
    inside = ends < length  # (T, L)
    ends = np.minimum(ends, length - 1)  # (T, L)
    allowed = inside & context_mask[:, None] & context_mask[ends]  # (T, L)
    scores = start_logits[:, None] + end_logits[ends]  # (T, L)
    flat = np.flatnonzero(allowed)  # (K,) ordered by start, then end
    values = scores.reshape(-1)[flat]  # (K,)
    if values.size > n_best:  # keep the top n_best and everything tied with the last of them
        kth = np.partition(values, values.size - n_best)[values.size - n_best]
        keep = np.flatnonzero(values >= kth)  # (K',)
        flat, values = flat[keep], values[keep]
    order = np.argsort(-values, kind="stable")[:n_best]  # (n,)
    return [(float(values[i]), int(flat[i] // band), int(flat[i] // band + flat[i] % band)) for i in order]


def _window_logits(logits: np.ndarray, length: int, name: str) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)  # (T_padded,)
    if logits.shape[0] < length:
        raise ValueError(f"{name} has {logits.shape[0]} values for a window of {length} tokens")
    return logits[:length]  # (T,): padding positions beyond the window are dropped


def predict_answers(
    examples: list[QAExample],
    windows: QAWindows,
    start_logits: list[np.ndarray],
    end_logits: list[np.ndarray],
    max_answer_length: int = 30,
    n_best: int = 20,
    null_threshold: float | None = None,
) -> dict[str, str]:
    """Answer text per example id: the best span over all of an example's windows, cut from its original context.

    ``start_logits[w]`` / ``end_logits[w]`` belong to window ``w``; they may be longer than the window
    (batch padding) and are cut to its length. Of a window's ``n_best`` spans the best one whose character
    range is not empty is used; between windows the higher score wins (the earlier window on a tie).
    With ``null_threshold`` set (SQuAD v2) the answer is "" when the null score, ``start[0] + end[0]``
    minimised over the example's windows, exceeds the best span score by more than ``null_threshold``.
    An example with no usable span gets "".
    """
    if len(start_logits) != len(windows) or len(end_logits) != len(windows):
        raise ValueError(f"{len(windows)} windows, but {len(start_logits)} start and {len(end_logits)} end logits")
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for w in range(len(windows)):
        index, length = int(windows.example_index[w]), len(windows.input_ids[w])
        start = _window_logits(start_logits[w], length, "start_logits")  # (T,)
        end = _window_logits(end_logits[w], length, "end_logits")  # (T,)
        null[index] = min(null.get(index, np.inf), float(start[0] + end[0]))
        offsets = windows.offsets[w]  # (T, 2)
        for score, first, last in best_spans(start, end, windows.context_mask[w], max_answer_length, n_best):
            begin, stop = int(offsets[first, 0]), int(offsets[last, 1])
            if stop > begin:
                if index not in best or score > best[index][0]:
                    best[index] = (score, examples[index].context[begin:stop])
                break
    predictions = {}
    for index, example in enumerate(examples):
        score, text = best.get(index, (-np.inf, ""))
        if null_threshold is not None and null.get(index, -np.inf) - score > null_threshold:
            text = ""
        predictions[example.id] = text
    return predictions


# ---------------------------------------------------------------------------------------------- metrics

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, drop punctuation, drop a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _as_list(truths: Sequence[str]) -> list[str]:
    return [truths] if isinstance(truths, str) else list(truths)


def exact_match(prediction: str, truths: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(truth) for truth in _as_list(truths)))


def _f1_one(prediction: str, truth: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not predicted or not gold:  # SQuAD v2's rule; v1.1 gives 0 here even when both are empty
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, truths: Sequence[str]) -> float:
    """Token-level F1 over normalised tokens (bag-of-tokens overlap), the maximum over the gold answers."""
    return max((_f1_one(prediction, truth) for truth in _as_list(truths)), default=0.0)


def squad_metrics(predictions: dict[str, str], examples: list[QAExample]) -> dict[str, float | int]:
    """Exact match and F1 in percent over ``examples``, and their count.

    An impossible question's gold answer is "", so it scores 1 only when the prediction normalises to ""
    (as in the SQuAD v2 script). A missing prediction scores 0; predictions for other ids are ignored.
    """
    em_total = f1_total = 0.0
    for example in examples:
        if example.id not in predictions:
            continue
        truths = [""] if example.is_impossible else [answer.text for answer in example.answers]
        em_total += exact_match(predictions[example.id], truths)
        f1_total += f1(predictions[example.id], truths)
    count = len(examples)
    scale = 100.0 / count if count else 0.0
    return {"exact_match": em_total * scale, "f1": f1_total * scale, "count": count}
