"""Hostile input for the word-vectors readers (GloVe / word2vec text and binary, gzipped or not).

The same contract as tests/test_hostile_input.py: whatever the bytes, ``read_vectors`` returns words and
an (N, D) float32 matrix, or raises ``ModelError`` whose message is one printable line naming the file (and
the line, where there is one). Never a library's own exception, never a hang, never a giant allocation
because a header says so. Well-formed files read back exactly what was written.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmtransfer.core.errors import ModelError
from lmtransfer.encoders.vector_files import read_vectors
from tests.test_hostile_input import (  # noqa: F401
    FUZZ,
    _time_limit,
    any_bytes,
    any_text,
    flavoured,
    line_count,
    mutated,
    outcome,
    write,
)

pytest.importorskip("gensim")

VECTORS_ALPHABET = "the cat 0123456789.-e+\n \t\r\x00é"
SUFFIXES = st.sampled_from([".txt", ".vec", ".bin", ".txt.gz", ".bin.gz"])
WORD = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "S"], exclude_characters="\x85\u2028\u2029"),
    min_size=1,
    max_size=8,
).filter(lambda w: any(c.isalpha() for c in w))  # a word of digits alone could pass for a word2vec header


def read_any(path: Path, kind: str, lines: int | None):
    result = outcome(kind, ModelError, lambda: read_vectors(path), {str(path): lines})
    if not isinstance(result, ModelError):
        words, vectors = result
        assert vectors.dtype == np.float32 and vectors.ndim == 2 and vectors.shape[1] >= 1
        assert len(words) == vectors.shape[0] >= 1
    return result


def store(tmp: Path, suffix: str, data: bytes) -> Path:
    return write(tmp, f"in{suffix}", gzip.compress(data) if suffix.endswith(".gz") else data)


@FUZZ
@given(data=st.one_of(any_bytes, any_text, flavoured(VECTORS_ALPHABET)), suffix=SUFFIXES)
def test_read_vectors_random_input(tmp_path, data, suffix):
    read_any(store(tmp_path, suffix, data), "vectors random", None)


@st.composite
def vectors_table(draw) -> tuple[list[str], np.ndarray]:
    words = draw(st.lists(WORD, min_size=1, max_size=6, unique=True))
    dim = draw(st.integers(2, 5))
    values = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    rows = draw(st.lists(st.lists(values, min_size=dim, max_size=dim), min_size=len(words), max_size=len(words)))
    return words, np.array(rows, dtype=np.float32).reshape(len(words), dim)


def text_file(words: list[str], vectors: np.ndarray, header: bool) -> bytes:
    lines = [f"{len(words)} {vectors.shape[1]}"] if header else []
    lines += [f"{w} {' '.join(repr(float(x)) for x in row)}" for w, row in zip(words, vectors)]
    return ("\n".join(lines) + "\n").encode("utf-8")


@FUZZ
@given(table=vectors_table(), layout=st.sampled_from(["glove", "word2vec", "word2vec-binary"]), gz=st.booleans())
def test_read_vectors_reads_back_what_was_written(tmp_path, table, layout, gz):
    words, vectors = table
    if layout == "word2vec-binary":
        from gensim.models import KeyedVectors

        kv = KeyedVectors(vectors.shape[1])
        kv.add_vectors(words, vectors)
        path = tmp_path / "out.bin"
        kv.save_word2vec_format(str(path), binary=True)
        data, suffix = path.read_bytes(), ".bin"
    else:
        data, suffix = text_file(words, vectors, header=layout == "word2vec"), ".txt"
    read_words, read_rows = read_vectors(store(tmp_path, suffix + (".gz" if gz else ""), data))
    assert read_words == words
    np.testing.assert_array_equal(read_rows, vectors)


@FUZZ
@given(table=vectors_table(), header=st.booleans(), draw=st.data())
def test_read_vectors_mutated_valid_file(tmp_path, table, header, draw):
    data = draw.draw(mutated(text_file(*table, header=header), separators=(b" ",)))
    read_any(store(tmp_path, ".txt", data), "vectors mutated", line_count(data))


@pytest.mark.parametrize(("count", "dim"), [(10**9, 300), (3, 10**9)])
def test_a_binary_header_cannot_ask_for_more_than_the_file_holds(tmp_path, count, dim):
    path = write(tmp_path, "huge.bin", f"{count} {dim}\n".encode() + b"cat " + b"\x00" * 16)
    with pytest.raises(ModelError, match="holds"):
        read_vectors(path)
