"""word2vec vectors from a plain-text corpus (gensim): skip-gram or CBOW, saved where ``load_encoder`` reads them.

Lines are split into words exactly as the static-vectors tokenizer splits text (optional lowercasing, then
BERT's split on whitespace and punctuation), so every trained word is one that lookups can find.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lmtransfer.core.atomic import commit_file
from lmtransfer.core.errors import DataError, ModelError
from lmtransfer.core.progress import Progress
from lmtransfer.core.text import decode_utf8
from lmtransfer.encoders.static import split_words
from lmtransfer.encoders.vector_files import import_gensim

TEXT_SUFFIXES = (".txt", ".vec")


@dataclass
class VectorsResult:
    output: Path
    words: int  # vocabulary size (words seen at least min_count times)
    dim: int
    lines: int  # non-blank corpus lines
    tokens: int  # words in those lines
    seconds: float


class Corpus:
    """The corpus as lists of words, one per non-blank line, read again on each pass (gensim makes several).

    ``check()`` decodes every line first, so that bad bytes stop the run with their line number before
    training starts (an error inside gensim's reader thread would not reach the caller).
    """

    def __init__(self, path: Path, lowercase: bool) -> None:
        self.path, self.lowercase = path, lowercase

    def _lines(self) -> Iterator[tuple[int, str]]:
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = decode_utf8(raw, self.path)
                except DataError as exc:
                    raise DataError(exc.message, path=self.path, line=number) from None
                if text.strip():
                    yield number, text

    def check(self) -> tuple[int, int]:
        """Non-blank lines and words in them; raises DataError on a line that is not UTF-8."""
        lines = tokens = 0
        for _, words in self._split():
            lines, tokens = lines + 1, tokens + len(words)
        return lines, tokens

    def _split(self) -> Iterator[tuple[int, list[str]]]:
        splitter = split_words(self.lowercase)
        for number, text in self._lines():
            normalized = splitter.normalizer.normalize_str(text) if splitter.normalizer else text
            yield number, [word for word, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized)]

    def __iter__(self) -> Iterator[list[str]]:
        return (words for _, words in self._split())


def _epoch_bar(total: int, enabled: bool):
    """A gensim callback that moves a tqdm bar one step per finished epoch."""
    from gensim.models.callbacks import CallbackAny2Vec

    class EpochBar(CallbackAny2Vec):
        def __init__(self) -> None:
            self.bar = Progress(
                total=total, unit="epoch", desc="train-vectors", disable=not enabled, dynamic_ncols=True
            )

        def on_epoch_end(self, model) -> None:
            self.bar.update(1)

        def on_train_end(self, model) -> None:
            self.bar.close()

    return EpochBar()


def train_vectors(
    corpus: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    sg: bool = True,
    dim: int = 100,
    window: int = 5,
    min_count: int = 2,
    epochs: int = 5,
    workers: int = 3,
    seed: int = 13,
    lowercase: bool = True,
    progress: bool = True,
) -> VectorsResult:
    """Train word2vec (skip-gram when ``sg``, else CBOW) on ``corpus`` and write the vectors to ``output``
    atomically: word2vec text format for .txt / .vec, word2vec binary for .bin. Bit-for-bit reproducible
    for a seed with ``workers=1`` (more threads reorder the updates)."""
    corpus, output = Path(corpus), Path(output)
    if output.suffix.lower() not in (*TEXT_SUFFIXES, ".bin"):
        raise ModelError("the output must end in .txt or .vec (word2vec text) or .bin (word2vec binary)", path=output)
    began = time.perf_counter()
    words = Corpus(corpus, lowercase)
    lines, tokens = words.check()
    models = import_gensim()
    model = models.Word2Vec(
        vector_size=dim, window=window, min_count=min_count, sg=int(sg), seed=seed, workers=workers, epochs=epochs
    )
    model.build_vocab(words)
    if not model.wv.index_to_key:
        raise DataError(f"no word occurs {min_count} times or more (lower --min-count)", path=corpus)
    model.train(
        words,
        total_examples=model.corpus_count,
        epochs=epochs,
        callbacks=[_epoch_bar(epochs, progress)],
    )
    _save(model.wv, output)
    return VectorsResult(output, len(model.wv), dim, lines, tokens, time.perf_counter() - began)


def _save(vectors, output: Path) -> None:
    """Write to a temporary file beside ``output``, then rename it over (a kill leaves no half file)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        vectors.save_word2vec_format(str(tmp), binary=output.suffix.lower() == ".bin")
        commit_file(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
