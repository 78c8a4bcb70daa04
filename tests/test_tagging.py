"""Tag schemes (round trips, conversion, detection, CRF transition masks) and CoNLL column files."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmtransfer.core.errors import DataError
from lmtransfer.data.conll import Sentence, read_conll, tag_vocabulary, write_conll
from lmtransfer.data.tag_schemes import SCHEMES, allowed_transitions, convert, detect_scheme, from_spans, spans

TYPES = ["PER", "LOC", "MISC-X"]  # a type may hold "-": it is everything after the first one


@st.composite
def span_sets(draw) -> tuple[list[tuple[str, int, int]], int]:
    """Non-overlapping spans in order, adjacent ones included (which IOB1 must mark with B-), and a length."""
    pieces = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), st.sampled_from(TYPES)), max_size=5))
    found, position = [], 0
    for gap, size, kind in pieces:
        found.append((kind, position + gap, position + gap + size))
        position += gap + size
    return found, position + draw(st.integers(0, 2))


def allowed(tags: list[str], labels: list[str], scheme: str) -> bool:
    start, follow, end = allowed_transitions(labels, scheme)
    ids = [labels.index(tag) for tag in tags]
    if not ids:
        return True
    return bool(start[ids[0]] and end[ids[-1]] and all(follow[a, b] for a, b in itertools.pairwise(ids)))


def labels_of(scheme: str, types: list[str]) -> list[str]:
    return ["O", *(f"{prefix}-{kind}" for kind in types for prefix in SCHEMES[scheme])]


@settings(max_examples=200, deadline=None)
@given(span_sets())
def test_spans_round_trip_through_every_scheme(case):
    found, length = case
    for scheme in SCHEMES:
        tags = from_spans(found, length, scheme)
        assert len(tags) == length
        assert spans(tags, scheme) == found
        assert allowed(tags, labels_of(scheme, TYPES), scheme)


@settings(max_examples=200, deadline=None)
@given(span_sets())
def test_convert_between_every_pair_of_schemes(case):
    found, length = case
    for source, target in itertools.product(SCHEMES, repeat=2):
        assert convert(from_spans(found, length, source), source, target) == from_spans(found, length, target)


def test_from_spans_by_hand():
    found = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]
    assert from_spans(found, 6, "IOB1") == ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "O"]
    assert from_spans(found, 6, "IOB2") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "O"]
    assert from_spans(found, 6, "BIOES") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "O"]
    assert from_spans(list(reversed(found)), 6, "IOB2") == from_spans(found, 6, "IOB2")


@pytest.mark.parametrize(
    ("tags", "scheme", "want"),
    [
        (["O", "I-PER", "I-PER"], "IOB2", [("PER", 1, 3)]),  # I- after O starts an entity
        (["B-PER", "I-LOC", "I-LOC"], "IOB2", [("PER", 0, 1), ("LOC", 1, 3)]),  # a new type starts a new one
        (["I-PER", "I-LOC"], "IOB1", [("PER", 0, 1), ("LOC", 1, 2)]),
        (["B-PER", "B-PER"], "IOB1", [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "O"], "BIOES", [("PER", 0, 1)]),  # an unfinished entity ends at O
        (["B-PER", "I-PER"], "BIOES", [("PER", 0, 2)]),  # ... and at the end of the sequence
        (["E-PER", "E-PER", "I-PER", "S-PER"], "BIOES", [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3), ("PER", 3, 4)]),
        (["B-MISC-X", "I-MISC-X"], "IOB2", [("MISC-X", 0, 2)]),
        ([], "IOB2", []),
    ],
)
def test_spans_are_lenient_like_conlleval(tags, scheme, want):
    assert spans(tags, scheme) == want


def test_bad_tags_schemes_and_spans_raise_value_error():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        spans(["O"], "BIO")
    with pytest.raises(ValueError, match="E-PER"):
        spans(["B-PER", "E-PER"], "IOB2")  # not a prefix of IOB2
    with pytest.raises(ValueError, match="PER"):
        spans(["PER"], "IOB2")
    with pytest.raises(ValueError, match="overlap"):
        from_spans([("PER", 0, 2), ("LOC", 1, 3)], 4, "IOB2")
    with pytest.raises(ValueError, match="outside"):
        from_spans([("PER", 2, 5)], 4, "IOB2")
    with pytest.raises(ValueError, match="outside"):
        from_spans([("PER", 2, 2)], 4, "IOB2")


def test_detect_scheme():
    # CoNLL-2003 eng.train as released: "EU rejects German call to boycott British lamb ."
    conll2003 = ["I-ORG", "O", "I-MISC", "O", "O", "O", "I-MISC", "O", "O"]
    assert detect_scheme([conll2003]) == "IOB1"
    assert detect_scheme([["I-PER", "I-PER", "B-PER"]]) == "IOB1"
    assert detect_scheme([["B-PER", "I-LOC"]]) == "IOB1"  # I-LOC does not continue a LOC
    assert detect_scheme([["B-ORG", "O", "B-MISC", "I-MISC", "B-MISC"]]) == "IOB2"
    assert detect_scheme([["B-PER", "E-PER", "O", "S-LOC"]]) == "BIOES"
    assert detect_scheme([conll2003, ["S-LOC"]]) == "BIOES"  # any E-/S- wins, wherever it is
    assert detect_scheme([["O", "O"], []]) == "IOB2"
    assert detect_scheme(tags for tags in [["O"], ["I-PER"]]) == "IOB1"  # a generator is read once


def test_masks_shapes():
    labels = labels_of("BIOES", ["PER", "LOC"])
    start, follow, end = allowed_transitions(labels, "BIOES")
    assert start.shape == end.shape == (9,) and follow.shape == (9, 9)
    assert start.dtype == follow.dtype == end.dtype == bool
    assert [mask.shape for mask in allowed_transitions([], "IOB2")] == [(0,), (0, 0), (0,)]


@pytest.mark.parametrize(
    ("scheme", "tags"),
    [
        ("IOB2", ["I-PER"]),  # may not start inside
        ("IOB2", ["O", "I-PER"]),
        ("IOB2", ["B-PER", "I-LOC"]),
        ("IOB1", ["B-PER"]),  # B- only right after an entity of the same type
        ("IOB1", ["O", "B-PER"]),
        ("IOB1", ["I-LOC", "B-PER"]),
        ("BIOES", ["B-PER", "O"]),  # B- must go on with I- or E- of its type
        ("BIOES", ["B-PER"]),  # may not end open
        ("BIOES", ["B-PER", "I-PER"]),
        ("BIOES", ["B-PER", "E-LOC"]),
        ("BIOES", ["O", "E-PER"]),
        ("BIOES", ["S-PER", "I-PER"]),
        ("BIOES", ["I-PER", "E-PER"]),
    ],
)
def test_masks_reject_forbidden_sequences(scheme, tags):
    assert not allowed(tags, labels_of(scheme, ["PER", "LOC"]), scheme)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_masks_allow_exactly_the_well_formed_sequences(scheme):
    """Brute force: every sequence of up to 4 tags passes the masks exactly when from_spans writes it."""
    labels = labels_of(scheme, ["PER", "LOC"])
    for length in range(5):
        for tags in map(list, itertools.product(labels, repeat=length)):
            well_formed = from_spans(spans(tags, scheme), length, scheme) == tags
            assert allowed(tags, labels, scheme) == well_formed, tags


def write(tmp_path, text: str | bytes, name: str = "data.conll"):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def error_of(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_conll(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_read_conll_with_docstart_blank_lines_crlf_bom_and_tabs(tmp_path):
    text = (
        "\ufeff-DOCSTART- -X- -X- O\r\n\r\n"
        "EU NNP B-NP I-ORG\r\nrejects\tVBZ\tB-VP\tO\r\n\r\n\r\n  \t \r\n"
        "Peter NNP B-NP I-PER\r\nBlackburn NNP I-NP I-PER\r\n"
        "-DOCSTART- -X- -X- O\r\n"
        "Bonn  NNP\t B-NP   I-LOC\r\n"
    )
    sentences = read_conll(write(tmp_path, text))
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"], ["Bonn"]]
    assert [s.tags for s in sentences] == [["I-ORG", "O"], ["I-PER", "I-PER"], ["I-LOC"]]
    assert [s.line_numbers for s in sentences] == [[3, 4], [8, 9], [11]]
    assert sentences[0].lines == ["EU NNP B-NP I-ORG", "rejects\tVBZ\tB-VP\tO"]
    assert len(sentences[1]) == 2
    assert [s.tags for s in read_conll(tmp_path / "data.conll", tag_column=3)] == [s.tags for s in sentences]
    assert read_conll(tmp_path / "data.conll", tag_column=2, word_column=1)[0].words == ["NNP", "VBZ"]


def test_read_conll_errors_name_file_line_and_field(tmp_path):
    bad_bytes = write(tmp_path, b"EU I-ORG\nrejects O\nGerm\xe4n I-MISC\n", "latin1.conll")
    assert "line 3" in error_of(bad_bytes) and "UTF-8" in error_of(bad_bytes)
    short = write(tmp_path, "EU NNP B-NP I-ORG\n\nrejects VBZ B-VP\n", "short.conll")
    message = error_of(short, tag_column=3)
    assert "line 3" in message and "field 'column 4'" in message and "3 columns" in message
    assert "line 1" in error_of(short, word_column=-5)
    alone = write(tmp_path, "EU I-ORG\nrejects\n", "alone.conll")
    assert "line 2" in error_of(alone)  # with one column, the word and the tag would be the same
    for tag in ["PER", "X-PER", "B-", "b-PER"]:
        bad_tag = write(tmp_path, f"EU I-ORG\n\nrejects {tag}\n", "tag.conll")
        message = error_of(bad_tag)
        assert "line 3" in message and f"'{tag}'" in message
    for empty in ["", "\n\n", "-DOCSTART- -X- O\n\n"]:
        assert "no sentences" in error_of(write(tmp_path, empty, "empty.conll"))
    assert "cannot read" in error_of(tmp_path / "missing.conll")
    assert "cannot read" in error_of(tmp_path)


def test_write_conll_round_trip(tmp_path):
    source = write(tmp_path, "-DOCSTART- O\n\nEU\tNNP I-ORG\nrejects VBZ O\n\n\nBonn NNP I-LOC\n")
    sentences = read_conll(source)
    predicted = [["B-ORG", "O"], ["B-LOC"]]
    target = tmp_path / "out" / "predicted.conll"
    write_conll(target, sentences, predicted)
    assert target.read_text(encoding="utf-8") == "EU\tNNP I-ORG B-ORG\nrejects VBZ O O\n\nBonn NNP I-LOC B-LOC\n"
    assert [s.tags for s in read_conll(target, tag_column=-1)] == predicted
    assert [s.tags for s in read_conll(target, tag_column=-2)] == [s.tags for s in sentences]
    assert sorted(p.name for p in target.parent.iterdir()) == ["predicted.conll"]  # no temporary file left


def test_write_conll_rejects_mismatches(tmp_path):
    sentences = [Sentence(["EU", "rejects"], ["I-ORG", "O"], ["EU I-ORG", "rejects O"], [1, 2])]
    with pytest.raises(ValueError, match="2 tokens but 1 predicted"):
        write_conll(tmp_path / "out.conll", sentences, [["O"]])
    with pytest.raises(ValueError, match="1 sentences but 2"):
        write_conll(tmp_path / "out.conll", sentences, [["O", "O"], ["O"]])
    with pytest.raises(ValueError, match="space or tab"):
        write_conll(tmp_path / "out.conll", sentences, [["O", "B-NEW YORK"]])
    assert not (tmp_path / "out.conll").exists()


def test_tag_vocabulary():
    sentences = [
        Sentence(["a", "b"], ["I-PER", "O"], ["a I-PER", "b O"], [1, 2]),
        Sentence(["c"], ["B-LOC"], ["c B-LOC"], [4]),
    ]
    assert tag_vocabulary(sentences) == ["O", "B-LOC", "I-PER"]
    assert tag_vocabulary([]) == ["O"]
