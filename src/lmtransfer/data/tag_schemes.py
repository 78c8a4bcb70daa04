"""Tag schemes for named-entity recognition and other sequence labelling: spans, conversion, detection,
and the transition masks a CRF needs.

A tag is ``O`` or ``PREFIX-TYPE``; the type is everything after the first ``-``. Three schemes:

- ``IOB1`` (CoNLL-2003 as released): ``I-X`` on every token of an entity; ``B-X`` only on the first
  token of an entity that directly follows another entity of the same type.
- ``IOB2``: every entity starts with ``B-X`` and goes on with ``I-X``.
- ``BIOES``: ``S-X`` for a one-token entity, ``B-X I-X ... E-X`` for a longer one.

Entities travel between schemes as spans ``(type, start, end_exclusive)``. ``allowed_transitions``
gives the start / follow / end masks a CRF needs to produce only well-formed sequences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from lmtransfer.core.choices import TAG_SCHEME_PREFIXES

SCHEMES = TAG_SCHEME_PREFIXES  # scheme -> the prefixes it uses
TAG = re.compile(r"[BIES]-.+")  # a tag other than O

Span = tuple[str, int, int]


def _prefixes(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


def _parse(tag: str, prefixes: str = "BIES") -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``."""
    if tag == "O":
        return "O", ""
    if not TAG.fullmatch(tag) or tag[0] not in prefixes:
        raise ValueError(f"tag {tag!r} is not O or one of {', '.join(p + '-TYPE' for p in prefixes)}")
    return tag[0], tag[2:]


def spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """The entities in ``tags`` as ``(type, start, end_exclusive)``, in order.

    Ill-formed sequences are read the way conlleval and seqeval's default mode read them, the same
    for every scheme: a tag starts a new entity if it is ``B-`` or ``S-``, or if it is ``I-`` / ``E-``
    and the previous tag is ``O``, ``E-``, ``S-`` or of another type (so ``O I-X`` is an entity in
    IOB2 too, and ``I-X I-Y`` is two). An entity ends after an ``E-`` or ``S-`` tag and before a
    tag that is ``O`` or starts a new entity; ``B-X O`` in BIOES is a one-token entity.
    A prefix the scheme does not use (``E-`` in IOB2, say) raises ``ValueError``.
    """
    prefixes = _prefixes(scheme)
    found: list[Span] = []
    kind, start = None, 0  # the open entity, if any
    for i, tag in enumerate(tags):
        prefix, tag_kind = _parse(tag, prefixes)
        if kind is not None and (prefix in ("O", "B", "S") or tag_kind != kind):
            found.append((kind, start, i))
            kind = None
        if prefix != "O" and kind is None:
            kind, start = tag_kind, i
        if prefix in ("E", "S"):
            found.append((tag_kind, start, i + 1))
            kind = None
    if kind is not None:
        found.append((kind, start, len(tags)))
    return found


def from_spans(entities: Iterable[Span], length: int, scheme: str) -> list[str]:
    """The tags of ``length`` tokens holding ``entities``, which must not overlap."""
    _prefixes(scheme)
    tags = ["O"] * length
    previous: Span | None = None
    for kind, start, end in sorted(entities, key=lambda span: span[1]):
        if not kind or not 0 <= start < end <= length:
            raise ValueError(f"span {(kind, start, end)} is empty, untyped or outside {length} tokens")
        if previous is not None and start < previous[2]:
            raise ValueError(f"spans {previous} and {(kind, start, end)} overlap")
        after_same_kind = previous is not None and previous[2] == start and previous[0] == kind
        tags[start:end] = _entity_tags(kind, end - start, scheme, after_same_kind)
        previous = (kind, start, end)
    return tags


def _entity_tags(kind: str, size: int, scheme: str, after_same_kind: bool) -> list[str]:
    """The tags of one entity; ``after_same_kind``: it directly follows an entity of the same type."""
    if scheme == "BIOES":
        return [f"S-{kind}"] if size == 1 else [f"B-{kind}", *[f"I-{kind}"] * (size - 2), f"E-{kind}"]
    first = "B" if scheme == "IOB2" or after_same_kind else "I"
    return [f"{first}-{kind}", *[f"I-{kind}"] * (size - 1)]


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Re-tag a sequence from one scheme to another (through its spans)."""
    return from_spans(spans(tags, source), len(tags), target)


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of some tag sequences.

    ``"BIOES"`` if any tag is ``E-`` or ``S-``; otherwise ``"IOB1"`` if any entity starts with
    ``I-`` (an ``I-X`` that does not follow ``B-X`` or ``I-X``); otherwise ``"IOB2"`` (also for
    sequences with no entities at all, where every scheme reads the same).
    """
    starts_with_inside = False
    for tags in sequences:
        previous = ("O", "")
        for tag in tags:
            prefix, kind = _parse(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            if prefix == "I" and (previous[0] not in ("B", "I") or previous[1] != kind):
                starts_with_inside = True
            previous = (prefix, kind)
    return "IOB1" if starts_with_inside else "IOB2"


def _may_follow(before: tuple[str, str], after: tuple[str, str], scheme: str) -> bool:
    (prefix, kind), (next_prefix, next_kind) = before, after
    continues = prefix in ("B", "I") and kind == next_kind  # ``after`` may carry on this entity
    if scheme == "IOB1":
        return continues if next_prefix == "B" else True
    if scheme == "IOB2":
        return continues if next_prefix == "I" else True
    if prefix in ("B", "I"):  # BIOES: an open entity must go on or end with its own type
        return continues and next_prefix in ("I", "E")
    return next_prefix in ("O", "B", "S")


def allowed_transitions(labels: Sequence[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the tag sequences ``scheme`` allows, for a CRF's transition constraints.

    Returns ``start`` (K,): may the first tag be this label; ``follow`` (K, K): may ``labels[j]``
    follow ``labels[i]`` (indexed ``[from, to]``); ``end`` (K,): may the last tag be this label.
    A sequence passes all three exactly when ``from_spans`` would write it (well-formed).
    """
    prefixes = _prefixes(scheme)
    parsed = [_parse(label, prefixes) for label in labels]
    outside = ("O", "")  # before the first tag and after the last, the sequence is outside any entity
    start = np.array([_may_follow(outside, tag, scheme) for tag in parsed], dtype=bool)  # (K,)
    follow = np.array([[_may_follow(a, b, scheme) for b in parsed] for a in parsed], dtype=bool)  # (K, K)
    end = np.array([_may_follow(tag, outside, scheme) for tag in parsed], dtype=bool)  # (K,)
    return start, follow.reshape(len(parsed), len(parsed)), end  # the reshape gives (0, 0) when K == 0
