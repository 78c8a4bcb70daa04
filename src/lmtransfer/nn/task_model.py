"""The task model: the chosen layers combined (ELMo's scalar mix, or side by side), then a head.

It takes (..., L, H) layer features, whether they come from the cache (feature-based) or from a live
encoder (fine-tuning): the same module serves both ways.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lmtransfer.nn.heads import build_head
from lmtransfer.nn.scalar_mix import ScalarMix


class ConcatLayers(nn.Module):
    """(..., L, H) -> (..., L * H): the layers side by side (BERT's "concat last four" feature)."""

    def __init__(self, num_layers: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.num_layers, self.layer_norm = num_layers, layer_norm

    def forward(self, h: Tensor) -> Tensor:
        if self.layer_norm:
            h = F.layer_norm(h, h.shape[-1:])  # (..., L, H)
        return h.flatten(-2)  # (..., L * H)

    def layer_weights(self) -> dict[str, object]:
        return {"concat": True}


def build_combination(
    kind: str, num_layers: int, layer_norm: bool = False, last_weight: float | None = None
) -> nn.Module:
    """``mix`` (``ScalarMix``; ``last_weight`` its starting share of the last layer) or ``concat``."""
    if kind == "mix":
        return ScalarMix(num_layers, layer_norm=layer_norm, last_weight=last_weight)
    if kind == "concat":
        return ConcatLayers(num_layers, layer_norm=layer_norm)
    raise ValueError(f"unknown layer combination '{kind}' (choose mix or concat)")


class TaskModel(nn.Module):
    """Layer features -> combination -> head: (B, L, H) -> (B, C), or (B, T, L, H) + mask -> (B, T, K).

    With a ``reader`` (texts in windows, pairs read apart) the features are (B, S, W, L, H) with a (B, S, W)
    ``windows`` mask, and the reader turns the combined (B, S, W, D) into what the head reads.
    """

    def __init__(self, mix: nn.Module, head: nn.Module, reader: nn.Module | None = None) -> None:
        super().__init__()
        self.mix, self.head, self.reader = mix, head, reader

    def forward(self, features: Tensor, mask: Tensor | None = None, windows: Tensor | None = None) -> Tensor:
        x = self.mix(features)  # (B, D), (B, T, D) or (B, S, W, D)
        if windows is not None:
            x = self.reader(x, windows)  # (B, D'), or (B, 2, D) for a head that compares a pair
        return self.head(x) if mask is None else self.head(x, mask)


def sentence_classifier(
    num_layers: int,
    hidden_size: int,
    num_labels: int,
    head: str = "linear",
    head_hidden: int = 256,
    dropout: float = 0.1,
    layer_norm: bool = False,
) -> TaskModel:
    """(B, L, H) -> scalar mix -> head -> (B, C): the classic feature-based classifier."""
    classifier = build_head(head, hidden_size, num_labels, hidden_size=head_hidden, dropout=dropout)
    return TaskModel(ScalarMix(num_layers, layer_norm), classifier)
