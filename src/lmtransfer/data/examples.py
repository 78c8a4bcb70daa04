"""What one example is to an encoder: a text (``str``), a pair of texts (``TextPair``), a pre-split list of
words (tagging), or token ids made elsewhere (``Encoded``: QA windows); and a fingerprint of each that the
feature cache's key is made from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


class TextPair(NamedTuple):
    """Two texts read as one input: ``[CLS] first [SEP] second [SEP]`` (segment ids where the model has them)."""

    first: str
    second: str


@dataclass(frozen=True)
class Encoded:
    """Token ids made elsewhere (a QA window): fed to the encoder as they are, never truncated."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None


Example = str | TextPair | Sequence[str] | Encoded


def fingerprint_text(example: Example) -> str:
    """A string that identifies an example exactly, distinct across the kinds (for cache keys)."""
    if isinstance(example, str):
        return example
    if isinstance(example, TextPair):
        return f"\x1dpair\x1d{example.first}\x1d{example.second}"
    if isinstance(example, Encoded):
        types = "" if example.token_type_ids is None else ",".join(map(str, example.token_type_ids))
        return f"\x1dids\x1d{','.join(map(str, example.input_ids))}\x1d{types}"
    return "\x1f".join(example)
