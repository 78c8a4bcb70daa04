"""lmtransfer compare: rows in results.jsonl, reruns that skip finished rows, failures that are recorded and
then resumed, one shared extraction for the feature variants, and compare configs checked at load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmtransfer import api, compare, load_config
from lmtransfer.cli.main import cli
from lmtransfer.compare.results import read_rows
from lmtransfer.config.variants import jobs
from lmtransfer.core.errors import ConfigError
from lmtransfer.features.cache.reader import FeatureCache
from lmtransfer.features.extraction import extract
from lmtransfer.features.pooling import FeatureSpec

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VARIANTS = (
    "compare.variants=[{name: mix-all}, {name: last, set: {features.layers: last}},"
    " {name: concat, set: {features.layers: [1, 2], features.combine: concat, head.type: mlp}}]"
)


def compare_config(run_overrides: list[str], tmp_path: Path, *extra: str):
    out = tmp_path / "cmp"
    return load_config(
        None,
        [
            *run_overrides,
            "train.epochs=2",
            f"compare.output_dir={out}",
            "compare.seeds=[1, 2]",
            "compare.extensions=0",
            *extra,
        ],
    )


def caches(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "features").iterdir())


def test_rows_rerun_and_one_shared_extraction(run_overrides, tmp_path):
    config = compare_config(run_overrides, tmp_path, VARIANTS)
    result = compare(config, progress=False, isolate=False)
    rows = read_rows(result.directory / "results.jsonl")
    assert [(r.variant, r.seed) for r in rows] == [(v, s) for v in ("mix-all", "last", "concat") for s in (1, 2)]
    assert all(r.status == "ok" for r in rows)
    row = rows[0]
    assert set(row.dev) >= {"accuracy", "f1"} and set(row.test) >= {"accuracy"}
    assert set(row.seconds) >= {"extraction", "training", "evaluation", "wall"}
    assert row.peak_rss_bytes > 0 and row.trainable_parameters > 0 and row.cache_bytes > 0
    assert row.inference["examples"] == 6 and row.inference["examples_per_second"] > 0
    assert row.layer_weights["layers"] == [0, 1, 2]
    assert [h["step"] for h in row.history] == [0, 10, 12]  # dev before training, every 10 steps, at the end
    assert row.convergence["steps"] == 12 and row.extension == 0
    assert Path(row.run_dir, "metrics.json").is_file()
    # one extraction (train, dev, test) of the union of layers served all six runs
    assert len(caches(tmp_path)) == 3
    assert all(r.extraction_shared for r in rows)
    shared = json.loads((result.directory / "extractions.json").read_text())  # what the one extraction took
    made = sum(FeatureCache(d).made_seconds for d in caches(tmp_path))  # what its shards recorded
    assert [r.seconds["extraction"] for r in rows] == pytest.approx([made] * 6)
    assert 0 < made <= next(iter(shared.values()))
    assert all(r.seconds["extraction_own"] < r.seconds["extraction"] for r in rows)
    # another comparison that finds the caches made is charged what making them took, not the lookup
    elsewhere = compare_config(run_overrides, tmp_path, VARIANTS, f"compare.output_dir={tmp_path / 'other'}")
    other = compare(elsewhere, progress=False, isolate=False)
    assert [r.seconds["extraction"] for r in other.rows] == pytest.approx([made] * 6)
    used = {
        d for r in rows for d in json.loads(Path(r.run_dir, "metrics.json").read_text())["costs"]["caches"].values()
    }
    assert used == {str(d) for d in caches(tmp_path)}
    # a subset's storage is its layers' share: 1 of 3 layers, and 2 of 3
    by_variant = {r.variant: r.cache_bytes for r in rows}
    assert by_variant["last"] < by_variant["concat"] < by_variant["mix-all"]
    assert "| mix-all |" in result.report.markdown and (result.directory / "report.html").is_file()
    # each row names its evaluation units (inside the folder) and holds the interval of its own run
    for r in rows:
        low, high = r.intervals["dev"][r.metric]
        assert low <= r.dev[r.metric] <= high
        assert not Path(r.units["dev"]).is_absolute() and (result.directory / r.units["dev"]).is_file()
    assert all(s.intervals["dev"].contains(s.dev.mean) for s in result.report.summaries)
    assert "95% paired-bootstrap interval" in result.report.markdown

    again = compare(config, progress=False, isolate=False)
    assert again.skipped == 6 and again.rows == []
    assert len(read_rows(result.directory / "results.jsonl")) == 6


def test_failed_row_is_recorded_and_a_rerun_resumes(run_overrides, tmp_path, monkeypatch):
    from lmtransfer.compare import worker

    config = compare_config(run_overrides, tmp_path, "compare.variants=[{name: a}, {name: b, set: {head.type: mlp}}]")
    real = worker.train_row

    def flaky(run_config, *args):
        if run_config.head.type == "mlp" and run_config.train.seed == 1:
            raise RuntimeError("simulated crash")
        return real(run_config, *args)

    monkeypatch.setattr(worker, "train_row", flaky)
    first = compare(config, progress=False, isolate=False)
    statuses = [(r.variant, r.seed, r.status) for r in first.rows]
    assert statuses == [("a", 1, "ok"), ("a", 2, "ok"), ("b", 1, "failed"), ("b", 2, "ok")]
    assert "RuntimeError: simulated crash" in first.rows[2].error
    assert "1 run(s) failed (b seed 1)" in first.report.verdict

    monkeypatch.setattr(worker, "train_row", real)
    second = compare(config, progress=False, isolate=False)
    assert [(r.variant, r.seed, r.status) for r in second.rows] == [("b", 1, "ok")]
    assert "failed" not in second.report.verdict


def test_an_interrupted_compare_keeps_its_rows(run_overrides, tmp_path, monkeypatch):
    from lmtransfer.compare import worker

    config = compare_config(run_overrides, tmp_path)  # no variants: the base run, two seeds
    real, calls = worker.train_row, []

    def interrupted(run_config, *args):
        calls.append(run_config.train.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(run_config, *args)

    monkeypatch.setattr(worker, "train_row", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(config, progress=False, isolate=False)
    assert [r.seed for r in read_rows(tmp_path / "cmp" / "results.jsonl")] == [1]
    monkeypatch.setattr(worker, "train_row", real)
    resumed = compare(config, progress=False, isolate=False)
    assert resumed.skipped == 1 and [r.seed for r in resumed.rows] == [2]


def test_a_row_runs_in_a_child_process(run_overrides, tmp_path):
    config = load_config(None, [*run_overrides, "train.epochs=1", f"compare.output_dir={tmp_path / 'c'}"])
    (only,) = compare(config, progress=False).rows  # the base run, one seed, in `python -m lmtransfer.worker`
    assert only.status == "ok", only.traceback
    assert only.peak_rss_bytes > 0 and only.inference["examples_per_second"] > 0
    assert not list((tmp_path / "c").glob(".job-*"))  # the child's job folder is gone


def test_a_failing_row_is_recorded_and_the_comparison_goes_on(run_overrides, tmp_path):
    # a head the task cannot take is a config error, refused at load (config resolution checks it); a layer
    # the encoder does not have is known only once the row loads its encoder, so that row fails alone
    overrides = [f"compare.output_dir={tmp_path / 'c'}", "compare.inference_examples=2"]
    with pytest.raises(ConfigError, match=r"compare\.variants\[0\]\.set\.head\.type': variant 'bad-head': .*head"):
        load_config(None, [*run_overrides, *overrides, "compare.variants=[{name: bad-head, set: {head.type: crf}}]"])
    variants = "compare.variants=[{name: bad-layer, set: {features.layers: [5]}}, {name: ok}]"
    config = load_config(None, [*run_overrides, "train.epochs=1", *overrides, variants])
    with pytest.warns(UserWarning, match="shared extraction failed"):  # (the union of layers holds 5 too)
        bad, ok = compare(config, progress=False, isolate=False).rows
    assert bad.status == "failed" and "layer 5 does not exist" in bad.error and ok.status == "ok"
    assert ok.inference["examples"] == 2


def test_superset_cache_serves_a_subset_with_the_same_features(tiny_encoder, tmp_path):
    texts = ["the movie was great", "shares fell", "news of the day", "a good day for sport"] * 3
    for granularity, pooling in (("sentence", "mean"), ("word", "first")):
        everything = FeatureSpec((0, 1, 2), granularity, pooling, 32)
        subset = FeatureSpec((0, 2), granularity, pooling, 32)
        words = [t.split() for t in texts] if granularity == "word" else texts
        full = extract(tiny_encoder, words, everything, tmp_path / "shared", progress=False, shard_size=5)
        served = extract(tiny_encoder, words, subset, tmp_path / "shared", progress=False, shard_size=5)
        own = extract(tiny_encoder, words, subset, tmp_path / "own", progress=False, shard_size=5)
        assert served.examples == 0 and served.cache.directory == full.cache.directory
        assert own.examples == len(texts) and served.cache.num_layers == 2
        for i in range(len(texts)):
            np.testing.assert_array_equal(served.cache.example(i), own.cache.example(i))
        if granularity == "sentence":
            np.testing.assert_array_equal(
                served.cache.gather_pooled(np.arange(12)), own.cache.gather_pooled(np.arange(12))
            )
        assert abs(served.cache.nbytes - own.cache.nbytes) < 0.05 * own.cache.nbytes + 1024
    assert len(list((tmp_path / "shared" / "features").iterdir())) == 2  # no cache of its own for the subsets


def test_a_cache_that_lacks_a_layer_is_not_used(tiny_encoder, tmp_path):
    texts = ["the movie was great", "shares fell"]
    extract(tiny_encoder, texts, FeatureSpec((1, 2)), tmp_path, progress=False)
    again = extract(tiny_encoder, texts, FeatureSpec((0, 2)), tmp_path, progress=False)
    assert again.examples == 2 and again.cache.num_layers == 2
    with pytest.raises(Exception, match="not in this cache"):
        FeatureCache(again.cache.directory, layers=[1])


def test_variants_cross_encoders_and_seeds(run_overrides, tiny_bert_dir, tiny_mpnet_dir, tmp_path):
    config = load_config(
        None,
        [
            *run_overrides,
            f"compare.encoders=[{tiny_bert_dir}, {tiny_mpnet_dir}]",
            "compare.seeds=[1, 2]",
            "compare.variants=[{name: feat}, {name: ft, set: {strategy: finetune}},"
            f" {{name: own, set: {{encoder.model: {tiny_bert_dir}}}}}, {{name: alone, encoders: false}}]",
        ],
    )
    found = jobs(config)
    assert len(found) == 2 * 2 + 2 * 2 + 2 + 2
    ft = next(j for j in found if j.variant == "ft")
    assert ft.config.strategy == "finetune" and ft.config.train.lr == 5e-5  # its own defaults, not the base's
    assert len({j.config.output_dir for j in found}) == len(found)
    assert len({j.key for j in found}) == len(found)
    feat = next(j for j in found if j.variant == "feat" and j.encoder == str(tiny_bert_dir) and j.seed == 1)
    own = next(j for j in found if j.variant == "own" and j.seed == 1)
    assert feat.config_hash == own.config_hash  # the same run: the hash ignores where it is written


BAD = [
    ("{name: x, set: {head.typo: 1}}", "head.typo", "Extra inputs"),
    ("{name: x, set: {train.lr: -1}}", "train.lr", "greater than 0"),
    ("{name: x, set: {features.layers: lastt}}", "features.layers", "unknown layer spec"),
    ("{name: x, set: {strategy: lora, encoder.model: glove-6b-50d}}", "encoder.model", "static vectors"),
    ("{name: x, set: {head: 3}}", "head", "valid dictionary"),
]


@pytest.mark.parametrize(("variant", "field", "message"), BAD)
def test_bad_variants_are_named_errors(tmp_path, variant, field, message):
    path = tmp_path / "cmp.yaml"
    path.write_text(f"task: classification\ncompare:\n  variants:\n    - {{name: fine}}\n    - {variant}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert err.path == str(path) and err.line == 5, str(err)
    assert f"compare.variants[1].set.{field}" in err.field and "variant 'x'" in err.message and message in str(err)


BAD_SECTIONS = [
    ("compare:\n  seeds: []\n", r"line 2: field 'compare\.seeds'"),
    ("compare:\n  variants:\n    - {name: a}\n    - {name: a}\n", "names must differ"),
    ("compare:\n  variants:\n    - {name: ../up}\n", r"compare\.variants\.name"),
    ("compare:\n  train_sizes: [0, 100]\n", "at least 1"),
    ("compare:\n  train_sizes: [100, 100]\n", "each size once"),
    ("compare:\n  train_sizes: [ten]\n", r"compare\.train_sizes"),
    (
        "compare:\n  variants: [{name: a}]\n  search: {space: {train.batch_size: [0]}}\n",
        r"compare\.search\.space\.train\.batch_size.*variant 'a'",
    ),
    ("compare:\n  variants: [{name: a}]\n  search: {variants: [b], space: {train.lr: [0.1]}}\n", "no variant named b"),
    ("compare:\n  search: {space: {train.lr: {low: 1, high: 0.1}}}\n", "must be below high"),
    ("compare:\n  search: {space: {train.lr: []}}\n", "an empty list of values"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SECTIONS)
def test_bad_compare_sections(tmp_path, text, message):
    path = tmp_path / "cmp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_train_on_a_compare_config_trains_the_base(run_overrides, tmp_path):
    config = load_config(None, [*run_overrides, "train.epochs=1", "compare.seeds=[4, 5]"])
    result = api.train(config, progress=False)
    assert result.directory == tmp_path / "run" and result.metrics["dev"]["examples"] == 6


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_with_every_variant(path):
    config = load_config(path)
    if config.compare is not None:
        assert jobs(config), path
    assert path.read_text().startswith("#")  # each opens with how to run it


def test_cli_compare_and_its_report(run_overrides, tmp_path):
    sets = [
        arg
        for item in [*run_overrides, "train.epochs=1", f"compare.output_dir={tmp_path / 'c'}"]
        for arg in ("--set", item)
    ]
    runner = CliRunner()
    missing = runner.invoke(cli, ["compare", *sets])
    assert missing.exit_code != 0
    no_section = tmp_path / "plain.yaml"
    no_section.write_text("task: classification\n")
    refused = runner.invoke(cli, ["compare", str(no_section)])
    assert refused.exit_code != 0 and "compare" in str(refused.exception or refused.output)
    help_text = runner.invoke(cli, ["compare", "--help"]).output
    assert "compare report" in help_text and "results.jsonl" in help_text


def test_extraction_groups_take_feature_rows_that_differ_in_layers(run_overrides, tmp_path):
    from lmtransfer.compare.runner import extraction_groups

    variants = (
        "compare.variants=[{name: a}, {name: b, set: {features.layers: last}}, {name: c, set: {strategy: finetune}},"
        " {name: d, set: {features.pooling: cls}}, {name: e, set: {encoder.model: tfidf}}]"
    )
    config = compare_config(run_overrides, tmp_path, variants)
    (group,) = extraction_groups(jobs(config))  # d pools otherwise and is alone: its own run extracts it
    assert sorted({j.variant for j in group}) == ["a", "b"] and len(group) == 4


def test_training_set_sizes_are_nested_seeded_subsets_swept_for_every_variant(run_overrides, tmp_path):
    from lmtransfer.data.splits import sample_indices

    for size in (1000, 67_349):
        small, large = (set(sample_indices(size, n, 7).tolist()) for n in (100, 300))
        assert len(small) == 100 and small < large
    ft = "{name: ft, set: {strategy: finetune, train.lr: 1.0e-3, train.head_lr: 0.05, train.patience: 10}}"
    extra = ["compare.train_sizes=[all, 12]", f"compare.variants=[{{name: mix}}, {ft}]", "train.lr=0.05"]
    converging = ["train.epochs=20", "train.eval_steps=1", "train.patience=5"]  # stopped early: converged
    config = compare_config(run_overrides, tmp_path, *extra, "compare.seeds=[1]", *converging)
    found = jobs(config)
    assert [(j.train_size, j.variant) for j in found] == [(12, "mix"), (12, "ft"), ("all", "mix"), ("all", "ft")]
    assert [j.config.data.max_train_examples for j in found] == [12, 12, None, None]
    assert found[0].config.output_dir.endswith("/n-12/seed-1")
    result = compare(config, progress=False, isolate=False)
    rows = read_rows(result.directory / "results.jsonl")
    assert [(r.train_size, r.sizes["train"]) for r in rows] == [(12, 12), (12, 12), ("all", 48), ("all", 48)]
    report = result.report
    assert len(report.summaries) == 4 and {s.train_examples for s in report.summaries} == {12, 48}
    assert "| variant | encoder | kind | train | seeds |" in report.markdown
    assert f"| mix | {rows[0].encoder} | feature-based | 12 | 1 |" in report.markdown
    assert report.verdict.startswith("With 48 training examples: ")
    assert "Across training-set sizes: " in report.verdict
    page = (result.directory / "report.html").read_text()
    assert page.count("<svg") == 6 and "against the number of training examples" in page
    assert "Learning curves at 12 training examples" in page
    again = compare(config, progress=False, isolate=False)
    assert again.skipped == 4


SEARCHED = (
    "compare.variants=[{name: mix}, {name: ft, set: {strategy: finetune, features.layers: last},"
    " search: {trials: 2, space: {train.lr: {low: 1.0e-4, high: 1.0e-3, log: true}}}}]"
)


def test_a_search_tunes_each_way_by_dev_alone_and_resumes(run_overrides, tmp_path, monkeypatch):
    from lmtransfer.compare import worker

    extra = [SEARCHED, "compare.search={space: {train.lr: [0.01, 0.05], head.dropout: [0.0]}}", "train.epochs=20"]
    extra += ["train.eval_steps=1", "train.patience=5"]  # stopped early: converged
    config = compare_config(run_overrides, tmp_path, *extra, "compare.seeds=[1]")
    calls = []
    real = worker.train_row
    monkeypatch.setattr(worker, "train_row", lambda c, *a: calls.append(c.train.score_test) or real(c, *a))
    result = compare(config, progress=False, isolate=False)
    rows = read_rows(result.directory / "results.jsonl")
    trials = [r for r in rows if r.is_trial]
    assert [(r.variant, r.trial) for r in trials] == [("mix", 0), ("mix", 1), ("ft", 0), ("ft", 1)]
    assert [r.params for r in trials[:2]] == [
        {"train.lr": 0.01, "head.dropout": 0.0},
        {"train.lr": 0.05, "head.dropout": 0.0},
    ]
    assert all(1e-4 <= r.params["train.lr"] <= 1e-3 for r in trials[2:])  # sampled by TPE within the range
    assert all(r.test is None and r.inference is None for r in trials)  # dev alone
    assert calls == [False] * 4 + [True] * 2
    final = [r for r in rows if not r.is_trial]
    for r in final:
        tried = [t for t in trials if t.variant == r.variant]
        best = max(tried, key=lambda t: t.dev["accuracy"])  # ties: the earliest
        assert r.search["params"] == best.params and r.search["trials"] == 2
        assert r.test is not None and Path(r.run_dir, "metrics.json").is_file()
    assert "| tuning |" in result.report.markdown and "| 2 trials, " in result.report.markdown
    assert "Tuning by dev: fine-tuning 2 trials (2 quasi-random (Halton) start-up points) in" in result.report.verdict
    assert len(result.report.summaries) == 2  # the trials are not variants of the table

    # a search killed after its first trial goes on from the second; the finished rows are not run again
    lines = (result.directory / "results.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line).get("trial") in (0,) and json.loads(line)["variant"] == "mix"]
    (result.directory / "results.jsonl").write_text("\n".join(kept) + "\n")
    calls.clear()
    again = compare(config, progress=False, isolate=False)
    assert calls == [False] * 3 + [True] * 2
    assert again.skipped == 0 and len(again.rows) == 2


def test_a_child_reports_its_own_peak_memory_not_its_parents():
    """ru_maxrss of a child started by fork + exec holds the parent's peak on Linux; a row's must not."""
    import subprocess
    import sys

    held = np.ones(600 * 2**20 // 8)  # 600 MiB in this (the parent) process
    held += 1
    code = "from lmtransfer.core.devices import peak_rss_bytes; print(peak_rss_bytes())"
    child = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert child < 500 * 2**20 and held.sum() > 0


def test_a_search_without_a_space_searches_the_ways_learning_rate_and_training_length(run_overrides, tmp_path):
    from lmtransfer.config.variants import DEFAULT_SPACES, search_plans

    bow = "{name: bow, set: {encoder.model: tfidf}}"
    variants = f"compare.variants=[{{name: mix}}, {{name: ft, set: {{strategy: finetune}}}}, {bow}]"
    config = compare_config(run_overrides, tmp_path, variants, "compare.search={trials: 3}")
    plans = {p.variant: p.search.space for p in search_plans(config)}
    assert plans == {"mix": DEFAULT_SPACES["feature"], "ft": DEFAULT_SPACES["finetune"]}  # baselines: none
    assert all(set(space) == {"train.lr", "train.min_steps"} for space in DEFAULT_SPACES.values())


def test_the_start_up_points_spread_over_the_space():
    """A scrambled Halton sequence: 4 points put one in each quarter of a (log) range, where random points
    clump; each choice of a list comes up; the same seed gives the same points."""
    import math

    from lmtransfer.compare.search import _distributions, halton
    from lmtransfer.config.compare_schema import RangeConfig

    space = {
        "train.lr": RangeConfig(low=1e-4, high=1e-2, log=True),
        "train.min_steps": RangeConfig(low=50, high=400, log=True, integer=True),
        "head.type": ["linear", "mlp"],
    }
    points = halton(_distributions(space), 4, seed=13)
    quarters = sorted(int(4 * (math.log10(p["train.lr"]) + 4) / 2) for p in points)
    assert quarters == [0, 1, 2, 3]
    assert all(isinstance(p["train.min_steps"], int) and 50 <= p["train.min_steps"] <= 400 for p in points)
    assert {p["head.type"] for p in points} == {'"linear"', '"mlp"'}  # Optuna's choices travel as JSON text
    assert halton(_distributions(space), 4, seed=13) == points != halton(_distributions(space), 4, seed=14)


def test_the_first_seeds_row_adopts_its_searchs_chosen_fine_tuning_trial(run_overrides, tmp_path):
    """The chosen trial is the row's run (same config hash): the row copies it and scores test, in a child,
    instead of training it again; the second seed's row trains as usual."""
    from lmtransfer.runs.directory import run_config

    ft = "{name: ft, set: {strategy: finetune, features.layers: last, train.lr: 1.0e-3, train.head_lr: 0.05},"
    ft += " search: {trials: 2, space: {train.lr: [1.0e-3, 3.0e-3]}}}"
    extra = [f"compare.variants=[{ft}]", "train.epochs=2", "compare.inference_examples=2"]
    result = compare(compare_config(run_overrides, tmp_path, *extra), progress=False, isolate=True)
    rows = read_rows(result.directory / "results.jsonl")
    trials = [r for r in rows if r.is_trial]
    first, second = (r for r in rows if not r.is_trial)
    assert all(t.isolated and t.peak_rss_bytes > 0 and t.test is None for t in trials)
    chosen = next(t for t in trials if t.params == first.search["params"])
    assert first.adopted_trial == chosen.trial and second.adopted_trial is None
    assert first.config_hash == chosen.config_hash and first.dev == chosen.dev
    assert first.seconds == chosen.seconds and first.history == chosen.history  # its training
    assert first.test["accuracy"] == pytest.approx(api.evaluate(first.run_dir, progress=False)["accuracy"])
    assert set(first.units) == {"dev", "test"} and first.inference["examples"] == 2
    folder = Path(first.run_dir)
    assert folder.name == "seed-1" and run_config(folder).train.score_test
    assert {"predictions/test.jsonl", "predictions/test.units.npz", "README.md"} <= {
        str(p.relative_to(folder)) for p in folder.rglob("*")
    }
    assert json.loads((folder / "metrics.json").read_text())["test"]["accuracy"] == first.test["accuracy"]
    assert Path(chosen.run_dir, "metrics.json").is_file()  # the trial's own folder stays as it was
    assert second.seed == 2 and second.test is not None
    assert len(result.report.summaries) == 1 and "test" in result.report.summaries[0].intervals


def test_a_pruner_made_in_a_child_decides_as_the_parents_would():
    from lmtransfer.compare.pruning import PruneSpec, pruner
    from lmtransfer.compare.row import Row
    from lmtransfer.config.compare_schema import SearchConfig

    search = SearchConfig(prune=True, prune_startup=2, prune_warmup=1)
    curve = lambda values: [{"step": 10 * i, "dev_accuracy": v} for i, v in enumerate(values, 1)]  # noqa: E731
    finished = [
        Row("ft", "minilm", 1, dev={"accuracy": 0.92}, history=curve([0.6, 0.9, 0.92]), run_dir="left behind"),
        Row("ft", "minilm", 1, dev={"accuracy": 0.84}, history=curve([0.5, 0.8, 0.84])),
    ]
    spec = PruneSpec(search, tuple(finished), "accuracy")
    shipped = PruneSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert shipped.finished[0].run_dir is None and shipped.finished[0].history == finished[0].history
    for scores in ([0.1, 0.4], [0.3, 0.86, 0.7], [0.3, 0.9, 0.95]):
        here, there = pruner(search, finished, "accuracy"), shipped.build()
        assert [here(10 * i, s) for i, s in enumerate(scores, 1)] == [there(10 * i, s) for i, s in enumerate(scores, 1)]
