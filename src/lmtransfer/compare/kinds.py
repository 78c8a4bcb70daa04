"""The kinds of variant compare's report, verdict and plots show, read from the registered ways
(``runs.kinds.WAYS``): each way's kind, with two encoders set apart whatever way trains them. Static word
vectors are a kind of their own ("static vectors"), and vectors trained from scratch are shown as the
baseline they are, beside bag of words."""

from __future__ import annotations

from lmtransfer.core.choices import BASELINES, UNTRAINED, names_static_vectors
from lmtransfer.runs.kinds import WAYS
from lmtransfer.runs.way import Way

STATIC_VECTORS = "static vectors"
STATIC_VECTORS_COLOR = "#b07aa1"
BASELINE = WAYS["bag-of-words"].kind
# the two ways the verdict sets side by side, and the way that trains nothing it sets against them
FEATURE_BASED, FINE_TUNING = WAYS["feature"].kind, WAYS["finetune"].kind
PROMPTING = WAYS["prompt"].kind
UNTRAINED_KINDS = tuple(WAYS[name].kind for name in UNTRAINED)  # run once in a comparison, beside every size


def kind_of(encoder: str, strategy: str) -> str:
    """The kind of a variant that trains ``encoder`` with ``strategy`` (a registered way's name)."""
    if encoder in BASELINES:
        return BASELINE
    if names_static_vectors(encoder):
        return STATIC_VECTORS
    return WAYS[strategy].kind


def _ways(baseline: bool) -> list[Way]:
    return [way for way in WAYS.values() if way.baseline == baseline]


def baseline_kinds() -> tuple[str, ...]:
    """The kinds the verdict sets against the best of the ways: the baselines, and static vectors."""
    return (*dict.fromkeys(way.kind for way in _ways(True)), STATIC_VECTORS)


def way_kinds() -> tuple[str, ...]:
    """The kinds of the ways to train a pretrained encoder, in the order they were registered."""
    return tuple(dict.fromkeys(way.kind for way in _ways(False)))


def kind_colors() -> dict[str, str]:
    """Each kind's colour in the plots, in the order their legends list them: baselines first."""
    colors = {way.kind: way.color for way in _ways(True)} | {STATIC_VECTORS: STATIC_VECTORS_COLOR}
    return colors | {way.kind: way.color for way in _ways(False)}
