"""Reading texts that are more than one vector: a long text's window vectors pooled into one, and the two
texts of a pair read apart combined into what the head reads.

Input: (B, S, W, D) combined layer features of each item's S texts (1, or 2 for a pair) and their W
windows, with a (B, S, W) mask of real windows; a text has at least one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

COMBINES = ("single", "features", "sides")


class WindowPool(nn.Module):
    """(B, S, W, D) and a (B, S, W) mask -> (B, S, D): the mean or the max of a text's windows, or their
    weighted mean by a learned score (softmax over the text's own windows)."""

    def __init__(self, dim: int, kind: str = "mean") -> None:
        super().__init__()
        if kind not in ("mean", "max", "attention"):
            raise ValueError(f"unknown window pooling '{kind}' (choose mean, max or attention)")
        self.kind = kind
        self.score = nn.Linear(dim, 1) if kind == "attention" else None

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[..., None].to(x.dtype)  # (B, S, W, 1)
        if self.kind == "max":
            return x.masked_fill(m == 0, torch.finfo(x.dtype).min).amax(dim=2)  # (B, S, D)
        if self.kind == "mean":
            return (x * m).sum(dim=2) / m.sum(dim=2).clamp(min=1)  # (B, S, D)
        scores = self.score(x).masked_fill(m == 0, float("-inf"))  # (B, S, W, 1)
        return (torch.softmax(scores, dim=2) * x).sum(dim=2)  # (B, S, D)


def pair_features(u: Tensor, v: Tensor) -> Tensor:
    """(B, D) each -> (B, 4D): ``[u; v; |u - v|; u * v]`` (InferSent's, SentEval's)."""
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


class TextReader(nn.Module):
    """(B, S, W, D) and its mask -> what the head reads: ``single`` (S = 1) the text's vector (B, D);
    ``features`` (S = 2) the pair's [u; v; |u-v|; u*v] (B, 4D); ``sides`` (S = 2) both vectors (B, 2, D),
    for a head that compares them."""

    def __init__(self, dim: int, pooling: str = "mean", combine: str = "single") -> None:
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"unknown combine '{combine}' (choose {', '.join(COMBINES)})")
        self.pool = WindowPool(dim, pooling)
        self.combine = combine

    @property
    def out_factor(self) -> int:
        """The head's input width over the features' own."""
        return 4 if self.combine == "features" else 1

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        texts = self.pool(x, mask)  # (B, S, D)
        if self.combine == "single":
            return texts[:, 0]  # (B, D)
        if self.combine == "features":
            return pair_features(texts[:, 0], texts[:, 1])  # (B, 4D)
        return texts  # (B, 2, D)
