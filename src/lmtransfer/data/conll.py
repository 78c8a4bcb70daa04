"""CoNLL column files: one token per line, columns split by spaces or tabs, a blank line between sentences.

Reading keeps every token line as it was, so that predictions can be written back as those lines with
the predicted tag appended (the format conlleval reads).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lmtransfer.core.atomic import atomic_write_text
from lmtransfer.core.errors import DataError, shown
from lmtransfer.core.text import decode_utf8
from lmtransfer.data.tag_schemes import TAG

DOCSTART = "-DOCSTART-"
_COLUMNS = re.compile(r"[ \t]+")


@dataclass
class Sentence:
    """One sentence of a CoNLL file; ``lines`` are its token lines as read, without the line end."""

    words: list[str]
    tags: list[str]
    lines: list[str]
    line_numbers: list[int]  # 1-based, one per token

    def __len__(self) -> int:
        return len(self.words)


def _column_name(index: int) -> str:
    if index >= 0:
        return f"column {index + 1}"
    return "last column" if index == -1 else f"column {-index} from the end"


def _token(columns: list[str], word_column: int, tag_column: int | None, path: Path, number: int) -> tuple[str, str]:
    if tag_column is None:  # unlabelled input: words only
        tag_column = word_column
        if not -len(columns) <= word_column < len(columns):
            message = f"missing: the line has {len(columns)} column{'s' * (len(columns) != 1)}"
            raise DataError(message, path=path, line=number, field=_column_name(word_column))
        return columns[word_column], "O"
    for index in (word_column, tag_column):
        if not -len(columns) <= index < len(columns):
            message = f"missing: the line has {len(columns)} column{'s' * (len(columns) != 1)}"
            raise DataError(message, path=path, line=number, field=_column_name(index))
    if word_column % len(columns) == tag_column % len(columns):
        message = f"the word and the tag are the same column; the line has {len(columns)}"
        raise DataError(message, path=path, line=number, field=_column_name(tag_column))
    word, tag = columns[word_column], columns[tag_column]
    if tag != "O" and not TAG.fullmatch(tag):
        message = f"tag '{shown(tag)}' is neither O nor B-, I-, E- or S- followed by a type"
        raise DataError(message, path=path, line=number, field=_column_name(tag_column))
    return word, tag


def read_conll(path: str | Path, tag_column: int | None = -1, word_column: int = 0) -> list[Sentence]:
    """Read a CoNLL column file: one token per line, columns split by spaces or tabs.

    ``tag_column=None`` reads words only (every tag "O"), for text to be tagged.

    Sentences end at blank lines and at ``-DOCSTART-`` lines, which are skipped. Column indices
    count from 0, negative ones from the end. CRLF line ends and a UTF-8 byte-order mark are fine.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror or exc})", path=path) from None
    sentences: list[Sentence] = []
    current = Sentence([], [], [], [])
    # split on "\n" only, so that line numbers agree with decode_utf8's
    for number, line in enumerate(decode_utf8(raw, path).split("\n"), start=1):
        line = line.removesuffix("\r")
        columns = [column for column in _COLUMNS.split(line) if column]
        if not columns or columns[0] == DOCSTART:
            if current.words:
                sentences.append(current)
                current = Sentence([], [], [], [])
            continue
        word, tag = _token(columns, word_column, tag_column, path, number)
        current.words.append(word)
        current.tags.append(tag)
        current.lines.append(line)
        current.line_numbers.append(number)
    if current.words:
        sentences.append(current)
    if not sentences:
        raise DataError("no sentences in this file (no token lines)", path=path)
    return sentences


def write_conll(path: str | Path, sentences: Sequence[Sentence], predicted: Sequence[Sequence[str]]) -> None:
    """Write each token's original line plus a space and its predicted tag; a blank line ends a sentence."""
    atomic_write_text(path, conll_text(sentences, predicted))


def conll_text(sentences: Sequence[Sentence], predicted: Sequence[Sequence[str]]) -> str:
    """The text ``write_conll`` writes."""
    if len(sentences) != len(predicted):
        raise ValueError(f"{len(sentences)} sentences but {len(predicted)} predicted tag sequences")
    blocks = []
    for index, (sentence, tags) in enumerate(zip(sentences, predicted)):
        if len(tags) != len(sentence.lines):
            raise ValueError(f"sentence {index} has {len(sentence.lines)} tokens but {len(tags)} predicted tags")
        for tag in tags:
            if not tag or _COLUMNS.search(tag):
                raise ValueError(f"predicted tag {tag!r} in sentence {index} is empty or holds a space or tab")
        blocks.append("".join(f"{line} {tag}\n" for line, tag in zip(sentence.lines, tags)))
    return "\n".join(blocks)


def tag_vocabulary(sentences: Iterable[Sentence]) -> list[str]:
    """Every tag in ``sentences``: ``"O"`` first (always, as a tagger must be able to say it), the rest sorted."""
    tags = {tag for sentence in sentences for tag in sentence.tags}
    return ["O", *sorted(tags - {"O"})]
