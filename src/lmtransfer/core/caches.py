"""Where lmtransfer keeps what it computes once and reads again: the feature caches, and GGUF weights
converted to float32 safetensors."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where caches live: ``explicit`` (``cache_dir``, ``--cache-dir``), else $LMTRANSFER_CACHE, else
    ~/.cache/lmtransfer."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("LMTRANSFER_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lmtransfer"
