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
from collections.abc import Callable, Sequence

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
    batch_size: int = 16,
    normalise: bool = False,
    advance: Callable[[int], object] | None = None,
) -> np.ndarray:
    """(N, K) log-likelihoods of each of the K ``labels`` after ``prefix`` + each of the N ``texts``.

    Three passes share the work: the prefix once; each batch of texts once, on a copy of the prefix's keys
    and values (which scores every label's first token); then, for labels of several tokens, every label of
    every text of the batch in one pass on that batch's keys and values, each label placed right after its
    text's last token (the text's padding masked out)."""
    _check(texts, labels)
    device = next(model.parameters()).device
    arg = _cache_argument(model)
    start = len(prefix)
    cached = _cache_of(model(_tensor([prefix], device), use_cache=True)) if start else None
    scores = np.zeros((len(texts), len(labels)))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    for first in range(0, len(order), batch_size):
        chosen = order[first : first + batch_size]
        lengths = [len(texts[i]) for i in chosen]
        ids, text_mask = _padded([texts[i] for i in chosen], device)
        mask = torch.cat([torch.ones((len(chosen), start), dtype=torch.long, device=device), text_mask], dim=1)
        positions = torch.arange(start, start + ids.shape[1], device=device).expand_as(ids)
        out = model(
            ids, attention_mask=mask, position_ids=positions, use_cache=True, **{arg: _copied(cached, len(chosen))}
        )
        last = torch.log_softmax(out.logits.float()[torch.arange(len(chosen)), torch.tensor(lengths) - 1], dim=-1)
        found = [[[last[b, label[0]]] for label in labels] for b in range(len(chosen))]  # [b][k][token]
        if any(len(label) > 1 for label in labels):
            _later_tokens(model, arg, _cache_of(out), mask, lengths, start, labels, found, device)
        for b, i in enumerate(chosen):
            for k in range(len(labels)):
                tokens = torch.stack(found[b][k])
                scores[i, k] = float(tokens.mean() if normalise else tokens.sum())
        if advance is not None:
            advance(len(chosen))
    return scores


def _later_tokens(model, arg, cache, mask, lengths, start, labels, found, device) -> None:
    """Add to ``found`` the log-probabilities of every label's tokens after its first, for each text of a batch:
    one pass over all its (text, label) rows, each label right after its text on the batch's keys and values."""
    rows = len(lengths) * len(labels)
    ids, label_mask = _padded([label for _ in lengths for label in labels], device)
    full = torch.cat([mask.repeat_interleave(len(labels), dim=0), label_mask], dim=1)
    after = torch.tensor([start + n for n in lengths for _ in labels], device=device)
    positions = after[:, None] + torch.arange(ids.shape[1], device=device)[None, :]
    cache.batch_repeat_interleave(len(labels))
    logp = torch.log_softmax(model(ids, attention_mask=full, position_ids=positions, **{arg: cache}).logits.float(), -1)
    for r in range(rows):
        b, k = divmod(r, len(labels))
        label = labels[k]
        found[b][k].extend(logp[r, j - 1, label[j]] for j in range(1, len(label)))


def _padded(rows: Sequence[Ids], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (pad id 0, masked out) and their attention mask."""
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = _tensor(row, device)
        mask[r, : len(row)] = 1
    return ids, mask


def _tensor(ids, device) -> torch.Tensor:
    return torch.tensor(ids if not ids or isinstance(ids[0], list) else list(ids), dtype=torch.long, device=device)


def _copied(cached, rows: int):
    """A copy of the prefix's keys and values for a batch (None where there is no prefix)."""
    if cached is None:
        return None
    copied = copy.deepcopy(cached)
    copied.batch_repeat_interleave(rows)
    return copied


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
