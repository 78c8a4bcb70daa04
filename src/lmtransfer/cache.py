"""The on-disk feature cache: sharded, memory-mapped, checksummed, keyed by an explicit CacheKey.

Layout of one cache (``<root>/features/<digest>/``)::

    key.json                   the CacheKey, in full
    manifest.json              shards written so far, with sizes and sha256; "complete" at the end
    shard-00000.data.npy       (rows, L, H) float16 / float32 / int8 rows of shard 0
    shard-00000.offsets.npy    (n + 1,) int64: example i of the shard owns rows offsets[i]:offsets[i+1]
    shard-00000.scales.npy     (rows, L) float32, int8 caches only: row vector = data * scale

int8 storage quantises each stored vector (one layer of one row) on its own, symmetric around zero:
scale = max|x| / 127. It takes a quarter of float32 and half of float16, and its rounding error
(at most half a step, max|x| / 254) is far below what a trained head can notice.

A shard covers a fixed range of examples, so a resumed extraction redoes only the shards that are
missing from the manifest. Every file is renamed into place only when complete.

A complete cache also serves any subset of its layers (``FeatureCache(directory, layers=...)``): a
run that needs layers X uses a cache whose key is equal but for holding a superset of X
(``find_superset``), so one extraction of the union serves every variant of a comparison.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmtransfer.atomic import atomic_write_json, commit_file, sha256_file
from lmtransfer.errors import CacheError
from lmtransfer.inputs import Example, fingerprint_text

FORMAT_VERSION = 2
DIGEST_LENGTH = 24  # hex digits of a cache's directory name

STORAGE_DTYPES = ("float16", "float32", "int8")


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


class ShardBuffer:
    """The arrays of one shard being written (data, and scales for int8), backed by temporary files."""

    def __init__(self, data: np.memmap, scales: np.memmap | None) -> None:
        self.data, self.scales = data, scales

    def put(self, rows: np.ndarray | slice, values: torch.Tensor) -> None:
        """Store float ``values`` (n, L, H) at ``rows``, rounded or quantised to the shard's dtype."""
        if self.scales is None:
            # numpy converts float16/float32 on assignment; other dtypes (bfloat16) go through float32
            self.data[rows] = (values if values.dtype in (torch.float16, torch.float32) else values.float()).numpy()
        else:
            quantized, scale = quantize_int8(values)
            self.data[rows] = quantized.numpy()
            self.scales[rows] = scale.numpy()

    def flush(self) -> None:
        self.data.flush()
        if self.scales is not None:
            self.scales.flush()


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

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def data_fingerprint(examples: Sequence[Example]) -> str:
    """sha256 over the exact examples (texts, pairs, pre-split words or token ids), order included."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(fingerprint_text(example).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def shard_name(index: int, part: str) -> str:
    return f"shard-{index:05d}.{part}.npy"


class CacheWriter:
    """Writes one cache shard by shard; finished shards already listed in the manifest are kept."""

    def __init__(self, directory: Path, key: CacheKey, num_examples: int, shard_size: int, hidden_size: int) -> None:
        self.directory = directory
        self.key = key
        self.num_examples = num_examples
        self.shard_size = shard_size
        self.hidden_size = hidden_size
        self.manifest: dict[str, Any] = {}

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_examples // self.shard_size))

    def shard_range(self, index: int) -> tuple[int, int]:
        start = index * self.shard_size
        return start, min(start + self.shard_size, self.num_examples)

    def open(self) -> CacheWriter:
        """Create the directory, or pick up a manifest left by an interrupted run of the same key."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for debris in self.directory.glob(".*.tmp"):  # temporary files of a killed writer
            debris.unlink(missing_ok=True)
        fresh = {
            "format_version": FORMAT_VERSION,
            "key_digest": self.key.digest(),
            "num_examples": self.num_examples,
            "shard_size": self.shard_size,
            "num_layers": len(self.key.layers),
            "hidden_size": self.hidden_size,
            "dtype": self.key.dtype,
            "granularity": self.key.granularity,
            "shards": [],
            "complete": False,
        }
        old = _read_json(self.directory / "manifest.json")
        same = old is not None and all(old.get(k) == v for k, v in fresh.items() if k not in ("shards", "complete"))
        self.manifest = old if same else fresh
        intact = [s for s in self.manifest["shards"] if self._intact(s)]
        if len(intact) < len(self.manifest["shards"]):  # a shard lost or cut short: redo just that one
            self.manifest.update(shards=intact, complete=False)
        if not (self.directory / "key.json").exists():
            atomic_write_json(self.directory / "key.json", dataclasses.asdict(self.key))
        return self

    def _intact(self, shard: dict[str, Any]) -> bool:
        return all(
            (self.directory / f["file"]).is_file() and (self.directory / f["file"]).stat().st_size == f["bytes"]
            for f in (shard[part] for part in shard_parts(shard))
        )

    def done(self, index: int) -> bool:
        return any(s["index"] == index for s in self.manifest["shards"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def _parts(self) -> tuple[str, ...]:
        return ("data", "offsets", "scales") if self.key.dtype == "int8" else ("data", "offsets")

    def open_shard(self, index: int, rows: int) -> ShardBuffer:
        """(rows, L, H) arrays backed by temporary files; fill them, then call ``commit_shard``."""
        shape = (rows, len(self.key.layers), self.hidden_size)

        def temporary(part: str, dtype: str, shape: tuple[int, ...]) -> np.memmap:
            tmp = self.directory / f".{shard_name(index, part)}.tmp"
            return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=shape)

        if self.key.dtype == "int8":
            return ShardBuffer(temporary("data", "int8", shape), temporary("scales", "float32", shape[:2]))
        return ShardBuffer(temporary("data", self.key.dtype, shape), None)

    def commit_shard(
        self, index: int, buffer: ShardBuffer, offsets: np.ndarray, tokens: int, truncated: int = 0
    ) -> None:
        buffer.flush()
        files = {}
        for part in self._parts():
            final = self.directory / shard_name(index, part)
            tmp = self.directory / f".{final.name}.tmp"
            if part == "offsets":
                with open(tmp, "wb") as handle:
                    np.save(handle, offsets.astype(np.int64))
            commit_file(tmp, final)
            files[part] = {"file": final.name, "bytes": final.stat().st_size, "sha256": sha256_file(final)}
        start, stop = self.shard_range(index)
        entry = {
            "index": index,
            "start": start,
            "stop": stop,
            "rows": int(offsets[-1]),
            "tokens": tokens,
            "truncated": truncated,
            **files,
        }
        self.manifest["shards"] = sorted(self.manifest["shards"] + [entry], key=lambda s: s["index"])
        atomic_write_json(self.directory / "manifest.json", self.manifest)

    def finish(self) -> None:
        missing = [i for i in range(self.num_shards) if not self.done(i)]
        if missing:
            raise CacheError(f"shards {missing} are missing", path=self.directory)
        self.manifest["complete"] = True
        atomic_write_json(self.directory / "manifest.json", self.manifest)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


class FeatureCache:
    """Read side of a complete cache: memory-mapped shards, examples addressed by global index.

    ``layers`` (hidden-state indices the cache holds) reads only those, in that order, as if the cache
    held nothing else; by default every stored layer.
    """

    def __init__(self, directory: str | Path, layers: Sequence[int] | None = None) -> None:
        self.directory = Path(directory)
        manifest = _read_json(self.directory / "manifest.json")
        if manifest is None or not manifest.get("complete"):
            raise CacheError(
                "not a complete feature cache (run the extraction again to finish it)", path=self.directory
            )
        self.manifest = manifest
        self.key = _read_json(self.directory / "key.json") or {}
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


def cache_dir_for(root: Path, key: CacheKey) -> Path:
    return Path(root) / "features" / key.digest()


def find_superset(root: Path, key: CacheKey) -> Path | None:
    """A complete cache under ``root`` whose key equals ``key`` but for holding more layers (all of
    ``key.layers`` among them); of several, the smallest. None when there is none."""
    wanted = {k: v for k, v in dataclasses.asdict(key).items() if k != "layers"}
    found = []
    base = Path(root) / "features"
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        if directory.is_symlink() or not directory.is_dir() or directory.name.startswith("."):
            continue
        other = _read_json(directory / "key.json") or {}
        layers = set(other.get("layers") or [])
        if not set(key.layers) < layers or any(other.get(k) != v for k, v in wanted.items()):
            continue
        manifest = _read_json(directory / "manifest.json") or {}
        if manifest.get("complete") and manifest.get("key_digest") == directory.name:
            found.append((len(layers), directory.name, directory))
    return min(found)[2] if found else None


def _shard_count(manifest: dict[str, Any]) -> int:
    return max(1, -(-manifest.get("num_examples", 0) // max(manifest.get("shard_size", 1), 1)))


def list_caches(root: Path) -> list[dict[str, Any]]:
    """One summary dict per cache directory under ``root``."""
    rows = []
    base = Path(root) / "features"
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        if directory.is_symlink() or not directory.is_dir() or directory.name.startswith("."):
            continue  # only real cache folders: a link could lead 'cache rm' or 'verify' out of the cache
        manifest = _read_json(directory / "manifest.json") or {}
        key = _read_json(directory / "key.json") or {}
        size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
        rows.append(
            {
                "digest": directory.name,
                "model": key.get("model", "?"),
                "layers": key.get("layers", []),
                "granularity": key.get("granularity", "?"),
                "pooling": key.get("pooling", "?"),
                "dtype": key.get("dtype", "?"),
                "examples": manifest.get("num_examples", 0),
                "shards": f"{len(manifest.get('shards', []))}/{_shard_count(manifest)}",
                "complete": bool(manifest.get("complete")),
                "bytes": size,
                "path": str(directory),
            }
        )
    return rows


def shard_parts(shard: dict[str, Any]) -> list[str]:
    """The files a manifest entry lists: data and offsets, and scales for int8 shards."""
    return [part for part in ("data", "offsets", "scales") if part in shard]


def _shard_problems(directory: Path, shard: dict[str, Any]) -> list[str]:
    problems = []
    for part in shard_parts(shard):
        entry = shard[part]
        path = directory / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, manifest says {entry['bytes']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: checksum mismatch")
    return problems


def verify_cache(directory: Path, repair: bool = False) -> list[str]:
    """Problems found in one cache (empty when every shard's size and checksum match).

    With ``repair``, bad shards are dropped from the manifest, so the next extraction redoes only those.
    """
    manifest = _read_json(directory / "manifest.json")
    if manifest is None:
        return [f"{directory}: no readable manifest.json"]
    problems, good = [], []
    for shard in manifest["shards"]:
        found = _shard_problems(directory, shard)
        problems += found
        if not found:
            good.append(shard)
    if not manifest.get("complete"):
        problems.append(f"{directory}: incomplete ({len(manifest['shards'])} shards written)")
    if repair and len(good) < len(manifest["shards"]):
        manifest.update(shards=good, complete=False)
        atomic_write_json(directory / "manifest.json", manifest)
    return problems


def remove_cache(directory: Path) -> None:
    shutil.rmtree(directory)
