"""Reading a complete feature cache: memory-mapped shards, examples addressed by their global index, any
subset of the stored layers read as if the cache held nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmtransfer.core.errors import CacheError
from lmtransfer.features.cache.layout import TIMING, read_json, shard_parts
from lmtransfer.features.cache.quantize import dequantize_int8


class FeatureCache:
    """Read side of a complete cache: memory-mapped shards, examples addressed by global index.

    ``layers`` (hidden-state indices the cache holds) reads only those, in that order, as if the cache
    held nothing else; by default every stored layer.
    """

    def __init__(self, directory: str | Path, layers: Sequence[int] | None = None) -> None:
        self.directory = Path(directory)
        manifest = read_json(self.directory / "manifest.json")
        if manifest is None or not manifest.get("complete"):
            raise CacheError(
                "not a complete feature cache (run the extraction again to finish it)", path=self.directory
            )
        self.manifest = manifest
        self.key = read_json(self.directory / "key.json") or {}
        self._starts = np.array([s["start"] for s in manifest["shards"]], dtype=np.int64)
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        stored = [int(i) for i in self.key.get("layers", range(manifest["num_layers"]))]
        self.layers = stored if layers is None else [int(i) for i in layers]
        missing = sorted(set(self.layers) - set(stored))
        if missing:
            raise CacheError(f"layers {missing} are not in this cache (it holds {stored})", path=self.directory)
        self._pick = None if self.layers == stored else np.array([stored.index(i) for i in self.layers])

    def __len__(self) -> int:
        return int(self.manifest["num_examples"])

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.manifest["hidden_size"])

    @property
    def granularity(self) -> str:
        return str(self.manifest["granularity"])

    @property
    def stored_bytes(self) -> int:
        """Bytes of every shard file, all stored layers."""
        return sum(s[part]["bytes"] for s in self.manifest["shards"] for part in shard_parts(s))

    @property
    def made_seconds(self) -> float | None:
        """What extracting this cache took (the sum over its shards, resumed ones included), whenever and by
        whichever run it was made; None for a cache written before shards recorded their time."""
        timing = read_json(self.directory / TIMING) or {}
        seconds = [timing.get(str(s["index"])) for s in self.manifest["shards"]]
        return float(sum(seconds)) if all(isinstance(v, int | float) for v in seconds) else None

    @property
    def nbytes(self) -> int:
        """Bytes of the layers read: a cache of a subset counts its layers' share of the layer-sized files."""
        if self._pick is None:
            return self.stored_bytes
        share = len(self.layers) / int(self.manifest["num_layers"])
        parts = [(part, s[part]["bytes"]) for s in self.manifest["shards"] for part in shard_parts(s)]
        return int(sum(size * share if part != "offsets" else size for part, size in parts))

    def _picked(self, values: np.ndarray) -> np.ndarray:
        return values if self._pick is None else values[:, self._pick]

    def _shard(self, position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if position not in self._arrays:
            shard = self.manifest["shards"][position]
            try:
                data = np.load(self.directory / shard["data"]["file"], mmap_mode="r")
                offsets = np.load(self.directory / shard["offsets"]["file"])
                scales = np.load(self.directory / shard["scales"]["file"], mmap_mode="r") if "scales" in shard else None
            except (OSError, ValueError) as exc:
                raise CacheError(
                    f"unreadable shard ({exc}); run 'lmtransfer cache verify'", path=self.directory
                ) from None
            self._arrays[position] = (data, offsets, scales)
        return self._arrays[position]

    def example(self, index: int) -> np.ndarray:
        """(rows_i, L, H) for example ``index``: 1 row per text, or one per word or token.

        float16 and float32 caches give their stored rows as they are; int8 ones give float32.
        """
        position = int(np.searchsorted(self._starts, index, side="right")) - 1
        data, offsets, scales = self._shard(position)
        local = index - int(self._starts[position])
        rows = slice(offsets[local], offsets[local + 1])
        return self._picked(data[rows] if scales is None else dequantize_int8(data[rows], scales[rows]))

    def rows(self) -> np.ndarray:
        """(N,) rows per example: 1 at sentence level, else its words or tokens."""
        counts = [np.diff(self._shard(position)[1]) for position in range(len(self.manifest["shards"]))]
        return np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)

    def gather_rows(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, R, L, H) zero-padded rows of word- or token-level examples, and their (B, R) mask."""
        parts = [self.example(int(i)) for i in indices]
        width = max((len(p) for p in parts), default=0)
        out = np.zeros((len(parts), width, self.num_layers, self.hidden_size), dtype=np.float32)
        mask = np.zeros((len(parts), width), dtype=bool)
        for b, part in enumerate(parts):
            out[b, : len(part)] = part
            mask[b, : len(part)] = True
        return out, mask

    def gather_pooled(self, indices: np.ndarray) -> np.ndarray:
        """(B, L, H) for sentence-granularity caches, in the order of ``indices``."""
        if self.granularity != "sentence":
            raise CacheError("gather_pooled needs a sentence-level cache", path=self.directory)
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), self.num_layers, self.hidden_size), dtype=np.float32)
        positions = np.searchsorted(self._starts, indices, side="right") - 1
        for position in np.unique(positions):
            chosen = np.nonzero(positions == position)[0]
            data, _, scales = self._shard(int(position))
            local = indices[chosen] - self._starts[position]
            order = np.argsort(local)  # sorted reads are kinder to the page cache
            rows = local[order]
            out[chosen[order]] = self._picked(
                data[rows] if scales is None else dequantize_int8(data[rows], scales[rows])
            )
        return out
