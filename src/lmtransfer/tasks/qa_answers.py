"""Answers from start / end scores: the best allowed spans of a window, and each question's answer over all
of its windows, cut from the original context (with the SQuAD v2 "no answer" rule when a threshold is given).
"""

from __future__ import annotations

import numpy as np

from lmtransfer.data.squad import QAExample
from lmtransfer.tasks.qa_windows import QAWindows


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


def answer_spans(
    examples: list[QAExample],
    windows: QAWindows,
    start_logits: list[np.ndarray],
    end_logits: list[np.ndarray],
    max_answer_length: int = 30,
    n_best: int = 20,
    null_threshold: float | None = None,
) -> dict[str, dict]:
    """Per example id, its answer: ``{"answer", "start", "end", "score"}``, the best span over all of the
    example's windows, cut from its original context at characters ``start:end``; ``score`` is the span's
    start + end logit.

    ``start_logits[w]`` / ``end_logits[w]`` belong to window ``w``; they may be longer than the window
    (batch padding) and are cut to its length. Of a window's ``n_best`` spans the best one whose character
    range is not empty is used; between windows the higher score wins (the earlier window on a tie).
    With ``null_threshold`` set (SQuAD v2) the answer is "" when the null score, ``start[0] + end[0]``
    minimised over the example's windows, exceeds the best span score by more than ``null_threshold``.
    An example with no usable span, or no answer, gets "" with start, end and score None.
    """
    if len(start_logits) != len(windows) or len(end_logits) != len(windows):
        raise ValueError(f"{len(windows)} windows, but {len(start_logits)} start and {len(end_logits)} end logits")
    best: dict[int, tuple[float, int, int]] = {}
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
                    best[index] = (score, begin, stop)
                break
    answers = {}
    for index, example in enumerate(examples):
        found = best.get(index)
        if found is not None and null_threshold is not None and null.get(index, -np.inf) - found[0] > null_threshold:
            found = None
        if found is None:
            answers[example.id] = {"answer": "", "start": None, "end": None, "score": None}
        else:
            score, begin, stop = found
            answers[example.id] = {"answer": example.context[begin:stop], "start": begin, "end": stop, "score": score}
    return answers


def predict_answers(*args, **kwargs) -> dict[str, str]:
    """Answer text per example id: ``answer_spans`` (same arguments) without the offsets and scores."""
    return {key: span["answer"] for key, span in answer_spans(*args, **kwargs).items()}
