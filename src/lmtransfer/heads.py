"""Task heads and the classifier built from them.

A head maps a vector per example (B, H) to label scores (B, C). The classifier puts a scalar mix in
front, so it takes (B, L, H) layer features, whether they come from the cache (feature-based) or
from a live encoder (fine-tuning): the head code is the same either way.
"""

from __future__ import annotations

from torch import Tensor, nn

from lmtransfer.scalar_mix import ScalarMix


class LinearHead(nn.Module):
    """Multinomial logistic regression: one affine map to the label scores."""

    def __init__(self, in_dim: int, num_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(in_dim, num_labels)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.dropout(x))  # (B, C)


class MLPHead(nn.Module):
    """One hidden layer (GELU) between the features and the label scores."""

    def __init__(self, in_dim: int, num_labels: int, hidden_size: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_dim, hidden_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_labels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, C)


def build_head(kind: str, in_dim: int, num_labels: int, hidden_size: int = 256, dropout: float = 0.1) -> nn.Module:
    if kind == "linear":
        return LinearHead(in_dim, num_labels, dropout)
    if kind == "mlp":
        return MLPHead(in_dim, num_labels, hidden_size, dropout)
    raise ValueError(f"unknown head '{kind}' (choose linear or mlp)")


class MixClassifier(nn.Module):
    """(B, L, H) layer features -> scalar mix -> head -> (B, C) logits."""

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        num_labels: int,
        head: str = "linear",
        head_hidden: int = 256,
        dropout: float = 0.1,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.mix = ScalarMix(num_layers, layer_norm=layer_norm)
        self.head = build_head(head, hidden_size, num_labels, head_hidden, dropout)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.mix(features))  # (B, L, H) -> (B, H) -> (B, C)
