"""A feature cache's identity: ``CacheKey`` holds everything that determines its contents, and the digest of
its JSON names the cache's directory. Two extractions share a cache exactly when their keys are equal."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmtransfer.data.examples import Example, fingerprint_text
from lmtransfer.encoders.encoder import Encoder
from lmtransfer.features.cache.layout import DIGEST_LENGTH
from lmtransfer.features.pooling import FeatureSpec

FORMAT_VERSION = 2
ADDED = ("window_stride", "backend")  # fields of CacheKey that came after format version 2, None when unused


@dataclass(frozen=True)
class CacheKey:
    """Everything that determines a cache's contents. Two extractions share a cache iff keys are equal."""

    model: str
    weights_sha256: str
    tokenizer_sha256: str
    max_length: int
    layers: tuple[int, ...]
    granularity: str
    pooling: str
    dtype: str
    data_fingerprint: str
    compute: str = "float32"  # the encoder's arithmetic during extraction: float32 or bfloat16
    format_version: int = FORMAT_VERSION
    window_stride: int | None = None  # texts read in windows sharing this many tokens; None: cut at max_length
    backend: str | None = None  # what ran the encoder: None for torch, "onnx" or "onnx-int8" for ONNX Runtime

    def digest(self) -> str:
        """The first hex digits of the sha256 of the key's JSON. A field added since format version 2 counts
        only when it is set, so that the caches made before it keep their digests."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if not (k in ADDED and v is None)}
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def data_fingerprint(examples: Sequence[Example]) -> str:
    """sha256 over the exact examples (texts, pairs, pre-split words or token ids), order included."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(fingerprint_text(example).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def make_key(
    encoder: Encoder,
    spec: FeatureSpec,
    dtype: str,
    examples: Sequence[Example],
    compute: str = "float32",
    backend: str | None = None,
) -> CacheKey:
    """The key of ``spec`` features of ``examples`` from ``encoder``, stored as ``dtype``."""
    return CacheKey(
        model=encoder.source,
        weights_sha256=encoder.weights_hash(),
        tokenizer_sha256=encoder.tokenizer_hash(),
        max_length=spec.max_length,
        layers=tuple(spec.layers),
        granularity=spec.granularity,
        pooling=spec.pooling,
        dtype=dtype,
        data_fingerprint=data_fingerprint(list(examples)),
        compute=compute,
        window_stride=spec.window_stride,
        backend=backend,
    )


def cache_dir_for(root: Path, key: CacheKey) -> Path:
    """The directory of the cache of ``key`` under ``root``."""
    return Path(root) / "features" / key.digest()
