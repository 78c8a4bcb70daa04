"""A comparison on Ray (``compare.executor: ray``): the same rows as the local executor's, to the last digit; a
worker lost mid-row retried with one row recorded; a path the workers cannot see refused before anything runs.
Each test runs on a local Ray instance of 2 CPUs, one per test module; the tests that need no Ray (the parallel
search, the fan-out, the choice of executor) run without it."""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from pathlib import Path

import pytest

from lmtransfer import compare, load_config
from lmtransfer.compare.results import read_rows
from lmtransfer.core.errors import LmtError

pytestmark = pytest.mark.usefixtures("one_thread")
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install 'lmtransfer[ray]' (CI has it)"
)
VARIANTS = (
    "compare.variants=[{name: mix-all}, {name: last, set: {features.layers: last}},"
    " {name: ft, set: {strategy: finetune, features.layers: last, train.head_lr: 0.05, train.patience: 10},"
    " search: {trials: 2, space: {train.lr: [1.0e-3, 3.0e-3]}}}]"
)
CONVERGING = ["train.lr=0.05", "train.epochs=20", "train.eval_steps=1", "train.patience=5"]  # stopped early
# what a row measured that does not depend on where or how fast it ran
SAME = ("status", "config_hash", "params", "dev", "test", "history", "convergence", "intervals", "sizes")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def tiny(run_overrides: list[str], out: Path, *extra: str):
    settings = ["train.epochs=1", "compare.seeds=[1]", "compare.extensions=0", "compare.inference_examples=2"]
    return load_config(None, [*run_overrides, *settings, f"compare.output_dir={out}", *extra])


def measured(folder: Path) -> dict[tuple, dict]:
    rows = read_rows(folder / "results.jsonl")
    return {(r.variant, r.seed, r.trial, r.extension): {k: getattr(r, k) for k in SAME} for r in rows}


def without_costs(verdict: str) -> str:
    """The verdict with its seconds and cost ratios blanked: what two runs of the same rows share."""
    return re.sub(r"[\d.,]+ ?(s|x|min)\b", "#", verdict)


@needs_ray
def test_ray_runs_the_rows_the_local_executor_runs(local_ray, run_overrides, tmp_path):
    here = compare(tiny(run_overrides, tmp_path / "local", VARIANTS, *CONVERGING), progress=False, isolate=False)
    on_ray = [VARIANTS, *CONVERGING, "compare.executor=ray", f"cache_dir={tmp_path / 'ray-cache'}"]  # extracts again
    there = compare(tiny(run_overrides, tmp_path / "ray", *on_ray), progress=False)
    assert measured(there.directory) == measured(here.directory)
    assert len(measured(here.directory)) == 5  # 2 trials, then mix-all, last and ft
    assert all(r.status == "ok" for r in there.rows) and [r.variant for r in there.rows] == ["mix-all", "last", "ft"]
    ft = there.rows[-1]
    assert ft.adopted_trial is not None  # a trial on Ray ran in a process of its own: its row adopts it
    assert "over the best feature-based variant" in there.report.verdict  # a verdict that compares the ways
    assert "Every trained variant converged" in there.report.verdict
    assert without_costs(there.report.verdict) == without_costs(here.report.verdict)
    assert [s.key.split("|")[0] for s in there.report.summaries] == ["mix-all", "last", "ft"]
    assert [s.intervals["dev"].as_list() for s in there.report.summaries] == [
        s.intervals["dev"].as_list() for s in here.report.summaries
    ]
    assert all(r.extraction_shared for r in there.rows[:2])  # the shared extraction ran first, once
    assert not list(there.directory.glob(".lmtransfer-probe*"))


@needs_ray
def test_a_worker_lost_mid_row_is_retried_and_its_row_recorded_once(local_ray, run_overrides, tmp_path, monkeypatch):
    from lmtransfer.compare import ray_executor

    marker = tmp_path / "lost-once"

    def lose_the_first_attempt(job, cwd):  # (sent to the worker by value)
        import os

        from lmtransfer.compare import ray_executor, worker

        if marker.exists():
            return ray_executor.run_in_worker(job, cwd)
        marker.touch()

        def die(step, score):  # the worker process ends at the first dev evaluation after training began
            if step > 0:
                os._exit(1)
            return False

        return worker.run_job(job, die), 0.0

    monkeypatch.setattr(ray_executor, "run_in_worker", lose_the_first_attempt)
    config = tiny(run_overrides, tmp_path / "cmp", "compare.executor=ray", "train.epochs=2", "compare.retries=1")
    result = compare(config, progress=False)
    assert marker.exists()  # the first attempt ran, and died
    (row,) = read_rows(result.directory / "results.jsonl")
    assert row.status == "ok", row.error
    assert [h["step"] for h in row.history] == [0, 10, 12]  # trained whole, by the second attempt
    run = Path(row.run_dir)
    assert (run / "metrics.json").is_file() and not list(run.parent.glob(".*.tmp"))  # no half-written folder


@needs_ray
def test_a_path_the_workers_cannot_see_is_refused_before_anything_runs(local_ray, run_overrides, tmp_path, monkeypatch):
    from lmtransfer.compare import shared_paths

    out = tmp_path / "cmp"

    def on_another_disk(token, node, written, read):  # this node has a folder of its own at the comparison's path
        import os

        from lmtransfer.compare.shared_paths import PROBE, probe_paths

        os.remove(os.path.join(str(out), f"{PROBE}-{token}"))
        return probe_paths(token, node, written, read)

    monkeypatch.setattr(shared_paths, "probe_paths", on_another_disk)
    with pytest.raises(LmtError, match=rf"node .*: {re.escape(str(out))}: another folder of that name"):
        compare(tiny(run_overrides, out, "compare.executor=ray"), progress=False)
    assert sorted(p.name for p in out.iterdir()) == []  # no config, no row, no run, no probe left


@needs_ray
def test_ctrl_c_cancels_the_running_jobs_and_a_rerun_resumes_the_rest(local_ray, run_overrides, tmp_path):
    import os
    import signal

    config = tiny(run_overrides, tmp_path / "cmp", "compare.executor=ray", "compare.seeds=[1, 2, 3]")
    results = tmp_path / "cmp" / "results.jsonl"

    def ctrl_c_after_the_first_row() -> None:
        while not results.exists() or not results.read_text().strip():
            time.sleep(0.05)
        # a real SIGINT, as a terminal's Ctrl-C sends (the rows take seconds each: the comparison still runs);
        # _thread.interrupt_main only sets a flag, which a busy CI machine was seen to leave unhandled
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, whatever an earlier test or library (a server, a browser driver) left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=ctrl_c_after_the_first_row, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            compare(config, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    finished = read_rows(results)
    assert 1 <= len(finished) < 3 and all(r.status == "ok" for r in finished)  # no row for a cancelled job
    resumed = compare(config, progress=False)
    assert resumed.skipped == len(finished) and len(resumed.rows) == 3 - len(finished)
    assert sorted(r.seed for r in read_rows(results)) == [1, 2, 3]


def test_a_node_that_cannot_see_a_path_says_which(tmp_path):
    from lmtransfer.compare.shared_paths import probe_paths

    seen = tmp_path / "seen"
    seen.mkdir()
    (seen / ".lmtransfer-probe-t").write_text("t")
    problems = probe_paths("t", "n1", [str(seen), str(tmp_path / "gone")], [str(tmp_path / "data.csv")])
    assert problems == [f"{tmp_path / 'gone'}: no such folder", f"{tmp_path / 'data.csv'}: not found"]
    assert (seen / ".lmtransfer-probe-t-n1").read_text() == "t"  # its write, for the driver to read back


def test_without_ray_the_ray_executor_says_what_to_install(monkeypatch):
    import sys

    from lmtransfer.compare.ray_executor import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LmtError, match=re.escape("pip install 'lmtransfer[ray]'")):
        import_ray()


def test_compare_executor_ray_without_ray_says_what_to_install_before_anything_runs(
    run_overrides, tmp_path, monkeypatch
):
    import sys

    from click.testing import CliRunner

    from lmtransfer.cli.main import cli

    config = tmp_path / "cmp.yaml"
    config.write_text("task: classification\ncompare: {seeds: [1]}\n")
    sets = [arg for item in [*run_overrides, f"compare.output_dir={tmp_path / 'c'}"] for arg in ("--set", item)]
    monkeypatch.setitem(sys.modules, "ray", None)
    ran = CliRunner().invoke(cli, ["compare", str(config), *sets, "--executor", "ray"])
    assert ran.exit_code != 0
    assert "pip install 'lmtransfer[ray]'" in ran.output + str(ran.exception)
    assert not (tmp_path / "c" / "results.jsonl").exists()


def test_the_executors_names_come_from_one_place():
    import typing

    from lmtransfer.cli.compare import compare_group
    from lmtransfer.compare.executors import EXECUTORS
    from lmtransfer.config.compare_schema import CompareConfig
    from lmtransfer.core import choices

    options = {p.name: p for p in compare_group.commands["run"].params}
    assert tuple(options["executor"].type.choices) == choices.EXECUTORS
    assert typing.get_args(CompareConfig.model_fields["executor"].annotation) == choices.EXECUTORS
    assert (*EXECUTORS, "auto") == choices.EXECUTORS


def test_auto_is_ray_where_ray_address_names_a_cluster(monkeypatch):
    from lmtransfer.compare.executors import executor_name

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert executor_name("auto") == "local" and executor_name("ray") == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    ray_there = importlib.util.find_spec("ray") is not None
    assert executor_name("auto") == ("ray" if ray_there else "local")


def test_a_search_runs_its_trials_side_by_side(run_overrides, tmp_path):
    """Two at a time: each trial told the trials numbered before it that had finished when it started, the
    same choice as one at a time (a grid; TPE's start-up points), and the trials in order whatever order they
    finished in."""
    from lmtransfer.compare.row import Row
    from lmtransfer.compare.search import run_search
    from lmtransfer.config.variants import search_plans

    def search(space: str, at_once: int):
        (plan,) = search_plans(tiny(run_overrides, tmp_path, f"compare.search={{trials: 4, space: {space}}}"))
        told, lock = {}, threading.Lock()

        def run_trial(plan, trial, values, number, prune):
            with lock:
                told[number] = sorted(r.trial for r in prune.finished)
            time.sleep(0.2 if number % 2 == 0 else 0)  # an even trial finishes after the odd one started with it
            dev = {"accuracy": values["train.lr"]}
            return Row(plan.variant, plan.encoder, 1, trial=number, params=values, dev=dev, metric="accuracy")

        return run_search(plan, [], run_trial, seed=1, at_once=at_once), told

    for space in ("{train.lr: [0.04, 0.01, 0.03, 0.02]}", "{train.lr: {low: 0.001, high: 0.1, log: true}}"):
        (both, told_both), (alone, told_alone) = search(space, 2), search(space, 1)
        assert told_alone == {n: list(range(n)) for n in range(4)}
        assert told_both[0] == told_both[1] == [] and all(set(b) <= set(range(n)) for n, b in told_both.items())
        assert both.values == alone.values and both.trials == alone.trials == 4
        assert both.best.trial == alone.best.trial


def test_rows_are_read_in_the_plans_order_whatever_order_they_finished_in():
    from lmtransfer.compare.results import latest
    from lmtransfer.compare.row import Row

    finished = [Row("b", "e", 1, position=2), Row("a", "e", 2, position=1), Row("a", "e", 1, position=0)]
    assert [(r.variant, r.seed) for r in latest(finished)] == [("a", 1), ("a", 2), ("b", 1)]
    older = [*finished, Row("c", "e", 1)]  # a row from before rows knew their place: the file's order
    assert [(r.variant, r.seed) for r in latest(older)] == [("b", 1), ("a", 2), ("a", 1), ("c", 1)]


def test_ctrl_c_in_a_phase_cancels_what_runs_and_waits(tmp_path):
    from lmtransfer.compare.execute import Cancelled
    from lmtransfer.compare.fanout import fan_out

    cancelled, running = threading.Event(), threading.Event()
    ended = []

    def job(n):
        if n == 0:
            running.wait(5)
            raise KeyboardInterrupt  # (as Ctrl-C reaches the thread that waits)
        running.set()
        cancelled.wait(5)  # a running job: stops once cancelled
        ended.append(n)
        raise Cancelled

    with pytest.raises(KeyboardInterrupt):
        fan_out([0, 1], job, 2, cancelled.set)
    assert cancelled.is_set() and ended == [1]  # cancelled, and waited for
