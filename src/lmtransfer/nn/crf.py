"""A linear-chain conditional random field over per-token tag scores: NLL, forward algorithm, Viterbi.

Emissions are (B, T, K) scores from a token head; the CRF adds learned start (K,), transition (K, K)
[from, to] and end (K,) scores. A tag scheme (BIO, BIOES, ...) may forbid some starts, transitions and
ends; those entries get a fixed large negative penalty (a buffer, not learned), so forbidden paths have
~zero probability and are never decoded, while gradients stay finite (a finite constant, not -inf).

``mask`` is True on real tokens. Every sequence has at least one (``mask[:, 0]`` all True) and its real
tokens are a prefix (left-aligned padding); both are checked. Emissions and tags at padded positions
are ignored, whatever their values. All arithmetic is float32, also for bf16 emissions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

# Written by hand: pytorch-crf is unmaintained since 2019 and AllenNLP (which had one) is archived.

FORBIDDEN = -10000.0  # added to forbidden start/transition/end scores; finite so gradients stay finite
REDUCTIONS = ("sum", "mean", "none")

Allowed = tuple[np.ndarray, np.ndarray, np.ndarray]  # may-start (K,), may-follow (K, K) [from, to], may-end (K,)


def _penalty(allowed: np.ndarray, shape: tuple[int, ...], name: str) -> Tensor:
    """0 where ``allowed`` is True, FORBIDDEN where False; checks the shape."""
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.shape != shape:
        raise ValueError(f"allowed {name} mask must have shape {shape}, got {allowed.shape}")
    return torch.where(torch.from_numpy(allowed), 0.0, FORBIDDEN).float()


class CRF(nn.Module):
    """Linear-chain CRF over K tags; ``forward`` is the negative log-likelihood of gold tag paths.

    Parameters start at zero, so an untrained CRF decodes the best allowed path by emissions alone.
    """

    start_penalty: Tensor
    transition_penalty: Tensor
    end_penalty: Tensor

    def __init__(self, num_tags: int, allowed: Allowed | None = None) -> None:
        super().__init__()
        k = num_tags
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(k))  # (K,)
        self.transitions = nn.Parameter(torch.zeros(k, k))  # (K, K) [from, to]
        self.end = nn.Parameter(torch.zeros(k))  # (K,)
        if allowed is None:
            allowed = (np.ones(k, bool), np.ones((k, k), bool), np.ones(k, bool))
        self.register_buffer("start_penalty", _penalty(allowed[0], (k,), "start"))  # (K,)
        self.register_buffer("transition_penalty", _penalty(allowed[1], (k, k), "transition"))  # (K, K)
        self.register_buffer("end_penalty", _penalty(allowed[2], (k,), "end"))  # (K,)

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "sum") -> Tensor:
        """Negative log-likelihood ``log Z - score(tags)``: summed over the batch ("sum"), divided by the
        batch size ("mean"), or one per sequence ("none", shape (B,)). ``mask=None`` means no padding."""
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        emissions, mask = self._prepare(emissions, mask)  # (B, T, K), (B, T)
        tags = self._prepare_tags(tags, mask)  # (B, T)
        nll = self._log_partition(emissions, mask) - self._score(emissions, tags, mask)  # (B,)
        if reduction == "none":
            return nll
        return nll.sum() if reduction == "sum" else nll.mean()

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """log Z: logsumexp of the scores of all tag paths of each sequence, shape (B,)."""
        return self._log_partition(*self._prepare(emissions, mask))

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Unnormalised score of the given tag path of each sequence, shape (B,)."""
        emissions, mask = self._prepare(emissions, mask)  # (B, T, K), (B, T)
        return self._score(emissions, self._prepare_tags(tags, mask), mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """Viterbi: the highest-scoring path of each sequence, as long as its real length."""
        emissions, mask = self._prepare(emissions, mask)  # (B, T, K), (B, T)
        start, trans, end = self._scores()
        b, t_max, k = emissions.shape
        best = start + emissions[:, 0]  # (B, K) best score of a path ending in each tag
        stay = torch.arange(k, device=emissions.device).expand(b, k)  # (B, K) identity backpointer for padding
        backpointers = []
        for t in range(1, t_max):
            step, prev = (best.unsqueeze(2) + trans).max(dim=1)  # (B, K), (B, K) over the previous tag
            real = mask[:, t, None]  # (B, 1)
            best = torch.where(real, step + emissions[:, t], best)  # (B, K)
            backpointers.append(torch.where(real, prev, stay))  # (B, K)
        tag = (best + end).argmax(dim=1)  # (B,) last real tag; padding carries it to T-1
        path = [tag]
        for prev in reversed(backpointers):
            tag = prev.gather(1, tag.unsqueeze(1)).squeeze(1)  # (B,)
            path.append(tag)
        paths = torch.stack(path[::-1], dim=1).tolist()  # (B, T)
        return [p[:n] for p, n in zip(paths, mask.sum(dim=1).tolist())]

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """Start (K,), transition (K, K) and end (K,) scores in float32, forbidden entries penalised."""
        start = self.start.float() + self.start_penalty  # (K,)
        trans = self.transitions.float() + self.transition_penalty  # (K, K)
        end = self.end.float() + self.end_penalty  # (K,)
        return start, trans, end

    def _log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        start, trans, end = self._scores()
        alpha = start + emissions[:, 0]  # (B, K) log-sum of paths ending in each tag
        for t in range(1, emissions.shape[1]):
            step = (alpha.unsqueeze(2) + trans).logsumexp(dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t, None], step, alpha)  # (B, K)
        return (alpha + end).logsumexp(dim=1)  # (B,)

    def _score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        start, trans, end = self._scores()
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T) zero at padding
        step = trans[tags[:, :-1], tags[:, 1:]].masked_fill(~mask[:, 1:], 0.0)  # (B, T-1)
        last = tags.gather(1, mask.sum(dim=1, keepdim=True) - 1).squeeze(1)  # (B,)
        return start[tags[:, 0]] + emit.sum(dim=1) + step.sum(dim=1) + end[last]  # (B,)

    def _prepare(self, emissions: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Checks shapes and the mask; float32 emissions with padding zeroed, and a bool mask."""
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags or emissions.shape[1] == 0:
            raise ValueError(f"emissions must be (B, T>0, {self.num_tags}), got {tuple(emissions.shape)}")
        if mask is None:
            mask = torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)  # (B, T)
        mask = mask.bool()  # (B, T)
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask must be (B, T) = {tuple(emissions.shape[:2])}, got {tuple(mask.shape)}")
        if not bool(mask[:, 0].all()):
            raise ValueError("every sequence needs a real first token: mask[:, 0] must be all True")
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("mask must be left-aligned: each row's True entries must be a prefix")
        emissions = emissions.float().masked_fill(~mask.unsqueeze(2), 0.0)  # (B, T, K)
        return emissions, mask

    def _prepare_tags(self, tags: Tensor, mask: Tensor) -> Tensor:
        """Checks tags against the mask; padded tags become 0, whatever they were (e.g. -100)."""
        if tags.shape != mask.shape:
            raise ValueError(f"tags must be (B, T) = {tuple(mask.shape)}, got {tuple(tags.shape)}")
        tags = tags.long().masked_fill(~mask, 0)  # (B, T)
        if bool(((tags < 0) | (tags >= self.num_tags)).any()):
            raise ValueError(f"tags at real positions must lie in [0, {self.num_tags})")
        return tags
