"""ELMo's scalar mix: a learned, softmax-weighted sum of an encoder's layers, times a scale gamma."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ScalarMix(nn.Module):
    """``gamma * sum_l softmax(w)_l * h_l`` over the layer axis of ``(..., L, H)`` features.

    With ``layer_norm=True`` each layer's vector is normalised over H (no learned affine) before mixing,
    which keeps layers of very different scale from drowning each other out. ``w`` starts at zero
    (a plain average), or with ``last_weight`` the last layer's share of the mix starts there and the
    other layers share the rest evenly; ``gamma`` starts at one.
    """

    def __init__(self, num_layers: int, layer_norm: bool = False, last_weight: float | None = None) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.weights = nn.Parameter(torch.zeros(num_layers))  # (L,)
        if last_weight is not None and num_layers > 1:
            if not 0 < last_weight < 1:
                raise ValueError(f"last_weight must be between 0 and 1, got {last_weight}")
            with torch.no_grad():  # softmax(w)[-1] = last_weight, the others (1 - last_weight) / (L - 1)
                self.weights[-1] = math.log(last_weight * (num_layers - 1) / (1 - last_weight))
        self.gamma = nn.Parameter(torch.ones(()))  # ()

    def forward(self, h: Tensor) -> Tensor:
        if h.shape[-2] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers on axis -2, got shape {tuple(h.shape)}")
        if self.layer_norm:
            h = F.layer_norm(h, h.shape[-1:])  # (..., L, H)
        s = torch.softmax(self.weights, dim=0)  # (L,)
        return self.gamma * torch.einsum("...lh,l->...h", h, s)  # (..., H)

    def layer_weights(self) -> dict[str, object]:
        """The learned mix, for reports: softmax weights in layer order and gamma."""
        with torch.no_grad():
            return {"softmax": torch.softmax(self.weights, 0).tolist(), "gamma": float(self.gamma)}
