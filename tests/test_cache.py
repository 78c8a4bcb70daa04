"""The feature cache: keying, reuse, resume after a kill, verification, and the cache commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmtransfer.cli.main import cli
from lmtransfer.features.cache.admin import verify_cache
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import FeatureSpec
from tests.conftest import SENTENCES

SPEC = FeatureSpec(layers=(0, 1, 2), granularity="sentence", pooling="mean", max_length=32)
TEXTS = [f"{s} {i}" for i in range(6) for s in SENTENCES]  # 72 distinct texts


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes but timing.json's (how long each shard took: not part of what a cache holds)."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "timing.json")
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_second_run_extracts_nothing(tiny_encoder, tmp_path):
    first = extract(tiny_encoder, TEXTS, SPEC, tmp_path, shard_size=16, progress=False)
    assert first.examples == len(TEXTS) and len(first.cache) == len(TEXTS)
    assert len(first.cache.manifest["shards"]) == 5
    second = extract(tiny_encoder, TEXTS, SPEC, tmp_path, shard_size=16, progress=False)
    assert second.examples == 0 and second.cache.directory == first.cache.directory


def test_key_changes_with_data_layers_and_dtype(tiny_encoder, tmp_path):
    # layer 2 first: extracted after SPEC's layers (0, 1, 2), it would be read from their cache
    other_layers = extract(tiny_encoder, TEXTS[:8], FeatureSpec((2,), max_length=32), tmp_path, progress=False)
    base = extract(tiny_encoder, TEXTS[:8], SPEC, tmp_path, progress=False).cache.directory
    other_data = extract(tiny_encoder, TEXTS[1:9], SPEC, tmp_path, progress=False).cache.directory
    other_dtype = extract(tiny_encoder, TEXTS[:8], SPEC, tmp_path, dtype="float32", progress=False)
    dirs = {base, other_data, other_layers.cache.directory, other_dtype.cache.directory}
    assert len(dirs) == 4


def test_cache_rows_match_direct_forward(tiny_encoder, tmp_path):
    cache = extract(tiny_encoder, TEXTS[:10], SPEC, tmp_path, dtype="float32", shard_size=4, progress=False).cache
    tok = tiny_encoder.tokenizer
    import torch

    with torch.inference_mode():
        out = tiny_encoder.model(**tok([TEXTS[7]], return_tensors="pt"), output_hidden_states=True)
    want = np.stack([out.hidden_states[i][0].mean(dim=0).numpy() for i in SPEC.layers])  # (L, H)
    np.testing.assert_allclose(cache.example(7)[0], want, atol=1e-5)
    np.testing.assert_allclose(cache.gather_pooled(np.array([7, 2]))[0], want, atol=1e-5)
    assert cache.example(7).dtype == np.float32


def test_float16_is_the_default_and_memory_mapped(tiny_encoder, tmp_path):
    cache = extract(tiny_encoder, TEXTS[:10], SPEC, tmp_path, progress=False).cache
    assert cache.example(0).dtype == np.float16
    data, _, scales = cache._shard(0)
    assert isinstance(data, np.memmap) and scales is None


def test_int8_cache_is_close_to_float32_and_small(tiny_encoder, tmp_path):
    exact = extract(tiny_encoder, TEXTS, SPEC, tmp_path, dtype="float32", shard_size=16, progress=False).cache
    small = extract(tiny_encoder, TEXTS, SPEC, tmp_path, dtype="int8", shard_size=16, progress=False).cache
    want, got = exact.gather_pooled(np.arange(len(TEXTS))), small.gather_pooled(np.arange(len(TEXTS)))
    assert got.dtype == np.float32 and small.example(3).dtype == np.float32
    np.testing.assert_array_equal(small.example(3), got[3:4])
    step = np.abs(want).max(axis=-1, keepdims=True) / 127  # one quantisation step per stored vector
    assert np.all(np.abs(got - want) <= step / 2 + 1e-6)  # rounding to the nearest step, never more
    data_bytes = sum(s["data"]["bytes"] for s in small.manifest["shards"])
    assert data_bytes < 0.3 * sum(s["data"]["bytes"] for s in exact.manifest["shards"])
    assert verify_cache(small.directory) == []
    (small.directory / "shard-00002.scales.npy").write_bytes(b"")
    assert any("shard-00002.scales.npy" in p for p in verify_cache(small.directory))
    again = extract(tiny_encoder, TEXTS, SPEC, tmp_path, dtype="int8", shard_size=16, progress=False)
    assert again.examples == 16  # the shard whose scales were lost is redone, alone


def test_bfloat16_compute_is_keyed_and_close(tiny_encoder, tmp_path):
    exact = extract(tiny_encoder, TEXTS[:16], SPEC, tmp_path, dtype="float32", progress=False).cache
    bf16 = extract(tiny_encoder, TEXTS[:16], SPEC, tmp_path, dtype="float32", compute="bfloat16", progress=False)
    assert bf16.cache.directory != exact.directory and bf16.cache.key["compute"] == "bfloat16"
    want, got = exact.gather_pooled(np.arange(16)), bf16.cache.gather_pooled(np.arange(16))
    assert not np.array_equal(want, got)  # it really ran in bfloat16
    np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max())


KILLED_EXTRACTION = textwrap.dedent(
    """
    import sys, time
    import lmtransfer.features.extraction as ex
    from lmtransfer.encoders.loading import load_encoder
    from lmtransfer.features.pooling import FeatureSpec
    from tests.test_cache import TEXTS, SPEC

    slow = ex._forward_rows
    def forward_slowly(*args, **kwargs):
        time.sleep(0.15)  # gives the parent time to kill us in the middle of a shard
        return slow(*args, **kwargs)
    ex._forward_rows = forward_slowly
    ex.extract(load_encoder(sys.argv[1]), TEXTS, SPEC, sys.argv[2], shard_size=16, batch_size=4, progress=False)
    """
)


def test_killed_extraction_resumes_to_identical_cache(tiny_bert_dir, tiny_encoder, tmp_path):
    whole_root, killed_root = tmp_path / "whole", tmp_path / "killed"
    extract(tiny_encoder, TEXTS, SPEC, whole_root, shard_size=16, batch_size=4, progress=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXTRACTION, str(tiny_bert_dir), str(killed_root)], env=env)
    deadline = time.time() + 120
    manifest = None
    while time.time() < deadline and proc.poll() is None:
        found = list(killed_root.glob("features/*/manifest.json"))
        if found and len(json.loads(found[0].read_text())["shards"]) >= 2:
            manifest = found[0]
            break
        time.sleep(0.02)
    assert manifest is not None, "the child never finished two shards"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(json.loads(manifest.read_text())["shards"])
    assert done_before < 5, "the child finished before it was killed"
    resumed = extract(tiny_encoder, TEXTS, SPEC, killed_root, shard_size=16, batch_size=4, progress=False)
    assert resumed.examples == len(TEXTS) - 16 * done_before  # only the missing shards were extracted
    whole = tree_bytes(whole_root)
    assert tree_bytes(killed_root) == whole  # byte-identical, leftovers of the killed shard gone too


def test_verify_finds_corruption_and_truncation(tiny_encoder, tmp_path):
    cache = extract(tiny_encoder, TEXTS, SPEC, tmp_path, shard_size=16, progress=False).cache
    assert verify_cache(cache.directory) == []
    flipped = cache.directory / "shard-00001.data.npy"
    raw = bytearray(flipped.read_bytes())
    raw[-3] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    truncated = cache.directory / "shard-00003.data.npy"
    truncated.write_bytes(truncated.read_bytes()[:100])
    problems = verify_cache(cache.directory)
    assert any("shard-00001.data.npy: checksum mismatch" in p for p in problems)
    assert any("shard-00003.data.npy" in p and "bytes" in p for p in problems)
    again = extract(tiny_encoder, TEXTS, SPEC, tmp_path, shard_size=16, progress=False)
    assert again.examples == 16  # a run notices the truncated shard by its size and redoes only it
    assert verify_cache(cache.directory, repair=True) == [f"{flipped}: checksum mismatch"]
    third = extract(tiny_encoder, TEXTS, SPEC, tmp_path, shard_size=16, progress=False)
    assert third.examples == 16  # verify dropped the corrupt shard; the next run redid only that one
    assert verify_cache(cache.directory) == []


def test_incomplete_cache_is_refused(tmp_path):
    from lmtransfer.core.errors import CacheError

    with pytest.raises(CacheError, match="not a complete feature cache"):
        FeatureCache(tmp_path)


def test_cache_commands(tiny_encoder, tmp_path):
    cache = extract(tiny_encoder, TEXTS[:20], SPEC, tmp_path, shard_size=8, progress=False).cache
    runner = CliRunner()
    listed = runner.invoke(cli, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert listed.exit_code == 0 and cache.directory.name in listed.output and "complete" in listed.output
    as_json = json.loads(runner.invoke(cli, ["cache", "ls", "--json", "--cache-dir", str(tmp_path)]).output)
    assert as_json[0]["examples"] == 20 and as_json[0]["layers"] == [0, 1, 2]
    verified = runner.invoke(cli, ["cache", "verify", "--cache-dir", str(tmp_path)])
    assert verified.exit_code == 0 and ": ok" in verified.output
    (cache.directory / "shard-00000.offsets.npy").unlink()
    broken = runner.invoke(cli, ["cache", "verify", cache.directory.name[:6], "--cache-dir", str(tmp_path)])
    assert broken.exit_code == 1 and "missing" in broken.output
    removed = runner.invoke(cli, ["cache", "rm", cache.directory.name[:6], "--cache-dir", str(tmp_path)])
    assert removed.exit_code == 0 and not cache.directory.exists()


SLOW_EXTRACTION = textwrap.dedent(
    """
    import sys, time
    import lmtransfer.features.extraction as ex
    from lmtransfer.encoders.loading import load_encoder
    from tests.test_cache import TEXTS, SPEC

    slow = ex._forward_rows
    def forward_slowly(*args, **kwargs):
        time.sleep(0.25)  # long enough for the other writer to start while this one works
        return slow(*args, **kwargs)
    ex._forward_rows = forward_slowly
    done = ex.extract(load_encoder(sys.argv[1]), TEXTS, SPEC, sys.argv[2], shard_size=16, batch_size=4, progress=False)
    print(done.examples, len(done.cache))
    """
)


def test_two_concurrent_extractions_share_the_shards_and_both_end_well(tiny_bert_dir, tiny_encoder, tmp_path):
    """Two commands filling one cache at once (two terminals, two comparisons sharing an encoder): the
    second starts a fraction of a second after the first; both finish, neither redoes the other's shards,
    and the cache verifies and equals one extraction alone byte for byte."""
    whole_root, shared_root = tmp_path / "whole", tmp_path / "shared"
    extract(tiny_encoder, TEXTS, SPEC, whole_root, shard_size=16, batch_size=4, progress=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", SLOW_EXTRACTION, str(tiny_bert_dir), str(shared_root)]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [proc.communicate(timeout=180) for proc in (first, second)]
    for proc, (_, err) in zip((first, second), outputs):
        assert proc.returncode == 0, err
    extracted = [int(out.split()[0]) for out, _ in outputs]
    assert sum(extracted) == len(TEXTS) and min(extracted) > 0  # the shards were shared out, none done twice
    assert all(int(out.split()[1]) == len(TEXTS) for out, _ in outputs)  # each returned the whole cache
    (directory,) = shared_root.glob("features/*")
    assert verify_cache(directory) == []
    assert tree_bytes(shared_root) == tree_bytes(whole_root)


def test_extraction_under_accelerate_launch_splits_the_shards(tiny_bert_dir, tiny_encoder, tmp_path):
    """``accelerate launch`` with two processes: each extracts the shards the other does not hold, both
    return the complete cache, and it equals a single-process extraction byte for byte."""
    whole_root, launched_root = tmp_path / "whole", tmp_path / "launched"
    extract(tiny_encoder, TEXTS, SPEC, whole_root, shard_size=16, batch_size=4, progress=False)
    script = tmp_path / "extract.py"
    script.write_text(SLOW_EXTRACTION, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    launcher = Path(sys.executable).parent / "accelerate"
    command = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(tiny_bert_dir)]
    done = subprocess.run([*command, str(launched_root)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert len(counts) == 2  # one line per process
    assert sum(int(c[0]) for c in counts) == len(TEXTS) and min(int(c[0]) for c in counts) > 0
    assert all(int(c[1]) == len(TEXTS) for c in counts)
    assert tree_bytes(launched_root) == tree_bytes(whole_root)
