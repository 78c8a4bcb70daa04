"""Experiment trackers through accelerate: TensorBoard event files read back, MLflow on a local file store,
compare's rows as runs of one experiment with the verdict, and a missing tracker package named."""

from __future__ import annotations

import json

import pytest
import yaml

from lmtransfer import compare, load_config, train
from lmtransfer.config.variants import slug
from lmtransfer.core.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files under ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return found


def test_tensorboard_gets_config_losses_dev_metrics_and_finals(run_overrides, tmp_path):
    pytest.importorskip("tensorboard")
    config = load_config(None, [*run_overrides, "train.report_to=[tensorboard]", "train.logging_steps=2"])
    result = train(config, progress=False)
    logs = result.directory / "logs"
    found = scalars(logs)
    steps = result.costs.loop.optimizer_steps  # 48 examples / batch 8 = 6 a epoch, 3 epochs
    assert [s for s, _ in found["train/loss"]] == list(range(2, steps + 1, 2))
    assert len(found["train/learning_rate"]) == steps // 2 and all(v > 0 for _, v in found["train/loss"])
    dev = [v for _, v in found["dev/accuracy"]]
    assert dev == pytest.approx([h["dev_accuracy"] for h in result.history])
    assert found["final/test/accuracy"][0][1] == pytest.approx(result.test["accuracy"])
    assert found["costs/train_seconds"][0][1] == pytest.approx(result.costs.train_seconds)
    hparams = yaml.safe_load(next(logs.rglob("hparams.yml")).read_text())
    assert hparams["train.lr"] == config.train.lr and hparams["encoder.max_length"] == 32
    assert hparams["train.report_to"] == '["tensorboard"]'
    # a fresh run into the same folder starts its logs anew; the run folder keeps them
    train(config, progress=False)
    assert len(scalars(result.directory / "logs")["train/loss"]) == steps // 2


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 asks for this to use a folder as its store
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield mlflow.tracking.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


def runs_of(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return client.search_runs([found.experiment_id])


def test_mlflow_gets_params_metrics_per_step_and_epoch(run_overrides, mlflow_store):
    config = load_config(None, [*run_overrides, "train.report_to=[mlflow]", "train.experiment=tiny"])
    result = train(config, progress=False)
    (run,) = runs_of(mlflow_store, "tiny")
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert float(run.data.params["train.lr"]) == config.train.lr and run.data.params["task"] == "classification"
    history = mlflow_store.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(10, result.costs.loop.optimizer_steps + 1, 10))
    dev = mlflow_store.get_metric_history(run.info.run_id, "dev/accuracy")
    assert [m.value for m in dev] == pytest.approx([h["dev_accuracy"] for h in result.history])
    assert run.data.metrics["final/test/accuracy"] == pytest.approx(result.test["accuracy"])
    assert run.data.metrics["costs/trainable_parameters"] == result.costs.trainable_parameters


def test_bag_of_words_runs_log_their_config_and_results(run_overrides, mlflow_store):
    train(load_config(None, [*run_overrides, "encoder.model=tfidf", "train.report_to=[mlflow]"]), progress=False)
    (run,) = runs_of(mlflow_store, "run")
    assert run.data.params["encoder.model"] == "tfidf" and "final/dev/accuracy" in run.data.metrics


def test_compare_files_its_rows_under_one_experiment_with_the_verdict(run_overrides, tmp_path, mlflow_store):
    out = tmp_path / "cmp"
    overrides = [*run_overrides, "train.epochs=1", "train.report_to=[mlflow]", f"compare.output_dir={out}"]
    overrides += [
        "compare.extensions=0",
        "compare.seeds=[1, 2]",
        "compare.inference_examples=2",
        "compare.variants=[{name: a}, {name: b}]",
    ]
    result = compare(load_config(None, overrides), progress=False, isolate=False)
    runs = {r.info.run_name: r for r in runs_of(mlflow_store, "cmp")}
    encoder = slug(result.rows[0].encoder)  # the folder name of the tiny encoder
    assert set(runs) == {f"{v}/{encoder}/seed-{s}" for v in "ab" for s in (1, 2)} | {"verdict"}
    row = runs[f"b/{encoder}/seed-2"]
    assert {k: row.data.tags[k] for k in ("variant", "seed", "train_size")} == {
        "variant": "b",
        "seed": "2",
        "train_size": "all",
    }
    verdict = runs["verdict"]
    artifacts = {a.path for a in mlflow_store.list_artifacts(verdict.info.run_id)}
    assert {"report.md", "report.html"} <= artifacts
    # the tracking settings are not part of what a row computes: the same rows without them are found done
    plain = [o for o in overrides if "report_to" not in o]
    again = compare(load_config(None, plain), progress=False, isolate=False)
    assert again.skipped == 4 and again.rows == []


def test_a_missing_tracker_package_names_the_pip_install(run_overrides, tmp_path):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(ConfigError, match=r"field 'train.report_to=\[wandb\]': .*pip install wandb"):
        train(load_config(None, [*run_overrides, "train.report_to=[wandb]"]), progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match=r"train\.report_to"):
        load_config(None, ["train.report_to=[nosuchtracker]"])


def test_tracking_fields_stay_in_the_saved_config(run_overrides, tmp_path):
    result = train(load_config(None, [*run_overrides, "train.tags={team: nlp}"]), progress=False)
    saved = yaml.safe_load((result.directory / "config.yaml").read_text())
    assert saved["train"]["tags"] == {"team": "nlp"} and saved["train"]["report_to"] == []
    assert json.loads((result.directory / "metrics.json").read_text())["task"] == "classification"
