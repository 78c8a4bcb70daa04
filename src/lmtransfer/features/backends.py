"""Feature backends: what runs a frozen encoder (torch, ONNX Runtime), each an object of one small protocol
registered by name in ``BACKENDS``. Extraction and a run's live features ask the backend for a batch's
hidden states, a cache key for what the backend records of itself, `lmtransfer export` for an artefact;
none of them compares a backend's name. What a config may ask of a backend is its ``info``
(``core.backends.BackendInfo``), which config validation reads without importing this module.

A new backend is a module with a class of this protocol and one registration: a line in ``BACKENDS`` below
(and its ``BackendInfo`` in ``core/backends.DECLARED``, for configs read before anything computes), or,
from outside the package, ``register(TheBackend())`` when its module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from lmtransfer.core.backends import AUTO, DECLARED, BackendInfo
from lmtransfer.core.errors import ConfigError, LmtError
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.encoders.onnx import OnnxBackend
from lmtransfer.features.torch_backend import TorchBackend

HiddenStates = Callable[[dict[str, Tensor]], list[Tensor]]  # a batch's inputs -> every hidden state, float32


@runtime_checkable
class FeatureBackend(Protocol):
    info: BackendInfo

    def preferred(self, device: torch.device, compute: str) -> bool:
        """Whether ``features.backend: auto`` picks this backend on ``device`` computing in ``compute``."""
        ...

    def placed(self, device: torch.device, compute: str) -> tuple[torch.device, str]:
        """Where, and in what arithmetic, it computes when asked for ``device`` and ``compute`` (resolved)."""
        ...

    def cache_name(self, quantize: str) -> str | None:
        """What a cache key records of it (``CacheKey.backend``); None leaves the key as torch's."""
        ...

    def hidden_states(
        self, encoder: Encoder, compute: str, cache_root: Path, quantize: str, progress: bool
    ) -> HiddenStates:
        """The frozen ``encoder``'s hidden states for a batch, made ready (a graph exported, say) on first use."""
        ...


@runtime_checkable
class ExportingBackend(FeatureBackend, Protocol):
    """A backend with an export format (``info.export_formats``): it writes an encoder into a folder that it
    reads back without the encoder's torch weights."""

    def export(self, encoder: Encoder, folder: Path, quantize: str, progress: bool) -> dict[str, Any]:
        """Write ``encoder`` into ``folder``; what export.json records of it."""
        ...

    def exported_encoder(self, folder: Path, name: str, weights_sha256: str) -> Encoder:
        """The encoder of an export's ``folder`` (a tokenizer and a model config; the weights' hash)."""
        ...

    def exported_hidden_states(self, folder: Path, encoder: Encoder) -> HiddenStates:
        """The hidden states of an export's ``folder``."""
        ...


BACKENDS: dict[str, FeatureBackend] = {backend.info.name: backend for backend in (TorchBackend(), OnnxBackend())}
FALLBACK = "torch"  # what auto picks where no other backend is preferred


def register(backend: FeatureBackend) -> FeatureBackend:
    """Add ``backend`` under its name, for configs (``DECLARED``) and for computing (``BACKENDS``)."""
    DECLARED[backend.info.name] = backend.info
    BACKENDS[backend.info.name] = backend
    return backend


def unregister(name: str) -> None:
    DECLARED.pop(name, None)
    BACKENDS.pop(name, None)


def backend_for(name: str, device: torch.device, compute: str) -> FeatureBackend:
    """The backend ``name`` means on ``device`` computing in ``compute`` (resolved): ``auto`` is the first
    backend that is preferred there, else torch."""
    if name == AUTO:
        return next((b for b in BACKENDS.values() if b.preferred(device, compute)), BACKENDS[FALLBACK])
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}': one of {', '.join([*BACKENDS, AUTO])}", field="features.backend")
    return BACKENDS[name]


def exporter(fmt: str) -> ExportingBackend:
    """The backend that writes export format ``fmt``."""
    found = [b for b in BACKENDS.values() if fmt in b.info.export_formats and isinstance(b, ExportingBackend)]
    if not found:
        raise LmtError(f"no backend exports the format '{fmt}'")
    return found[0]
