"""Writing a feature cache shard by shard: each shard's arrays fill temporary files, which are renamed into
place when complete and then listed, with their sizes and checksums, in the manifest. A resumed extraction
keeps the shards the manifest lists intact and redoes only the others.

Several writers may fill one cache at once: the processes of ``accelerate launch``, or two commands that
happen to need the same features. A writer works on a shard only while it holds that shard's lock
(``claim``), and reads, merges and writes the manifest only under the cache's lock, so the writers share
the shards out between them, no writer touches another's temporary files, and no manifest entry is lost.
The locks are ``filelock``'s (``fcntl`` on Unix): the system releases them when their process dies, so a
killed writer's shard is simply claimed again."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from lmtransfer.core.atomic import atomic_write_json, commit_file, sha256_file
from lmtransfer.core.errors import CacheError
from lmtransfer.features.cache.key import FORMAT_VERSION, CacheKey
from lmtransfer.features.cache.layout import TIMING, read_json, shard_name, shard_parts
from lmtransfer.features.cache.quantize import quantize_int8


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


class CacheWriter:
    """Writes one cache shard by shard; finished shards already listed in the manifest are kept."""

    def __init__(self, directory: Path, key: CacheKey, num_examples: int, shard_size: int, hidden_size: int) -> None:
        self.directory = directory
        self.key = key
        self.num_examples = num_examples
        self.shard_size = shard_size
        self.hidden_size = hidden_size
        self.manifest: dict[str, Any] = {}
        self._fresh: dict[str, Any] = {}

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_examples // self.shard_size))

    def shard_range(self, index: int) -> tuple[int, int]:
        start = index * self.shard_size
        return start, min(start + self.shard_size, self.num_examples)

    def _lock(self) -> FileLock:
        """The cache's lock: held while the manifest is read, merged and written."""
        return FileLock(self.directory / ".manifest.lock")

    def open(self) -> CacheWriter:
        """Create the directory, or pick up a manifest left by an interrupted run (or written by another
        writer) of the same key."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fresh = {
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
        with self._lock():
            for name in ("manifest.json", TIMING, "key.json"):  # written only under this lock: a killed write's
                for debris in self.directory.glob(f".{name}.*.tmp"):
                    debris.unlink(missing_ok=True)
            self._read_manifest()
            if not (self.directory / "key.json").exists():
                atomic_write_json(self.directory / "key.json", dataclasses.asdict(self.key))
        return self

    def _read_manifest(self) -> None:
        """The manifest on disk (the cache's lock held), if it is one of this key; the shards it lists that
        are whole. A shard lost or cut short is dropped from the list, so just that one is redone."""
        old = read_json(self.directory / "manifest.json")
        fixed = {k: v for k, v in self._fresh.items() if k not in ("shards", "complete")}
        same = old is not None and all(old.get(k) == v for k, v in fixed.items())
        self.manifest = old if same else dict(self._fresh, shards=[])
        intact = [s for s in self.manifest["shards"] if self._intact(s)]
        if len(intact) < len(self.manifest["shards"]):
            self.manifest.update(shards=intact, complete=False)

    def refresh(self) -> None:
        """Read what other writers have committed since."""
        with self._lock():
            self._read_manifest()

    def claim(self, index: int, wait: bool = False) -> FileLock | None:
        """Shard ``index``'s lock, held, if the shard is still to do; None if another writer holds it (and
        ``wait`` is false) or it is done. Temporary files of the shard that a killed writer left behind are
        removed: nobody else can be writing them now."""
        lock = FileLock(self.directory / f".shard-{index:05d}.lock", thread_local=False)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return None
        self.refresh()
        if self.done(index):
            lock.release()
            return None
        for debris in self.directory.glob(f".shard-{index:05d}.*.tmp"):
            debris.unlink(missing_ok=True)
        return lock

    def claimed(self, todo: list[int], skipped: Callable[[int], object]) -> Iterator[tuple[int, FileLock]]:
        """The shards of ``todo`` this writer is to extract, each with its lock held, until all are done.

        First every shard nobody holds, in order; then, for each shard another writer (a process of
        ``accelerate launch``, another command on the same data) held, wait for its lock: once released the
        shard is done, or its writer died and it is this one's to do. ``skipped`` is told the examples of
        each shard another writer did (a progress bar's update)."""
        held = []
        for index in todo:
            lock = self.claim(index)
            if lock is not None:
                yield index, lock
            elif not self.done(index):
                held.append(index)
            else:
                skipped(self.examples_in(index))
        for index in held:
            lock = self.claim(index, wait=True)
            if lock is not None:
                yield index, lock
            else:
                skipped(self.examples_in(index))

    def examples_in(self, index: int) -> int:
        start, stop = self.shard_range(index)
        return stop - start

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
        self,
        index: int,
        buffer: ShardBuffer,
        offsets: np.ndarray,
        tokens: int,
        truncated: int = 0,
        seconds: float | None = None,
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
        with self._lock():  # other writers may have committed shards since: merge, never overwrite
            if seconds is not None:  # what extracting it took: the cache's cost, also for runs that only read it
                timing = read_json(self.directory / TIMING) or {}
                atomic_write_json(self.directory / TIMING, {**timing, str(index): seconds})
            self._read_manifest()
            others = [s for s in self.manifest["shards"] if s["index"] != index]
            self.manifest["shards"] = sorted([*others, entry], key=lambda s: s["index"])
            atomic_write_json(self.directory / "manifest.json", self.manifest)

    def finish(self) -> None:
        with self._lock():
            self._read_manifest()
            missing = [i for i in range(self.num_shards) if not self.done(i)]
            if missing:
                raise CacheError(f"shards {missing} are missing", path=self.directory)
            if not self.manifest["complete"]:
                self.manifest["complete"] = True
                atomic_write_json(self.directory / "manifest.json", self.manifest)
