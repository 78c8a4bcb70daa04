"""Extractive QA: span decoding against brute force, windows on the tiny tokenizer, metrics, the SQuAD reader."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lmtransfer.core.errors import DataError
from lmtransfer.data.squad import Answer, QAExample, read_squad
from lmtransfer.tasks.metrics import exact_match, f1, normalize_answer, squad_metrics
from lmtransfer.tasks.qa_answers import best_spans, predict_answers
from lmtransfer.tasks.qa_windows import make_windows
from tests.conftest import WORDS

SQUAD_DEV = Path("/work/shared/data/squad_v1.1/dev-v1.1.json")

# ---------------------------------------------------------------------------------------------- best_spans


def brute_spans(start, end, mask, max_answer_length, n_best):
    """Every allowed (start, end) pair, sorted by score, then start, then end: the documented tie order."""
    length = len(start)
    spans = [
        (float(start[i]) + float(end[j]), i, j)
        for i in range(length)
        for j in range(i, min(length, i + max_answer_length))
        if mask[i] and mask[j]
    ]
    return sorted(spans, key=lambda span: (-span[0], span[1], span[2]))[:n_best]


def test_best_spans_equals_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(400):
        length = int(rng.integers(1, 40))
        if trial % 2:  # small integers: many tied scores
            start, end = rng.integers(-3, 4, size=(2, length)).astype(np.float32)
        else:
            start, end = rng.standard_normal((2, length)).astype(np.float32)
        if trial % 3:
            mask = rng.random(length) < 0.7
        else:  # a contiguous context, as in real windows
            first, last = sorted(rng.integers(0, length + 1, size=2))
            mask = np.zeros(length, dtype=bool)
            mask[first:last] = True
        max_answer_length = int(rng.integers(1, length + 4))
        n_best = int(rng.integers(1, 30))
        got = best_spans(start, end, mask, max_answer_length, n_best)
        assert got == brute_spans(start, end, mask, max_answer_length, n_best), trial


def test_best_spans_limits():
    start = np.array([0.0, 5.0, 1.0, 1.0, 9.0])
    end = np.array([0.0, 0.0, 1.0, 1.0, 9.0])
    mask = np.array([False, True, True, True, True])
    assert best_spans(start, end, mask, max_answer_length=1, n_best=1) == [(18.0, 4, 4)]
    assert best_spans(start, end, ~mask, max_answer_length=3, n_best=5) == [(0.0, 0, 0)]  # only token 0 allowed
    assert best_spans(start, end, np.zeros(5, bool), max_answer_length=3) == []
    assert len(best_spans(start, end, mask, max_answer_length=30, n_best=100)) == 10  # 4 + 3 + 2 + 1 spans
    ties = best_spans(np.zeros(3), np.zeros(3), np.ones(3, bool), max_answer_length=2)
    assert [(s, e) for _, s, e in ties] == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]


# ---------------------------------------------------------------------------------------------- windows


def long_example(rng: np.random.Generator, n_words: int = 80, at: int = 40) -> tuple[QAExample, list[int]]:
    """A context of words with odd casing and separators; the answer is words at..at+4.

    Besides the tiny vocabulary's words there are words it spells in pieces ("zebra" -> z ##e ##b ##r ##a),
    so that windows can start inside a word, and one it cannot spell at all ("42" -> [UNK]).
    """
    words = [str(w) for w in rng.choice([*WORDS, "zebra", "quokka", "42"], size=n_words)]
    words = [w.upper() if k % 7 == 3 else w for k, w in enumerate(words)]
    context, starts = "", []
    for word in words:
        context += str(rng.choice([" ", "  ", ", ", " - "])) if context else ""
        starts.append(len(context))
        context += word
    first, last = starts[at], starts[at + 4] + len(words[at + 4])
    answer = Answer(context[first:last], first)
    return QAExample("long", "was the plot good", context, [answer]), starts


def context_tokens(windows, w):
    """(id, (start, end)) of the context tokens of window w, in order."""
    ids, offsets = windows.input_ids[w], windows.offsets[w]
    return [(int(ids[t]), tuple(int(x) for x in offsets[t])) for t in np.flatnonzero(windows.context_mask[w])]


def test_windows_cover_context_with_stride(tiny_encoder):
    tokenizer = tiny_encoder.tokenizer
    example, _ = long_example(np.random.default_rng(1))
    stride = 8
    windows = make_windows(tokenizer, [example], max_length=32, stride=stride, max_query_length=16)
    assert len(windows) >= 4 and windows.token_type_ids is not None
    full = tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True)
    expected = list(zip(full["input_ids"], (tuple(o) for o in full["offset_mapping"])))
    position = 0
    for w in range(len(windows)):
        tokens = context_tokens(windows, w)
        begin, stop = windows.context_range[w]
        assert len(windows.input_ids[w]) <= 32 and np.all(windows.attention_mask[w] == 1)
        assert np.flatnonzero(windows.context_mask[w]).tolist() == list(range(begin, stop))
        assert np.all(windows.offsets[w][~windows.context_mask[w]] == -1)
        assert np.all(windows.token_type_ids[w][windows.context_mask[w]] == 1)
        if w > 0:
            position -= stride  # consecutive windows share exactly `stride` context tokens
        assert tokens == expected[position : position + len(tokens)]
        position += len(tokens)
    assert position == len(expected)  # the last window ends with the last context token


def test_gold_positions_map_back_to_the_answer(tiny_encoder):
    tokenizer = tiny_encoder.tokenizer
    rng = np.random.default_rng(2)
    examples = [long_example(rng, at=at)[0] for at in (0, 33, 70)]
    examples = [QAExample(f"q{i}", e.question, e.context, e.answers) for i, e in enumerate(examples)]
    examples.append(QAExample("none", "was it good", examples[0].context, [], is_impossible=True))
    windows = make_windows(tokenizer, examples, max_length=32, stride=8)
    for i, example in enumerate(examples):
        hits = 0
        for w in windows.windows_of(i):
            start, end = int(windows.start_positions[w]), int(windows.end_positions[w])
            offsets = windows.offsets[w]
            if example.is_impossible:
                assert (start, end) == (0, 0)
                continue
            answer = example.answers[0]
            first, last = answer.start, answer.start + len(answer.text)
            inside = (
                offsets[windows.context_range[w][0], 0] <= first and offsets[windows.context_range[w][1] - 1, 1] >= last
            )
            if inside:
                assert windows.context_mask[w][start] and windows.context_mask[w][end]
                assert example.context[offsets[start, 0] : offsets[end, 1]] == answer.text
                hits += 1
            else:
                assert (start, end) == (0, 0)
        assert example.is_impossible or hits >= 1
    assert (windows.start_positions == 0).any()  # some windows do not hold their answer


def test_gold_positions_against_brute_force(tiny_encoder):
    """Windows that start and end inside words: gold = the window positions of every token the answer touches."""
    tokenizer = tiny_encoder.tokenizer
    words = ["zebra", "(Quokka)", "the", "42", "Zebra"] * 5  # 5, 8, 1, 1 and 5 tokens
    context = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    spans = {"zebra": [(0, 3), (2, 5)], "Zebra": [(0, 3), (2, 5)], "(Quokka)": [(1, 7)]}  # "zeb", "bra", "Quokka"
    examples = []
    for k, word in enumerate(words):
        options = spans.get(word, [(0, len(word))])
        first, last = options[k % len(options)]
        answer = Answer(word[first:last], int(starts[k]) + first)
        examples.append(QAExample(str(k), "was", context, [answer]))
    full = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    full_tokens = list(zip(full["input_ids"], (tuple(o) for o in full["offset_mapping"])))
    for max_length, stride in [(16, 4), (15, 2), (17, 5), (13, 0)]:
        check_gold_brute_force(make_windows(tokenizer, examples, max_length, stride), examples, full_tokens)


def check_gold_brute_force(windows, examples, full_tokens):
    for w in range(len(windows)):
        context = examples[windows.example_index[w]].context
        answer = examples[windows.example_index[w]].answers[0]
        touched = [t for t in full_tokens if t[1][1] > answer.start and t[1][0] < answer.start + len(answer.text)]
        tokens = context_tokens(windows, w)
        expected = (0, 0)
        if all(t in tokens for t in touched):
            begin = int(windows.context_range[w][0])
            expected = (begin + tokens.index(touched[0]), begin + tokens.index(touched[-1]))
        assert (windows.start_positions[w], windows.end_positions[w]) == expected, w
        if expected != (0, 0):
            offsets = windows.offsets[w]
            assert context[offsets[expected[0], 0] : offsets[expected[1], 1]] == answer.text


def test_question_truncated_to_max_query_length(tiny_encoder):
    tokenizer = tiny_encoder.tokenizer
    question = "was the plot good and the acting bad and the film great or awful"
    example = QAExample("q", question, "the movie was great", [Answer("great", 14)])
    windows = make_windows(tokenizer, [example], max_length=32, stride=4, max_query_length=5)
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    ids = windows.input_ids[0].tolist()
    assert ids[1:7] == [*question_ids[:5], tokenizer.sep_token_id]
    tokens = windows.input_ids[0][windows.start_positions[0] : windows.end_positions[0] + 1]
    assert tokenizer.decode(tokens) == "great"


def test_question_too_long_names_the_example(tiny_encoder):
    question = "was the plot good and the acting bad and the film great"  # 12 tokens
    example = QAExample("q-long", question, "the movie was great", [Answer("great", 14)])
    with pytest.raises(DataError, match="q-long"):
        make_windows(tiny_encoder.tokenizer, [example], max_length=16, stride=4)
    windows = make_windows(tiny_encoder.tokenizer, [example], max_length=16, stride=4, max_query_length=8)
    assert len(windows) >= 1


# ---------------------------------------------------------------------------------------------- predict_answers


def span_logits(windows, w, first_char, last_char, score, pad=6):
    """Start/end logits for window w (padded by `pad` positions of large values) that favour one char span."""
    length = len(windows.input_ids[w])
    start, end = np.zeros(length + pad), np.zeros(length + pad)
    start[length:] = end[length:] = 100.0  # batch padding: must be ignored
    offsets = windows.offsets[w]
    tokens = np.flatnonzero(windows.context_mask[w])
    start[tokens[offsets[tokens, 0] == first_char][0]] = score / 2
    end[tokens[offsets[tokens, 1] == last_char][0]] = score / 2
    return start, end


def test_predict_answers_returns_the_original_substring(tiny_encoder):
    filler = " ".join(["news of the day"] * 8)
    context = f"{filler}, and Shares  ROSE in\tthe Market, {filler}!"
    target = "Shares  ROSE in\tthe Market"
    first = context.index(target)
    example = QAExample("q", "what rose", context, [Answer(target, first)])
    windows = make_windows(tiny_encoder.tokenizer, [example], max_length=32, stride=8)
    w = int(np.flatnonzero(windows.start_positions)[0])
    assert w > 0  # the answer is not in the first window
    starts, ends = [], []
    for v in range(len(windows)):
        begin = windows.context_range[v][0]
        decoy = (int(windows.offsets[v][begin, 0]), int(windows.offsets[v][begin, 1]))
        s, e = (
            span_logits(windows, v, first, first + len(target), 9.0) if v == w else span_logits(windows, v, *decoy, 5.0)
        )
        starts.append(s)
        ends.append(e)
    assert predict_answers([example], windows, starts, ends) == {"q": target}
    assert predict_answers([example], windows, starts, ends, max_answer_length=3)["q"] != target  # 5 tokens long

    for s, e in zip(starts, ends):
        s[0] = e[0] = 10.0  # every window's null score is 20
    assert predict_answers([example], windows, starts, ends, null_threshold=5.0) == {"q": ""}  # 20 - 9 > 5
    assert predict_answers([example], windows, starts, ends, null_threshold=11.0) == {"q": target}  # not more
    starts[-1][0] = ends[-1][0] = 2.0  # the minimum null score over windows (4) is the one compared
    assert predict_answers([example], windows, starts, ends, null_threshold=0.0) == {"q": target}


# ---------------------------------------------------------------------------------------------- metrics


def test_normalisation_and_exact_match():
    assert normalize_answer("  The Cat!  sat, an\tapple ") == "cat sat apple"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert exact_match("The Cat", ["cat"]) == 1.0
    assert exact_match("a cat.", ["dog", "the  cat"]) == 1.0
    assert exact_match("cats", ["cat"]) == 0.0


def test_f1_by_hand():
    assert f1("the cat sat", ["cat sat down"]) == pytest.approx(0.8)  # P = 2/2, R = 2/3
    assert f1("x y y", ["y y z w"]) == pytest.approx(4 / 7)  # overlap counts repeats: P = 2/3, R = 2/4
    assert f1("x y y", ["nothing", "y y z w"]) == pytest.approx(4 / 7)  # the maximum over gold answers
    assert f1("dog", ["cat"]) == 0.0
    assert f1("", ["cat"]) == 0.0


def test_squad_metrics_with_impossible_questions():
    examples = [
        QAExample("a", "q", "the cat sat", [Answer("the cat", 0)]),
        QAExample("b", "q", "the cat sat", [Answer("cat sat", 4)]),
        QAExample("c", "q", "the cat sat", [], is_impossible=True),
        QAExample("d", "q", "the cat sat", [], is_impossible=True),
        QAExample("e", "q", "the cat sat", [], is_impossible=True),
    ]
    predictions = {"a": "Cat", "b": "cat", "c": "", "d": "cat", "e": "the", "other": "x"}
    metrics = squad_metrics(predictions, examples)
    # EM: a 1, b 0, c 1, d 0, e 1 ("the" normalises to ""); F1: b = 2 * 1 * 0.5 / 1.5 = 2/3
    assert metrics["count"] == 5
    assert metrics["exact_match"] == pytest.approx(60.0)
    assert metrics["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0 + 1) / 5)
    assert squad_metrics({}, examples)["exact_match"] == 0.0  # a missing prediction scores 0


# ---------------------------------------------------------------------------------------------- read_squad

CONTEXT = "the cat sat on the mat. the cat ran."


def squad_doc(version: str = "1.1") -> dict:
    qas = [
        {"id": "q1", "question": "who sat?", "answers": [{"text": "the cat", "answer_start": 0}]},
        {"id": "q2", "question": "where?", "answers": [{"text": "the mat", "answer_start": 15}]},
    ]
    return {"version": version, "data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}


def write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_read_v11_with_repaired_offsets(tmp_path):
    doc = squad_doc()
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    qas[0]["answers"].append({"text": "the cat", "answer_start": 25})  # occurrences at 0 and 24: 24 is nearer
    qas[1]["answers"].append({"text": "the cat", "answer_start": 12})  # 12 from both: the earlier wins
    examples, report = read_squad(write_json(tmp_path / "train.json", doc))
    assert [e.id for e in examples] == ["q1", "q2"]
    assert examples[0].answers == [Answer("the cat", 0), Answer("the cat", 24)]
    assert examples[1].answers == [Answer("the mat", 15), Answer("the cat", 0)]
    assert report["repaired"] == 2 and report["repaired_ids"] == ["q1", "q2"]
    assert (report["version"], report["questions"], report["answers"], report["impossible"]) == ("1.1", 2, 4, 0)


def test_read_v20_gzip_and_byte_order_mark(tmp_path):
    doc = squad_doc("v2.0")
    doc["data"][0]["paragraphs"][0]["qas"].append(
        {
            "id": "q3",
            "question": "what flew?",
            "answers": [],
            "is_impossible": True,
            "plausible_answers": [{"text": "cat", "answer_start": 4}],
        }
    )
    path = tmp_path / "dev.json.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + json.dumps(doc).encode("utf-8")))
    examples, report = read_squad(path)
    assert [e.is_impossible for e in examples] == [False, False, True]
    assert examples[2].answers == [] and report["impossible"] == 1 and report["repaired"] == 0


QA0 = ("data", 0, "paragraphs", 0, "qas", 0)
QA1 = ("data", 0, "paragraphs", 0, "qas", 1)
ANSWER = (*QA0, "answers", 0)
DELETE = object()

BAD_FIELDS = [
    (("data",), DELETE, "field 'data': required key is missing"),
    (("data",), {}, "field 'data': expected a list, found an object"),
    (("data", 0, "paragraphs"), DELETE, "field 'data[0].paragraphs': required key is missing"),
    (("data", 0, "paragraphs", 0, "qas"), {}, "field 'data[0].paragraphs[0].qas': expected a list"),
    (("data", 0, "paragraphs", 0, "context"), 5, "paragraphs[0].context': expected a string, found a number"),
    (("data", 0, "paragraphs", 0, "context"), "  ", "paragraphs[0].context': empty context"),
    ((*QA0, "id"), DELETE, "qas[0].id': required key is missing"),
    ((*QA1, "id"), "q1", "qas[1].id': duplicate question id 'q1' (first at data[0].paragraphs[0].qas[0])"),
    ((*QA1, "question"), " ", "qas[1].question': empty question"),
    ((*QA0, "is_impossible"), "yes", "qas[0].is_impossible': expected true or false, found a string"),
    ((*QA0, "is_impossible"), True, "qas[0].answers': a question marked is_impossible must have no answers"),
    ((*QA0, "answers"), [], "qas[0].answers': no answers"),
    ((*ANSWER,), "the cat", "answers[0]': expected an object, found a string"),
    ((*ANSWER, "text"), "", "answers[0].text': empty answer text"),
    ((*ANSWER, "text"), "dog", "answers[0].text': answer text 'dog' does not occur in the context"),
    ((*ANSWER, "answer_start"), DELETE, "answers[0].answer_start': required key is missing"),
    ((*ANSWER, "answer_start"), -1, "answers[0].answer_start': -1 is out of range"),
    ((*ANSWER, "answer_start"), 30, "answers[0].answer_start': 30 is out of range"),
    ((*ANSWER, "answer_start"), "0", "answers[0].answer_start': expected an integer, found a string"),
    ((*ANSWER, "answer_start"), True, "answers[0].answer_start': expected an integer, found true or false"),
    ((*ANSWER, "answer_start"), 0.0, "answers[0].answer_start': expected an integer, found a number"),
]


def read_error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        read_squad(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


@pytest.mark.parametrize(("where", "value", "expected"), BAD_FIELDS)
def test_read_errors_name_file_and_json_path(tmp_path, where, value, expected):
    doc = copy.deepcopy(squad_doc())
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    assert expected in read_error(write_json(tmp_path / "bad.json", doc))


def test_read_errors_in_the_file_itself(tmp_path):
    not_json = tmp_path / "not.json"
    not_json.write_text('{"data": [\n  {"paragraphs": []},\n  oops\n]}', encoding="utf-8")
    assert "line 3: not valid JSON" in read_error(not_json)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"data": [],\n "version": "caf\xe9"}')
    assert "line 2: bytes that are not UTF-8" in read_error(latin1)
    bad_gzip = tmp_path / "bad.json.gz"
    bad_gzip.write_bytes(gzip.compress(json.dumps(squad_doc()).encode())[:30])
    assert "not a readable gzip file" in read_error(bad_gzip)
    assert "expected an object, found a list" in read_error(write_json(tmp_path / "list.json", []))
    assert "file not found" in read_error(tmp_path / "missing.json")


def test_read_real_squad_dev():
    if not SQUAD_DEV.exists():
        pytest.skip(f"the SQuAD v1.1 dev file is not on this machine ({SQUAD_DEV})")
    examples, report = read_squad(SQUAD_DEV)
    counts = {key: report[key] for key in ("articles", "paragraphs", "questions", "answers", "repaired")}
    assert counts == {"articles": 48, "paragraphs": 2067, "questions": 10570, "answers": 34726, "repaired": 0}
    assert report["version"] == "1.1" and len({e.id for e in examples}) == 10570
    gold = {e.id: e.answers[0].text for e in examples}
    assert squad_metrics(gold, examples) == {"exact_match": 100.0, "f1": 100.0, "count": 10570}
