"""Static word vectors read from files: GloVe text, word2vec text or binary, fastText .bin (through gensim),
the packaged GloVe 6B-50d alias, and a saved static-vectors model directory; every damaged file is refused
with its path and line before anything large is allocated.
"""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerFast

from lmtransfer.core.choices import SCRATCH, STATIC_ALIASES, VECTORS_PREFIX, names_static_vectors
from lmtransfer.core.errors import DataError, ModelError
from lmtransfer.core.text import decode_utf8
from lmtransfer.encoders.static import StaticVectorsConfig, StaticVectorsModel, static_model

FASTTEXT_MAGIC = 793712314  # the first int32 of a fastText .bin model


def import_gensim():
    try:
        return importlib.import_module("gensim.models")
    except ImportError:
        raise ModelError("word vectors files need gensim: pip install gensim", field="model") from None


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def vectors_format(path: Path) -> str:
    """``glove`` (text, no header), ``word2vec`` (text with an 'N D' header), ``word2vec-binary`` or
    ``fasttext-binary``, from the first bytes and the suffix."""
    try:
        with _open(path) as handle:
            first = handle.readline(1 << 20)
    except OSError as exc:
        raise ModelError(f"cannot read ({exc.strerror or exc})", path=path) from None
    if len(first) >= 4 and int.from_bytes(first[:4], "little") == FASTTEXT_MAGIC:
        return "fasttext-binary"
    fields = first.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return "word2vec-binary" if path.name.lower().removesuffix(".gz").endswith(".bin") else "word2vec"
    if len(fields) >= 2 and _numbers(fields[1:]):
        return "glove"
    raise ModelError(
        "not a vectors file: neither a 'count dimension' header (word2vec, fastText .vec), a 'word v1 v2 ...' "
        "row (GloVe) nor a fastText .bin model",
        path=path,
        line=1,
    )


def _numbers(fields: Sequence[bytes | str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def _read_text(path: Path, header: bool) -> tuple[list[str], np.ndarray]:
    """A text vectors file: ``word v1 ... vD`` per line (single spaces), after an ``N D`` header in word2vec.

    Read here rather than by gensim, whose text reader takes ~40 s for GloVe's 400k words and silently
    broadcasts a row of one value to the whole dimension; every row's width is checked.
    """
    with _open(path) as handle:
        raw = handle.read()
    try:
        lines = decode_utf8(raw, path).split("\n")
    except DataError as exc:
        raise ModelError(exc.message, path=path, line=exc.line) from None
    while lines and not lines[-1].strip():
        lines.pop()
    first = 1 if header else 0
    words, rests = [], []
    for line in lines[first:]:
        word, _, rest = line.rstrip().partition(" ")
        words.append(word)
        rests.append(rest)
    if not words:
        raise ModelError("no vectors in this file", path=path)
    dim = int(lines[0].split()[1]) if header else rests[0].count(" ") + 1
    widths = np.fromiter((r.count(" ") + 1 if r else 0 for r in rests), dtype=np.int64, count=len(rests))  # (N,)
    bad = np.flatnonzero(widths != dim)
    if len(bad):
        found = int(widths[bad[0]])
        raise ModelError(f"expected a word and {dim} numbers, found {found}", path=path, line=int(bad[0]) + first + 1)
    if header and len(words) != int(lines[0].split()[0]):
        raise ModelError(f"the header announces {lines[0].split()[0]} words, the file has {len(words)}", path=path)
    try:
        values = np.fromstring(" ".join(rests), dtype=np.float32, sep=" ")  # (N * D,)
    except ValueError:  # a value that is no number: find its row (slow, errors only)
        row = next(i for i, rest in enumerate(rests) if not _numbers(rest.split(" ")))
        raise ModelError("a vector value is not a number", path=path, line=row + first + 1) from None
    if values.size != len(words) * dim:  # other whitespace (a tab) inside a row splits values too: find it
        row = next(i for i, rest in enumerate(rests) if len(rest.split()) != dim)
        found = len(rests[row].split())
        raise ModelError(f"expected a word and {dim} numbers, found {found}", path=path, line=row + first + 1)
    return words, values.reshape(len(words), dim)


def _check_binary_header(path: Path) -> None:
    """Refuse a word2vec binary header that announces more than the file holds, before gensim allocates
    a matrix of that size (a damaged header could ask for terabytes)."""
    with _open(path) as handle:
        header = handle.readline(1 << 20)
        count, dim = (int(field) for field in header.split())
        if path.suffix.lower() == ".gz":  # the size after decompression, read once (gensim reads it all anyway)
            size = len(header) + sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 24), b""))
        else:
            size = path.stat().st_size
    needed = len(header) + count * (dim * 4 + 2)  # each row: a word of one byte or more, a space, D float32
    if needed > size:
        raise ModelError(
            f"the header announces {count} words of {dim} dimensions, which needs {needed:,} bytes or more, "
            f"but the file holds {size:,}",
            path=path,
            line=1,
        )


def read_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Words and their (N, D) float32 vectors from a GloVe, word2vec (text or binary) or fastText file."""
    path = Path(path)
    kind = vectors_format(path)
    if kind in ("glove", "word2vec"):
        return _read_text(path, header=kind == "word2vec")
    if kind == "word2vec-binary":
        _check_binary_header(path)
    gensim = import_gensim()
    try:
        if kind == "fasttext-binary":
            kv = gensim.fasttext.load_facebook_vectors(str(path))
        else:
            kv = gensim.KeyedVectors.load_word2vec_format(str(path), binary=True)
    except (ValueError, EOFError, TypeError, IndexError, UnicodeDecodeError, AssertionError) as exc:
        raise ModelError(f"damaged {kind} file ({exc})", path=path) from None
    if len(kv) == 0 or kv.vector_size == 0:
        raise ModelError(f"no vectors in this {kind} file", path=path)
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)


def _packaged_vectors(alias: str) -> tuple[list[str], np.ndarray, str]:
    """Words, vectors and data folder of a packaged alias (GloVe 6B-50d: a .npy matrix, a parquet index)."""
    package = STATIC_ALIASES[alias]
    try:
        root = Path(importlib.import_module(package.replace("-", "_")).ROOT)
    except ImportError:
        raise ModelError(f"alias '{alias}' needs its vectors: pip install {package}", field="model") from None
    import pyarrow.parquet as pq

    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy")  # (400000, 50)
    return words, vectors, str(root)


def is_static_dir(path: Path) -> bool:
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == StaticVectorsConfig.model_type
    except (OSError, ValueError):
        return False


def is_static_source(name: str) -> bool:
    """A static alias, a vectors file (prefix or suffix), or a saved static-vectors model directory."""
    return names_static_vectors(name) or is_static_dir(Path(name).expanduser())


def load_static(name: str, oov: str = "zero") -> tuple[StaticVectorsModel, PreTrainedTokenizerFast, str]:
    """Model, tokenizer and resolved source for ``name`` (see ``is_static_source``); ``oov`` applies to files
    and aliases, a saved directory keeps its own policy."""
    if name == SCRATCH:
        raise ModelError(
            "'scratch' vectors are built from the training data by `lmtransfer train`; "
            "load the trained run (its encoder/ folder) instead",
            field="model",
        )
    if name in STATIC_ALIASES:
        words, vectors, source = _packaged_vectors(name)
        return (*static_model(words, vectors, oov), source)
    path = Path(name.removeprefix(VECTORS_PREFIX)).expanduser()
    if path.is_dir() and is_static_dir(path):
        return StaticVectorsModel.from_pretrained(path), PreTrainedTokenizerFast.from_pretrained(path), str(path)
    if not path.is_file():
        raise ModelError("no such vectors file", path=path)
    words, vectors = read_vectors(path)
    return (*static_model(words, vectors, oov), str(path.resolve()))
