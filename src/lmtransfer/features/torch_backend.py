"""The torch backend: the encoder's own forward pass, where torch put it (a GPU, or the CPU), in float32 or
under bfloat16 autocast (``features.pooling.hidden_states``). It exports nothing, and a cache key records
nothing of it, so the caches made before there were backends keep their keys."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from lmtransfer.core.backends import TORCH
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.pooling import hidden_states


class TorchBackend:
    info = TORCH

    def preferred(self, device: torch.device, compute: str) -> bool:
        return False  # what auto picks where no other backend is preferred, not a preference of its own

    def placed(self, device: torch.device, compute: str) -> tuple[torch.device, str]:
        return device, compute

    def cache_name(self, quantize: str) -> str | None:
        return None

    def hidden_states(self, encoder: Encoder, compute: str, cache_root: Path, quantize: str, progress: bool):
        return partial(hidden_states, encoder.model, compute=compute)
