"""The on-disk layout of a feature cache: sharded, memory-mapped, checksummed, keyed by an explicit CacheKey.

Layout of one cache (``<root>/features/<digest>/``)::

    key.json                   the CacheKey, in full
    manifest.json              shards written so far, with sizes and sha256; "complete" at the end
    shard-00000.data.npy       (rows, L, H) float16 / float32 / int8 rows of shard 0
    shard-00000.offsets.npy    (n + 1,) int64: example i of the shard owns rows offsets[i]:offsets[i+1]
    shard-00000.scales.npy     (rows, L) float32, int8 caches only: row vector = data * scale
    timing.json                seconds each shard took to extract: what the cache cost to make, for compare's
                               costs; kept out of the manifest, so that caches of the same key stay identical

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

import json
from pathlib import Path
from typing import Any

TIMING = "timing.json"
DIGEST_LENGTH = 24  # hex digits of a cache's directory name (the start of its key's sha256)


def shard_name(index: int, part: str) -> str:
    return f"shard-{index:05d}.{part}.npy"


def shard_parts(shard: dict[str, Any]) -> list[str]:
    """The files a manifest entry lists: data and offsets, and scales for int8 shards."""
    return [part for part in ("data", "offsets", "scales") if part in shard]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
