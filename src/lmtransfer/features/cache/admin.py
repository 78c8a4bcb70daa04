"""Looking after the caches under a root: list them, verify their checksums (and drop damaged shards from
the manifest, so that the next extraction redoes just those), remove them, and find a complete cache that
holds a superset of the layers a run needs. Reads JSON and file sizes only: ``lmtransfer cache ls`` starts
without torch or numpy."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmtransfer.core.atomic import atomic_write_json, sha256_file
from lmtransfer.features.cache.layout import read_json, shard_parts

if TYPE_CHECKING:
    from lmtransfer.features.cache.key import CacheKey


def find_superset(root: Path, key: CacheKey) -> Path | None:
    """A complete cache under ``root`` whose key equals ``key`` but for holding more layers (all of
    ``key.layers`` among them); of several, the smallest. None when there is none."""
    wanted = {k: v for k, v in dataclasses.asdict(key).items() if k != "layers"}
    found = []
    base = Path(root) / "features"
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        if directory.is_symlink() or not directory.is_dir() or directory.name.startswith("."):
            continue
        other = read_json(directory / "key.json") or {}
        layers = set(other.get("layers") or [])
        if not set(key.layers) < layers or any(other.get(k) != v for k, v in wanted.items()):
            continue
        manifest = read_json(directory / "manifest.json") or {}
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
        manifest = read_json(directory / "manifest.json") or {}
        key = read_json(directory / "key.json") or {}
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
    manifest = read_json(directory / "manifest.json")
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
