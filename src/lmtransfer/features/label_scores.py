"""How likely a causal LM finds each label after each text: the scores prompting classifies by.

For a prompt ``prefix + text_i`` and label words ``label_k`` (token ids), the score is log p(label_k | prefix,
text_i), the sum over the label's tokens (or their mean, ``normalise``). The prefix (the instruction and
the fixed demonstrations) is the same for every text: its keys and values are computed once and copied to
every batch, so a text costs only its own tokens and its labels'. Texts are batched by length, each with
every label in the same pass, right-padded (the mask and the positions after the prefix keep padding out
of every score).

``naive_label_scores`` computes the same by one full forward pass per text and label, with no reuse: the
reference the fast path is checked and timed against.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence

import numpy as np
import torch

Ids = Sequence[int]


@torch.inference_mode()
def label_scores(
    model: torch.nn.Module,
    prefix: Ids,
    texts: Sequence[Ids],
    labels: Sequence[Ids],
    *,
    batch_size: int = 8,
    normalise: bool = False,
) -> np.ndarray:
    """(N, K) log-likelihoods of each of the K ``labels`` after ``prefix`` + each of the N ``texts``."""
    _check(texts, labels)
    device = next(model.parameters()).device
    start = len(prefix)
    cache_arg = _cache_argument(model)
    cached = _cache_of(model(torch.tensor([list(prefix)], device=device), use_cache=True)) if start else None
    scores = np.zeros((len(texts), len(labels)))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    for first in range(0, len(order), batch_size):
        chosen = order[first : first + batch_size]
        pairs = [(i, k) for i in chosen for k in range(len(labels))]
        rows = [list(texts[i]) + list(labels[k]) for i, k in pairs]
        width = max(map(len, rows))
        ids = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        mask = torch.zeros((len(rows), start + width), dtype=torch.long, device=device)
        mask[:, :start] = 1
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row, device=device)
            mask[r, start : start + len(row)] = 1
        past = None
        if cached is not None:
            past = copy.deepcopy(cached)
            past.batch_repeat_interleave(len(rows))
        positions = torch.arange(start, start + width, device=device).expand(len(rows), width)
        logits = model(ids, attention_mask=mask, position_ids=positions, **{cache_arg: past}).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for r, (i, k) in enumerate(pairs):
            # a label's j-th token is predicted at the position before it: the text's last token for j = 0
            at = torch.arange(len(texts[i]) - 1, len(texts[i]) - 1 + len(labels[k]), device=device)
            found = logp[r, at, torch.tensor(list(labels[k]), device=device)]
            scores[i, k] = float(found.mean() if normalise else found.sum())
    return scores


@torch.inference_mode()
def naive_label_scores(
    model: torch.nn.Module, prefix: Ids, texts: Sequence[Ids], labels: Sequence[Ids], *, normalise: bool = False
) -> np.ndarray:
    """The same scores, one forward pass over the whole sequence per text and label, nothing reused."""
    _check(texts, labels)
    device = next(model.parameters()).device
    scores = np.zeros((len(texts), len(labels)))
    for i, text in enumerate(texts):
        for k, label in enumerate(labels):
            ids = torch.tensor([[*prefix, *text, *label]], device=device)
            logp = torch.log_softmax(model(ids).logits.float()[0], dim=-1)
            before = len(prefix) + len(text) - 1
            found = logp[torch.arange(before, before + len(label)), torch.tensor(list(label))]
            scores[i, k] = float(found.mean() if normalise else found.sum())
    return scores


def _cache_argument(model: torch.nn.Module) -> str:
    """What the model's forward calls the keys and values it continues from: ``cache`` since transformers 5.2x,
    ``past_key_values`` before (still taken, with a warning, until 5.40)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output) -> object:
    return output.cache if hasattr(output, "cache") else output.past_key_values


def _check(texts: Sequence[Ids], labels: Sequence[Ids]) -> None:
    if any(len(text) == 0 for text in texts):
        raise ValueError("every text needs at least one token: the first label token is predicted after it")
    if not labels or any(len(label) == 0 for label in labels):
        raise ValueError("every label needs at least one token")
