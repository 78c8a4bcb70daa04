"""int8 storage of cached features: each stored vector (one layer of one row) on its own scale, symmetric
around zero (scale = max|x| / 127), and what a float feature becomes after a round trip through a cache
of any storage dtype (so that live features can be rounded as cached ones were)."""

from __future__ import annotations

import numpy as np
import torch


def quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., H) float -> int8 values and one float32 scale per vector (shape (...)), symmetric."""
    x = x.float()
    scale = x.abs().amax(dim=-1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    values = torch.round(x / scale[..., None]).clamp_(-127, 127).to(torch.int8)
    return values, scale


def dequantize_int8(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) * scales[..., None]


def storage_round(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """What a float32 feature tensor becomes after a round trip through a cache of ``dtype``."""
    if dtype == "int8":
        values, scale = quantize_int8(x)
        return values.float() * scale[..., None]  # the same float32 product as dequantize_int8
    return x.to(getattr(torch, dtype)).float()
