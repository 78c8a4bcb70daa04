"""The ways to train are a registry (``runs.kinds.WAYS``): every registered way keeps the protocol, a toy way
registered here trains through ``api.train`` and shows in a comparison's rows and report under its kind;
compare's rows load as the current release wrote them and round-trip through their versioned JSON; one
metrics table names every metric and its direction."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from lmtransfer import api, load_config
from lmtransfer.compare import worker
from lmtransfer.compare.kinds import kind_colors, kind_of
from lmtransfer.compare.report import build_report
from lmtransfer.compare.row import ROW_VERSION, Row
from lmtransfer.config.variants import Job
from lmtransfer.core.choices import BAG_OF_WORDS, METRICS, STRATEGIES, STRATEGY_DEFAULTS, TASK_METRICS, oriented
from lmtransfer.core.devices import peak_memory
from lmtransfer.runs.directory import save_run
from lmtransfer.runs.kinds import WAYS, register_way, trainer_for, way_of
from lmtransfer.runs.results import UNITS_SUFFIX, Costs, TrainResult
from lmtransfer.runs.way import TrainOptions
from lmtransfer.tasks.table import TaskData

pytestmark = pytest.mark.usefixtures("one_thread")


class MajorityWay:
    """A toy way: every text gets the label most frequent in train."""

    name, kind, tag, color = "majority", "majority label", "majority-label", "#000000"
    baseline, trains_encoder = True, False

    def train(self, data: TaskData, *, options: TrainOptions) -> TrainResult:
        config, task, labels = data.config, data.task, data.labels
        began = time.perf_counter()
        prepared = {name: task.prepare(split, None, labels) for name, split in data.splits.items()}
        majority = int(np.bincount(prepared["train"].targets, minlength=len(labels)).argmax())
        scores, units, files = {}, {}, {}
        for name in ("dev", "test"):
            outputs = np.eye(len(labels))[np.full(prepared[name].size, majority)]  # (N, K)
            scored = task.scored(prepared[name], outputs, None, labels)
            scores[name], units[name] = scored.metrics, scored.units
            files[f"predictions/{name}{UNITS_SUFFIX}"] = scored.units.to_bytes()
        seconds = time.perf_counter() - began
        costs = Costs(self.name, 0, 0.0, seconds, seconds, prepared["train"].size, **peak_memory())
        sizes = {n: p.size for n, p in prepared.items()}
        result = TrainResult(Path(config.output_dir), config, None, scores["dev"], scores["test"], sizes, costs, "")
        result.units = units
        save_run(config.output_dir, config, None, labels, {"layers": []}, result.metrics, files=files, way=self)
        return result


@pytest.fixture
def majority():
    """The toy way, registered for one test and unregistered after it."""
    way = register_way(MajorityWay())  # trains nothing: no training defaults
    yield way
    del WAYS[way.name], STRATEGY_DEFAULTS[way.name]


@pytest.mark.parametrize("name", list(WAYS))
def test_every_registered_way_keeps_the_protocol(name):
    way = WAYS[name]
    assert way.name == name and way.kind and way.tag and way.color.startswith("#")
    assert isinstance(way.baseline, bool) and isinstance(way.trains_encoder, bool) and callable(way.train)
    assert way.kind in kind_colors() and (way.kind in ("baseline", "zero-shot")) == way.baseline


def test_each_strategy_and_the_bag_of_words_are_registered_and_chosen_by_the_config():
    assert set(STRATEGIES) <= set(WAYS)
    for strategy in STRATEGIES:
        config = load_config(None, [f"strategy={strategy}"])
        assert way_of(config) is WAYS[strategy] and trainer_for(config) == WAYS[strategy].train
    for model in BAG_OF_WORDS:
        assert way_of(load_config(None, [f"encoder.model={model}"])) is WAYS["bag-of-words"]
    # the kinds the report has always shown
    assert [WAYS[n].kind for n in ("feature", "finetune", "lora", "bag-of-words")] == [
        "feature-based", "fine-tuning", "fine-tuning", "baseline",
    ]  # fmt: skip
    assert [WAYS[n].tag for n in ("feature", "finetune", "lora", "bag-of-words")] == [
        "feature-based", "fine-tuned", "lora", "bag-of-words",
    ]  # fmt: skip
    assert kind_of("glove-6b-50d", "feature") == "static vectors" and kind_of("scratch", "feature") == "baseline"


def test_a_toy_way_trains_through_the_api_and_shows_in_a_comparison(majority, run_overrides, tmp_path):
    config = load_config(None, [*run_overrides, f"strategy={majority.name}"])  # a name the config takes now
    result = api.train(config, progress=False)
    assert result.dev["accuracy"] == pytest.approx(1 / 3) and result.costs.strategy == "majority"  # 3 labels, balanced
    card = (result.directory / "README.md").read_text()
    assert "- Way: majority-label (`strategy: majority`)" in card and "- majority-label" in card
    # a tiny comparison: the toy and the bag-of-words baseline, each a row as compare's worker makes it
    counts = load_config(None, [*run_overrides, "encoder.model=counts", f"output_dir={tmp_path / 'counts'}"])
    rows = []
    for variant, run in (("majority", config), ("counts", counts)):
        outcome = worker.train_row(run, TrainOptions(progress=False), 0)
        rows.append(Row.of(Job(variant, run.encoder.model, 13, run), outcome, 1.0, tmp_path))
    assert rows[0].strategy == "majority" and rows[0].ok
    report = build_report(rows, "toy", tmp_path)
    assert [s.kind for s in report.summaries] == ["majority label", "baseline"]
    assert "| majority | " in report.markdown and "| majority label |" in report.markdown
    assert report.verdict.startswith("Only baselines finished; the best is")
    assert "majority label" in report.html  # the plots' legend too


# A row as lmtransfer wrote it before rows had a version: a line of benchmarks/results/compare-demo-steps.jsonl
# (a searched fine-tuning variant's first seed, whose run had not converged).
RELEASED = (
    '{"variant": "finetune", "encoder": "minilm", "seed": 13, "train_size": 50, "config_hash": "eb0aaff37ee8751e"'
    ', "status": "ok", "run_dir": "runs/compare-demo/runs/finetune/minilm/n-50/seed-13", "date": "2026-12-07T16:2'
    '0:57+00:00", "child_seconds": 11.405595600999732, "strategy": "finetune", "task": "classification", "metric"'
    ': "accuracy", "dev": {"accuracy": 0.9192825112107623, "examples": 223, "f1": 0.915224304635754, "macro_f1": '
    '0.915224304635754}, "seconds": {"evaluation": 1.4190184409999347, "extraction": null, "extraction_made": nul'
    'l, "training": 14.275721659008923, "wall": 27.00597390799885}, "extraction_shared": false, "caches": {}, "pe'
    'ak_rss_bytes": 1307209728, "cache_bytes": 0, "trainable_parameters": 22567303, "sizes": {"dev": 223, "train"'
    ': 50}, "best_epoch": 10, "history": [{"dev_accuracy": 0.25112107623318386, "epoch": 1, "step": 0}, {"dev_acc'
    'uracy": 0.8789237668161435, "epoch": 3, "step": 10, "train_loss": 1.1945258017742273}, {"dev_accuracy": 0.91'
    '03139013452914, "epoch": 5, "step": 20, "train_loss": 0.10020401960207244}, {"dev_accuracy": 0.9058295964125'
    '56, "epoch": 8, "step": 30, "train_loss": 0.00964821401143898}, {"dev_accuracy": 0.9192825112107623, "epoch"'
    ': 10, "step": 40, "train_loss": 0.0004281881842485992}], "convergence": {"best_step": 40, "budget_steps": 40'
    ', "converged": false, "eval_steps": 10, "evaluations": 5, "patience": 5, "reason": "5 dev evaluations, too f'
    'ew to tell", "rule": "converged: the run beat its dev score before training, and its best dev evaluation is '
    "followed by `patience` evaluations without improvement, or the last third of at least 6 evaluations gains at"
    ' most 0.005 over the best before it", "steps": 40, "stopped_early": false}, "layer_weights": {"gamma": 1.075'
    '0092267990112, "layers": [6], "softmax": [1.0]}, "adopt_seconds": 5.461475793001227, "inference": {"examples'
    '": 100, "examples_per_second": 84.74051016467699, "seconds": 1.180073141000321}, "intervals": {"dev": {"accu'
    'racy": [0.8834080717488789, 0.9506726457399103], "f1": [0.8754768901628929, 0.9486776887206428], "macro_f1":'
    ' [0.8754768901628929, 0.9486776887206428]}, "test": {"accuracy": [0.8878923766816144, 0.9596412556053812], "'
    'f1": [0.8830792908347115, 0.9560357587850956], "macro_f1": [0.8830792908347115, 0.9560357587850956]}}, "test'
    '": {"accuracy": 0.9237668161434978, "examples": 223, "f1": 0.9220131863821184, "macro_f1": 0.922013186382118'
    '4}, "units": {"dev": "runs/finetune/minilm/n-50/seed-13/predictions/dev.units.npz", "test": "runs/finetune/m'
    'inilm/n-50/seed-13/predictions/test.units.npz"}, "extension": 0, "adopted_trial": 0, "search": {"params": {"'
    'train.lr": 0.00012799161471043632, "train.min_steps": 40}, "trials": 2, "seconds": 81.72036463900076, "prune'
    'd": 0, "sampler": "2 quasi-random (Halton) start-up points"}, "hardware": {"cpu": "AMD EPYC", "isa": ["avx2"'
    ', "avx512f", "avx512_bf16", "avx512_vnni"], "cores": 2}}'
)


def test_a_row_written_by_the_current_release_loads():
    row = Row.from_json(json.loads(RELEASED))
    assert (row.variant, row.encoder, row.seed, row.train_size, row.extension) == ("finetune", "minilm", 13, 50, 0)
    assert row.ok and row.metric == "accuracy" and row.dev_value("accuracy") == pytest.approx(0.91928, abs=1e-5)
    assert row.seconds["training"] == pytest.approx(14.2757, abs=1e-4) and row.inference["examples"] == 100
    assert row.converged is False and row.convergence["budget_steps"] == 40 and row.search["trials"] == 2
    assert not row.is_trial and not row.pruned and set(row.extra) == {"hardware"}  # (the benchmark added it)
    assert Row.from_json(row.to_json()) == row
    assert kind_of(row.encoder, row.strategy) == "fine-tuning"


def test_a_row_round_trips_through_its_versioned_json():
    row = Row.from_json(json.loads(RELEASED) | {"added_later": [1, 2]})
    written = row.to_json()
    assert written["version"] == ROW_VERSION and written["added_later"] == [1, 2]
    again = Row.from_json(json.loads(json.dumps(written)))
    assert again == row and again.to_json() == written


def test_one_metrics_table_names_every_metric_and_its_direction():
    assert {m for metrics in TASK_METRICS.values() for m in metrics} <= set(METRICS)
    assert all(METRICS[m].higher_is_better for metrics in TASK_METRICS.values() for m in metrics)  # what trains
    assert oriented("mse", 0.25) == -0.25 and oriented("neg_mse", -0.25) == -0.25
    assert METRICS["neg_mse"].card_as == "mse" and METRICS["mse"].name == "MSE"
    assert METRICS["exact_match"].compare_name == "EM" and METRICS["macro_f1"].hub_config == "macro"
