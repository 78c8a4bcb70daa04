"""Reliability: kills at random moments and at every write step, damaged caches, unsafe files and names,
determinism.

The kill tests run their victims in processes forked from one server process that imported torch and
loaded the tiny encoder once: a fresh interpreter needs seconds to import torch, a fork milliseconds.
A victim is killed by the server (its parent, so the pid cannot be reused meanwhile) after a random
delay, or kills itself just before its k-th file-system call (``crash_at``), for k = 1, 2, ... until
a save runs through: that covers every step of a save, the rare windows included.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from lmtransfer import load_config, train
from lmtransfer.api import evaluate, predict
from lmtransfer.cli.main import cli
from lmtransfer.config.schema import EncoderConfig, RunConfig
from lmtransfer.core.atomic import append_jsonl
from lmtransfer.core.errors import ConfigError, LmtError, ModelError
from lmtransfer.encoders.loading import load_encoder
from lmtransfer.features.cache.admin import verify_cache
from lmtransfer.features.cache.layout import shard_parts
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import FeatureSpec
from lmtransfer.nn.task_model import sentence_classifier
from lmtransfer.runs.directory import save_run
from lmtransfer.runs.encoder_run import Run
from lmtransfer.runs.encoder_train import FEATURE
from lmtransfer.training.checkpoint import Checkpoints
from tests.conftest import SENTENCES, write_csv

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "lmtransfer"
# kills per random-kill test; LMTRANSFER_KILLS=100 for a deeper run (docs/reliability.md has its figures)
KILLS = int(os.environ.get("LMTRANSFER_KILLS", "25"))
SPEC = FeatureSpec(layers=(0, 1, 2), granularity="sentence", pooling="mean", max_length=32)
TEXTS = [f"{s} {i}" for i in range(6) for s in SENTENCES]  # 72 distinct texts: 9 shards of 8


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes but timing.json's (how long each shard took: not part of what a cache holds)."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "timing.json")
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# --- the victims: run in a forked child of the server, with the server's encoder as first argument ---


def job_extract(encoder, root: str, dtype: str) -> None:
    """Extract TEXTS slowly (a sleep per batch, and before every rename) so that kills land anywhere."""
    import lmtransfer.features.extraction as ex

    forward, replace = ex._forward_rows, os.replace

    def slow_forward(*args, **kwargs):
        time.sleep(0.02)
        return forward(*args, **kwargs)

    def slow_replace(*args, **kwargs):
        time.sleep(0.004)  # widens the window in which a finished temporary file waits for its rename
        return replace(*args, **kwargs)

    ex._forward_rows, os.replace = slow_forward, slow_replace
    ex.extract(encoder, TEXTS, SPEC, root, dtype=dtype, shard_size=8, batch_size=2, progress=False)


def job_append(encoder, path: str) -> None:
    """Append numbered rows of varying length until killed."""
    target = Path(path)
    i = len(target.read_text(encoding="utf-8").splitlines()) if target.exists() else 0
    while True:
        append_jsonl(target, {"i": i, "pad": "x" * (i * 379 % 6000)})
        i += 1


def marked_training_state(step: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    """A model, optimizer (with Adam moments) and scheduler whose every number says ``step``."""
    model = torch.nn.Linear(96, 96)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    model(torch.ones(1, 96)).sum().backward()
    optimizer.step()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(step)
            optimizer.state[p]["exp_avg"].fill_(step)
    optimizer.param_groups[0]["lr"] = float(step)
    scheduler.last_epoch = step
    return model, optimizer, scheduler


def save_marked_checkpoint(root: str | Path, step: int, keep: int = 2) -> None:
    """The best (as the loop saves it at an epoch end), then the periodic checkpoint of ``step``."""
    ckpts = Checkpoints(root, keep=keep)
    model, optimizer, scheduler = marked_training_state(step)
    ckpts.save_best({k: v.detach().clone() for k, v in model.state_dict().items()}, {"step": step})
    ckpts.save(step, model, optimizer, scheduler, {"step": step}, {0: {"cpu": torch.get_rng_state()}})


def job_checkpoints(encoder, root: str) -> None:
    """Save periodic and best checkpoints step after step until killed, continuing after the latest."""
    latest = Checkpoints(root).latest()
    step = 1 if latest is None else int(latest.name.removeprefix("step-")) + 1
    while True:
        save_marked_checkpoint(root, step)
        step += 1


def job_save_checkpoint(encoder, root: str, step: int) -> None:
    save_marked_checkpoint(root, step, keep=1)


def job_clear_checkpoints(encoder, root: str) -> None:
    Checkpoints(root).clear()


def save_marked_run(directory: str | Path, marker: int, config: RunConfig | None = None) -> None:
    """A small run directory whose weights and metrics all say ``marker``."""
    model = sentence_classifier(2, 8, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(marker)
    info = {"layers": [0, 1], "hidden_size": 8, "weights_sha256": "-", "source": "-"}
    save_run(directory, config or RunConfig(), model, ["a", "b", "c"], info, {"marker": marker}, way=FEATURE)


def job_save_run(encoder, directory: str, marker: int) -> None:
    save_marked_run(directory, marker)


JOBS = {
    f.__name__: f
    for f in (job_extract, job_append, job_checkpoints, job_save_checkpoint, job_clear_checkpoints, job_save_run)
}

# C functions that change files; a crash point is the moment just before one of them
FS_CALLS = {
    "open",
    "write",
    "fsync",
    "rename",
    "replace",
    "unlink",
    "rmdir",
    "mkdir",
    "link",
    "serialize_file",
    "write_record",
}


def _crash_before_call(k: int) -> None:
    count = 0

    def profile(frame, event, arg) -> None:
        nonlocal count
        in_memory = isinstance(getattr(arg, "__self__", None), (io.StringIO, io.BytesIO))
        if event == "c_call" and getattr(arg, "__name__", "") in FS_CALLS and not in_memory:
            count += 1
            if count == k:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.setprofile(profile)


def _run_child(request: dict, encoder) -> None:
    """In the forked child: run one job and leave with its status, never returning to the server loop."""
    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stdout is the server's reply channel
        if request.get("crash_at"):
            _crash_before_call(request["crash_at"])
        JOBS[request["job"]](encoder, *request["args"])
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.setprofile(None)
        os._exit(code)


def serve(model_dir: str) -> None:
    """The fork server: one JSON request per stdin line, one JSON reply per line on stdout."""
    torch.set_num_threads(1)
    encoder = load_encoder(model_dir)

    def reply(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()  # before any fork, or the child would inherit (and repeat) buffered output

    reply({"ready": True})
    while line := sys.stdin.readline():
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(request, encoder)
        if request.get("kill_after") is not None:
            time.sleep(request["kill_after"])
            os.kill(pid, signal.SIGKILL)  # a child that already ended is a zombie until reaped: no harm
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            reply({"outcome": "killed" if os.WTERMSIG(status) == signal.SIGKILL else "signal"})
        else:
            reply({"outcome": "done" if os.WEXITSTATUS(status) == 0 else "failed"})


class ForkServer:
    def __init__(self, model_dir: Path) -> None:
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        code = "import sys; from tests.test_reliability import serve; serve(sys.argv[1])"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(model_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self._buffer = b""
        assert self._read(timeout=180) == {"ready": True}

    def _read(self, timeout: float) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, "the fork server stopped answering"
            chunk = os.read(fd, 65536)
            assert chunk, "the fork server died"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def run(self, job: str, *args, kill_after: float | None = None, crash_at: int | None = None) -> str:
        """'killed', 'done' (it ended before the kill) or 'failed' (an exception: see the captured stderr)."""
        request = {"job": job, "args": [str(a) if isinstance(a, Path) else a for a in args]}
        request.update(kill_after=kill_after, crash_at=crash_at)
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        outcome = self._read(timeout=120)["outcome"]
        assert outcome in ("killed", "done"), f"{job} {args}: {outcome}"
        return outcome

    def close(self) -> None:
        self.proc.stdin.close()  # the server's loop ends at end of input
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def fork_server(tiny_bert_dir):
    server = ForkServer(tiny_bert_dir)
    yield server
    server.close()


def crash_at_every_step(fork_server, job: str, *args, prepare, check, limit: int = 500) -> int:
    """Kill ``job`` before its 1st, 2nd, ... file-system call until it runs through; ``prepare()`` sets
    up the old state before each try, ``check(k)`` judges what a kill there left. Returns the steps."""
    for k in range(1, limit):
        prepare()
        if fork_server.run(job, *args, crash_at=k) == "done":
            check(None)
            return k - 1
        check(k)
    raise AssertionError(f"{job} did not finish within {limit} crash points")


# --- 1. crash safety ---


def _cache_state(root: Path) -> dict[str, int]:
    """Check a cache as a kill left it; return the inode of every file its manifest lists.

    The manifest parses; each file it lists has its recorded size and sha256 (no half file is ever
    listed as whole); a complete cache reads back.
    """
    found = list(root.glob("features/*/manifest.json"))
    if not found:
        return {}
    assert len(found) == 1
    directory = found[0].parent
    manifest = json.loads(found[0].read_text(encoding="utf-8"))
    assert [p for p in verify_cache(directory) if ": incomplete (" not in p] == []
    if manifest["complete"]:
        assert FeatureCache(directory).gather_pooled(np.arange(len(TEXTS))).shape == (len(TEXTS), 3, 32)
    return {
        s[part]["file"]: (directory / s[part]["file"]).stat().st_ino
        for s in manifest["shards"]
        for part in shard_parts(s)
    }


def test_random_sigkills_during_extraction(fork_server, tmp_path):
    """KILLS (25) kills at random moments, alternating float16 and int8 caches; each rerun resumes; the final
    caches are byte-identical to uninterrupted ones."""
    rng = random.Random(20261125)
    dtypes = ("float16", "int8")
    whole = {}
    for dtype in dtypes:
        assert fork_server.run("job_extract", tmp_path / f"whole-{dtype}", dtype) == "done"
        whole[dtype] = tree_bytes(tmp_path / f"whole-{dtype}")
    committed = {dtype: {} for dtype in dtypes}  # file -> inode of every shard file listed so far
    kills, finished, mid_write = 0, 0, 0
    while kills < KILLS:
        dtype = dtypes[kills % 2]
        root = tmp_path / f"killed-{dtype}"
        outcome = fork_server.run("job_extract", root, dtype, kill_after=rng.uniform(0.0, 0.3))
        now = _cache_state(root)
        # a rerun resumes: shard files committed before are neither lost nor written again
        assert {name: now.get(name) for name in committed[dtype]} == committed[dtype]
        committed[dtype] = now
        kills += outcome == "killed"
        mid_write += outcome == "killed" and any(root.glob("features/*/.*.tmp"))  # a half-written file was left
        if outcome == "done":  # the rerun finished the cache before the kill: compare, start again
            assert tree_bytes(root) == whole[dtype]
            shutil.rmtree(root)
            committed[dtype], finished = {}, finished + 1
    for dtype in dtypes:
        root = tmp_path / f"killed-{dtype}"
        assert fork_server.run("job_extract", root, dtype) == "done"
        now = _cache_state(root)
        assert {name: now.get(name) for name in committed[dtype]} == committed[dtype]
        assert tree_bytes(root) == whole[dtype]  # no temporary file of a killed write left either
    print(f"extraction: {kills} kills ({mid_write} left a half-written file), {finished} finished between them")


def test_random_sigkills_during_append_jsonl(fork_server, tmp_path):
    """KILLS kills of a writer appending rows: every line is whole JSON, and no row is lost or doubled."""
    rng = random.Random(7)
    path = tmp_path / "results.jsonl"
    for _ in range(KILLS):
        assert fork_server.run("job_append", path, kill_after=rng.uniform(0.02, 0.25)) == "killed"
        text = path.read_text(encoding="utf-8") if path.exists() else ""  # a kill may beat the first row
        assert text == "" or text.endswith("\n")
        rows = [json.loads(line) for line in text.splitlines()]  # raises on half a row
        assert [row["i"] for row in rows] == list(range(len(rows)))
    assert len(rows) > KILLS
    left = len(list(tmp_path.glob(".*.tmp")))
    print(f"append_jsonl: {KILLS} kills, {len(rows)} whole rows, {left} temporary files left")


def test_two_processes_appending_to_one_file_lose_no_row(tmp_path):
    """Two comparisons sharing an output folder append to one results.jsonl at once: every row of both
    is there, whole, once."""
    path = tmp_path / "results.jsonl"
    script = (
        "import sys; from lmtransfer.core.atomic import append_jsonl\n"
        "for i in range(150): append_jsonl(sys.argv[1], {'writer': sys.argv[2], 'i': i})"
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in "ab"]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for name in "ab":
        assert [row["i"] for row in rows if row["writer"] == name] == list(range(150))
    assert len(rows) == 300


def _check_checkpoint(path: Path) -> int:
    """Load a checkpoint into fresh objects; every number in it must say the same step. Returns it."""
    model, optimizer, scheduler = marked_training_state(0)
    state = Checkpoints.load(path, model, optimizer, scheduler, rank=0)
    step = state["step"]
    assert all(torch.all(p == step) for p in model.parameters())
    assert all(torch.all(optimizer.state[p]["exp_avg"] == step) for p in model.parameters())
    assert optimizer.param_groups[0]["lr"] == step and scheduler.last_epoch == step
    return step


def _best_step(root: Path) -> int | None:
    best = Checkpoints(root).best_state()
    if best is None:
        return None
    values = {float(v.flatten()[0]) for v in best.values()}
    assert len(values) == 1 and all(torch.all(v == v.flatten()[0]) for v in best.values())
    return int(values.pop())


def test_random_sigkills_during_checkpoint_saves(fork_server, tmp_path):
    """KILLS kills of a loop saving checkpoints: the latest always loads whole and never goes back."""
    rng = random.Random(11)
    root = tmp_path / "checkpoints"
    last = 0
    for _ in range(KILLS):
        assert fork_server.run("job_checkpoints", root, kill_after=rng.uniform(0.02, 0.3)) == "killed"
        latest, best = Checkpoints(root).latest(), _best_step(root)
        step = 0 if latest is None else _check_checkpoint(latest)
        assert step >= last  # never goes back
        assert best in ((None, 1) if step == 0 else (step, step + 1))  # the best goes first: this step's or the next
        last = step
    assert last > 5
    print(f"checkpoint saves: {KILLS} kills, reached step {last}")


def test_a_kill_at_every_step_of_a_checkpoint_save(fork_server, tmp_path):
    """Periodic save (dropping the older one) and best save over an existing one: old or new, never none."""
    template, root = tmp_path / "template", tmp_path / "checkpoints"
    save_marked_checkpoint(template, 1)

    def prepare() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(template, root)

    def check(k: int | None) -> None:
        latest = Checkpoints(root).latest()
        assert latest is not None and _check_checkpoint(latest) in ((1, 2) if k else (2,)), k
        assert _best_step(root) in ((1, 2) if k else (2,)), k

    steps = crash_at_every_step(fork_server, "job_save_checkpoint", root, 2, prepare=prepare, check=check)
    assert steps > 20
    print(f"checkpoint save: killed at each of its {steps} steps")
    # after a kill, the next save tidies up: nothing but the kept checkpoints and the best are left
    prepare()
    assert fork_server.run("job_save_checkpoint", root, 2, crash_at=steps - 2) == "killed"
    save_marked_checkpoint(root, 3, keep=1)
    assert sorted(p.name for p in root.iterdir()) == ["best", "step-0000003"]


def test_a_kill_at_every_step_of_clearing_checkpoints(fork_server, tmp_path):
    """A fresh run clears old checkpoints; a kill midway must not leave a half checkpoint for --resume."""
    template, root = tmp_path / "template", tmp_path / "checkpoints"
    for step in (1, 2):
        save_marked_checkpoint(template, step)

    def prepare() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(template, root)

    def check(k: int | None) -> None:
        latest = Checkpoints(root).latest()
        assert latest is None or _check_checkpoint(latest) == 2, k

    steps = crash_at_every_step(fork_server, "job_clear_checkpoints", root, prepare=prepare, check=check)
    assert steps > 5
    print(f"clearing checkpoints: killed at each of its {steps} steps")


def test_a_kill_at_every_step_of_save_run(fork_server, tmp_path):
    """Replacing a run: loading gives the old run whole or the new one whole, checkpoints kept, after a
    kill at any step; the next save leaves no debris."""
    template, target = tmp_path / "template" / "run", tmp_path / "runs" / "run"
    save_marked_run(template, 1)
    save_marked_checkpoint(template / "checkpoints", 1)

    def prepare() -> None:
        shutil.rmtree(target.parent, ignore_errors=True)
        shutil.copytree(template.parent, target.parent)

    def check(k: int | None) -> None:
        run = Run.load(target)
        marker = run.metrics["marker"]
        assert marker in ((1, 2) if k else (2,)), k
        assert all(torch.all(p == marker) for p in run.model.parameters()), k
        assert _check_checkpoint(Checkpoints(run.directory / "checkpoints").latest()) == 1, k

    steps = crash_at_every_step(fork_server, "job_save_run", target, 2, prepare=prepare, check=check)
    assert steps > 20
    print(f"save_run: killed at each of its {steps} steps")
    for k in range(1, steps + 1, 6):  # and a later save after such a kill ends clean
        prepare()
        assert fork_server.run("job_save_run", target, 2, crash_at=k) == "killed"
        save_marked_run(target, 3)
        assert Run.load(target).metrics["marker"] == 3
        assert _check_checkpoint(Checkpoints(target / "checkpoints").latest()) == 1
        assert [p.name for p in target.parent.iterdir()] == ["run"], k


# --- 2. cache verify finds damage; the next extraction redoes only the damaged shards ---


@pytest.mark.parametrize(
    "dtype,part",
    [("float16", "data"), ("float16", "offsets"), ("int8", "data"), ("int8", "scales"), ("int8", "offsets")],
)
def test_verify_finds_a_bit_flip_and_a_truncation(tiny_encoder, tmp_path, dtype, part):
    cache = extract(tiny_encoder, TEXTS, SPEC, tmp_path, dtype=dtype, shard_size=16, progress=False).cache
    pristine = tree_bytes(cache.directory)
    inodes = {p.name: p.stat().st_ino for p in cache.directory.iterdir()}
    flipped, cut = cache.directory / f"shard-00001.{part}.npy", cache.directory / f"shard-00003.{part}.npy"
    raw = bytearray(flipped.read_bytes())
    raw[-5] ^= 0x10  # one bit, in the values
    flipped.write_bytes(bytes(raw))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    runner = CliRunner()
    verified = runner.invoke(cli, ["cache", "verify", "--cache-dir", str(tmp_path)])
    assert verified.exit_code == 1 and "BAD" in verified.output
    assert f"{flipped}: checksum mismatch" in verified.output
    assert f"{cut}: {cut.stat().st_size} bytes, manifest says" in verified.output
    again = extract(tiny_encoder, TEXTS, SPEC, tmp_path, dtype=dtype, shard_size=16, progress=False)
    assert again.examples == 32  # the two damaged shards, and only those
    assert tree_bytes(cache.directory) == pristine
    untouched = [n for n in inodes if n.startswith("shard-") and not n.startswith(("shard-00001", "shard-00003"))]
    assert all((cache.directory / n).stat().st_ino == inodes[n] for n in untouched)
    assert runner.invoke(cli, ["cache", "verify", "--cache-dir", str(tmp_path)]).exit_code == 0


def test_a_truncated_shard_is_an_error_not_garbage(tiny_encoder, tmp_path):
    from lmtransfer.core.errors import CacheError

    cache = extract(tiny_encoder, TEXTS, SPEC, tmp_path, dtype="int8", shard_size=16, progress=False).cache
    for name, keep in (("shard-00001.data.npy", -10), ("shard-00002.scales.npy", 100), ("shard-00003.offsets.npy", -8)):
        path = cache.directory / name
        path.write_bytes(path.read_bytes()[:keep])  # inside the values, or inside the header
    reader = FeatureCache(cache.directory)
    for index in (16, 32, 48):
        with pytest.raises(CacheError, match="unreadable shard"):
            reader.example(index)


# --- 3. safe loading ---


def _pickle_only_copy(tiny_bert_dir: Path, target: Path) -> Path:
    shutil.copytree(tiny_bert_dir, target)
    weights = load_file(target / "model.safetensors")
    (target / "model.safetensors").unlink()
    torch.save(weights, target / "pytorch_model.bin")
    return target


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_checkpoints_are_refused_unless_allowed(tiny_bert_dir, tmp_path):
    pickled = _pickle_only_copy(tiny_bert_dir, tmp_path / "pickled")
    with pytest.raises(ModelError, match=r"found only pytorch_model\.bin.*--allow-pickle"):
        load_encoder(str(pickled))
    allowed = load_encoder(str(pickled), allow_pickle=True)
    reference = load_encoder(str(tiny_bert_dir))
    assert allowed.weights_hash() == reference.weights_hash()
    # even allowed, a pickle is read with torch.load(weights_only=True): one that runs code is refused
    marker = tmp_path / "code-ran"
    evil = shutil.copytree(pickled, tmp_path / "evil")
    torch.save({"embeddings.word_embeddings.weight": _RunsCode(str(marker))}, evil / "pytorch_model.bin")
    with pytest.raises(ModelError, match="pickle"):
        load_encoder(str(evil), allow_pickle=True)
    with open(evil / "pytorch_model.bin", "wb") as handle:  # a plain (not zip) pickle too
        pickle.dump(_RunsCode(str(marker)), handle)
    with pytest.raises(ModelError, match="pickle"):
        load_encoder(str(evil), allow_pickle=True)
    assert not marker.exists()


def test_allow_pickle_reaches_the_encoder_from_config_and_cli(tiny_bert_dir, run_overrides, tmp_path, monkeypatch):
    assert EncoderConfig().allow_pickle is False and EncoderConfig.model_fields["allow_pickle"].description
    pickled = _pickle_only_copy(tiny_bert_dir, tmp_path / "pickled")
    sets = [a for item in [*run_overrides, f"encoder.model={pickled}"] for a in ("--set", item)]
    runner = CliRunner()
    refused = runner.invoke(cli, ["extract", "-q", "--split", "dev", *sets])
    assert isinstance(refused.exception, ModelError) and "--allow-pickle" in str(refused.exception)
    allowed = runner.invoke(cli, ["extract", "-q", "--split", "dev", "--allow-pickle", *sets])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["dev"]["examples"] == 6
    # train: the flag lands in the config; a run trained so reloads its encoder the same way
    seen = {}

    def fake_train(config, progress, resume):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr("lmtransfer.api.train", fake_train)
    runner.invoke(cli, ["train", "-q", "--allow-pickle", *sets])
    assert seen["config"].encoder.allow_pickle is True
    monkeypatch.undo()
    result = train(
        load_config(None, [*run_overrides, f"encoder.model={pickled}", "encoder.allow_pickle=true"]), progress=False
    )
    assert evaluate(result.directory, progress=False)["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])


def _calls(tree: ast.AST):
    """(owner, name, keywords, node) of each call: ("torch", "load", ...) for torch.load(...), ("", "eval", ...)
    for a bare eval(...), ("?", "eval", ...) for self.model.eval()."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else "?"
                yield owner, func.attr, {k.arg: k.value for k in node.keywords}, node
            elif isinstance(func, ast.Name):
                yield "", func.id, {k.arg: k.value for k in node.keywords}, node


def _safe_loaders(tree: ast.AST) -> set[str]:
    """yaml's safe loaders, and the classes of this module derived from them."""
    safe = {"SafeLoader", "CSafeLoader"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
            if bases & safe:
                safe.add(node.name)
    return safe


def test_no_unsafe_deserialisation_in_the_source():
    """torch.load always with weights_only=True; YAML only through a safe loader; no pickle, allow_pickle
    numpy, bare eval / exec, or literal trust_remote_code=True anywhere in src/."""
    torch_loads = 0
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        safe_loaders = _safe_loaders(tree)
        for owner, name, keywords, node in _calls(tree):
            where = f"{path.name}:{node.lineno}"
            if (owner, name) == ("torch", "load"):
                torch_loads += 1
                flag = keywords.get("weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, (
                    f"{where}: torch.load without weights_only=True"
                )
            assert owner not in ("pickle", "dill", "cloudpickle", "marshal", "shelve"), where
            if owner == "yaml" and name in ("load", "load_all", "compose", "compose_all"):
                loader = keywords.get("Loader")
                loader = getattr(loader, "attr", getattr(loader, "id", None))
                assert loader in safe_loaders, f"{where}: yaml.{name} without a safe Loader"
            assert (owner, name) not in {("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "unsafe_load_all")}, (
                where
            )
            assert (owner, name) not in {("", "eval"), ("", "exec"), ("", "__import__")}, where
            if owner == "np" and name == "load":
                assert "allow_pickle" not in keywords, where
            remote = keywords.get("trust_remote_code")
            assert not (isinstance(remote, ast.Constant) and remote.value is True), where
    assert torch_loads >= 3  # checkpoint.py's optimizer, scheduler and RNG states


def test_trust_remote_code_is_off_by_default_and_passed_through(tiny_bert_dir, monkeypatch):
    assert EncoderConfig().trust_remote_code is False and RunConfig().encoder.trust_remote_code is False
    import lmtransfer.encoders.loading as encoders

    seen = []

    class Spy:
        def __init__(self, real) -> None:
            self.real = real

        def from_pretrained(self, *args, **kwargs):
            seen.append((self.real.__name__, kwargs.get("trust_remote_code"), kwargs.get("use_safetensors")))
            return self.real.from_pretrained(*args, **kwargs)

    monkeypatch.setattr(encoders, "AutoModel", Spy(encoders.AutoModel))
    monkeypatch.setattr(encoders, "AutoTokenizer", Spy(encoders.AutoTokenizer))
    load_encoder(str(tiny_bert_dir))
    assert seen == [("AutoTokenizer", False, None), ("AutoModel", False, True)]
    seen.clear()
    load_encoder(str(tiny_bert_dir), trust_remote_code=True)
    assert [s[1] for s in seen] == [True, True]


def test_pipeline_and_runs_pass_the_loading_settings(run_overrides, tmp_path, monkeypatch):
    import lmtransfer.runs.encoder_run as runs
    import lmtransfer.training.setup as pipeline
    from lmtransfer import api

    seen = []

    def fake_load(name, **kwargs):
        seen.append(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "load_encoder", fake_load)
    monkeypatch.setattr(runs, "load_encoder", fake_load)
    config = load_config(None, [*run_overrides, "encoder.trust_remote_code=true", "encoder.allow_pickle=true"])
    with pytest.raises(SystemExit):
        api.extract(config, ["dev"], progress=False)
    save_marked_run(tmp_path / "saved", 1, config)
    with pytest.raises(SystemExit):
        Run.load(tmp_path / "saved").load_encoder()
    assert seen == [{"trust_remote_code": True, "allow_pickle": True, "revision": None, "oov": "zero"}] * 2


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "run.yaml"
    path.write_text(f"encoder:\n  model: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: line 2: not valid YAML"):
        load_config(path)
    path.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path)
    with pytest.raises(ConfigError, match=r"command line: .*not valid YAML"):  # an override is YAML too
        load_config(None, [f"encoder.model=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


def test_a_run_config_with_a_code_tag_is_refused(tmp_path):
    save_marked_run(tmp_path / "run", 1)
    marker = tmp_path / "code-ran"
    (tmp_path / "run" / "config.yaml").write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(LmtError, match=r"config\.yaml"):
        Run.load(tmp_path / "run")
    assert not marker.exists()


def test_a_revision_that_climbs_out_is_refused(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for revision in ("../../etc", "main/../../x", "/abs"):
        with pytest.raises(ModelError, match="revision"):
            load_encoder("some-org/some-model", revision=revision)


# --- 4. path safety ---


@pytest.mark.parametrize("command", ["rm", "verify"])
def test_cache_commands_refuse_digests_that_are_paths(tiny_encoder, tmp_path, command):
    root = tmp_path / "deep" / "cache"
    cache = extract(tiny_encoder, TEXTS[:8], SPEC, root, progress=False).cache
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "manifest.json").write_text("{}")
    (victim / "keep.txt").write_text("precious")
    runner = CliRunner()
    for digest in (
        "../../../victim",
        "../..",
        "..",
        "/",
        str(victim),
        "a/b",
        f"{cache.directory.name}/..",
        "",
        "-x",
        "zz",
    ):
        result = runner.invoke(cli, ["cache", command, "--cache-dir", str(root), "--", digest])
        assert result.exit_code != 0 and isinstance(result.exception, LmtError), (digest, result.output)
        assert "hex" in str(result.exception)
    assert (victim / "keep.txt").read_text() == "precious" and (victim / "manifest.json").read_text() == "{}"
    assert cache.directory.is_dir() and verify_cache(cache.directory) == []
    ok = runner.invoke(cli, ["cache", command, "--cache-dir", str(root), cache.directory.name[:8]])
    assert ok.exit_code == 0, ok.output


def test_cache_commands_never_follow_links_out_of_the_cache(tiny_encoder, tmp_path):
    root = tmp_path / "cache"
    cache = extract(tiny_encoder, TEXTS[:8], SPEC, root, progress=False).cache
    victim = tmp_path / "victim"
    shutil.copytree(cache.directory, victim)  # looks like a cache, with a bad shard
    (victim / "shard-00000.data.npy").write_bytes(b"x")
    (root / "features" / ("f" * 24)).symlink_to(victim, target_is_directory=True)
    (root / "features" / "stray-file").write_text("not a cache")
    runner = CliRunner()
    assert runner.invoke(cli, ["cache", "ls", "--cache-dir", str(root)]).exit_code == 0
    manifest = (victim / "manifest.json").read_bytes()
    assert runner.invoke(cli, ["cache", "verify", "--cache-dir", str(root)]).exit_code == 0
    assert (victim / "manifest.json").read_bytes() == manifest  # not "repaired"
    assert runner.invoke(cli, ["cache", "rm", "--all", "--cache-dir", str(root)]).exit_code == 0
    assert victim.is_dir() and (victim / "manifest.json").is_file() and not cache.directory.exists()


def test_labels_that_look_like_paths_write_nothing_outside(run_overrides, tmp_path, monkeypatch):
    labels = ["../../escaped", "a/b", "/tmp-abs", "..", "c\\d"]
    rows = [(s, labels[i % len(labels)]) for i, s in enumerate(SENTENCES)]
    files = {
        name: write_csv(tmp_path / f"{name}-paths.csv", rows * (4 if name == "train" else 1))
        for name in ("train", "dev", "test")
    }
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = {p for p in tmp_path.rglob("*")}
    overrides = [*run_overrides, *(f"data.{n}={f}" for n, f in files.items())]
    result = train(load_config(None, overrides), progress=False)
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [
        p for p in created if not p.is_relative_to(tmp_path / "run") and not p.is_relative_to(tmp_path / "cache")
    ]
    assert outside == []
    assert json.loads((result.directory / "labels.json").read_text()) == sorted(labels)
    assert not (tmp_path / "work" / "escaped").exists() and not Path("/tmp-abs").exists()
    assert {p["label"] for p in predict(result.directory, SENTENCES)} <= set(labels)


# --- 5. determinism ---


@pytest.mark.parametrize("strategy", ["feature", "finetune", "lora"])
def test_same_config_and_seed_give_the_same_run(run_overrides, tmp_path, strategy):
    common = [*run_overrides, f"strategy={strategy}", "train.epochs=2", "lora.r=4"]
    runs = []
    for name in ("first", "second"):  # the second extracts into its own cache: extraction is redone too
        overrides = [*common, f"output_dir={tmp_path / name}", f"cache_dir={tmp_path / f'cache-{name}'}"]
        runs.append(train(load_config(None, overrides), progress=False))
    first, second = (r.metrics for r in runs)
    assert first["history"] == second["history"]
    assert first["dev"] == second["dev"] and first["test"] == second["test"]
    weights = [load_file(r.directory / "model.safetensors") for r in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    if strategy != "feature":
        encoders = [(r.directory / "encoder" / "model.safetensors").read_bytes() for r in runs]
        assert encoders[0] == encoders[1]
    other = train(load_config(None, [*common, "train.seed=14", f"output_dir={tmp_path / 'other'}"]), progress=False)
    assert other.metrics["history"] != first["history"]  # the seed matters
