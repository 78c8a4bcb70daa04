"""Model cards (every run folder's README.md, each shipped config's run among them; a comparison's) read
back by huggingface_hub's own parser, and what ``lmtransfer push`` would upload (the Hub is not reachable)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from huggingface_hub import ModelCard, metadata_load

from lmtransfer import compare, load_config, train
from lmtransfer.cli.main import cli
from lmtransfer.core.choices import METRICS, TASK_METRICS
from lmtransfer.core.errors import LmtError
from lmtransfer.runs.card import run_card
from lmtransfer.runs.hub import push, upload_plan
from lmtransfer.runs.kinds import way_of
from tests.task_data import task_overrides

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
LEGACY = Path(__file__).resolve().parent / "data" / "main-088346a" / "saved"

PIPELINE_TAGS = {
    "classification": "text-classification",
    "multilabel": "text-classification",
    "regression": "text-classification",
    "tagging": "token-classification",
    "qa": "question-answering",
}


def check_card(run_dir: Path, metrics: dict, task: str) -> ModelCard:
    """The card parses; its metadata says what the run is; its model-index holds the run's dev and test metrics."""
    card = ModelCard.load(run_dir / "README.md")
    meta = metadata_load(run_dir / "README.md")
    assert meta["library_name"] == "lmtransfer" and meta["pipeline_tag"] == PIPELINE_TAGS[task]
    assert "lmtransfer" in meta["tags"] and task in meta["tags"]
    found = {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert "dev" in metrics  # (test too, unless the config says train.score_test: false)
    for split, hub_split in (("dev", "validation"), ("test", "test")):
        if split not in metrics:
            assert not any(s == hub_split for s, _ in found)  # no test results claimed
            continue
        for metric in TASK_METRICS[task]:
            value = metrics[split][METRICS[metric].card_as or metric]
            assert any(s == hub_split and v == pytest.approx(value) for (s, _), v in found.items()), (split, metric)
    assert "lmtransfer predict" in card.text and "```yaml" in card.text
    return card


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_the_run_of_every_shipped_config_has_a_card_that_parses(path, tmp_path, tiny_bert_dir):
    """Each shipped config's settings (task, strategy, head, layers, ...), on the tiny BERT and tiny data."""
    task = yaml.safe_load(path.read_text()).get("task", "classification")
    small = ["encoder.max_length=32", "train.epochs=1", "train.batch_size=8", "compare=null", "data={}"]
    small += [
        "qa.stride=8",
        "qa.max_query_length=8",
        f"cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'run'}",
    ]
    overrides = [*small, *task_overrides(task, tmp_path), f"encoder.model={tiny_bert_dir}"]
    result = train(load_config(path, overrides), progress=False)
    card = check_card(result.directory, result.metrics, task)
    assert way_of(result.config).tag in card.data.tags and f"- Way: {way_of(result.config).tag} (" in card.text
    fine_tuned = result.config.strategy != "feature"
    assert ("AutoModel.from_pretrained" in card.text) == fine_tuned == (result.directory / "encoder").is_dir()


def test_a_card_names_its_base_model_and_data_and_survives_a_bare_config():
    config = load_config(None, ["data.hf=glue", "data.hf_config=sst2"])
    metrics = {"dev": {"accuracy": 0.9, "macro_f1": 0.8, "f1": 0.85}, "sizes": {"train": 10}}
    card = run_card(config, way_of(config), ["neg", "pos"], {"layers": [6]}, metrics, Path("sst2-run"))
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["datasets"] == ["glue"]
    assert meta["model-index"][0]["results"][0]["dataset"] == {
        "name": "glue (sst2)",
        "type": "glue",
        "split": "validation",
    }
    from lmtransfer.config.schema import RunConfig

    bare = run_card(RunConfig(), way_of(RunConfig()), [], {}, {}, Path("bare"))
    assert "# bare" in bare  # no metrics, unresolved: still a card


def test_a_comparison_folder_has_a_card_with_its_verdict(run_overrides, tmp_path):
    out = tmp_path / "cmp"
    overrides = [*run_overrides, "train.epochs=1", f"compare.output_dir={out}", "compare.inference_examples=2"]
    overrides.append("compare.extensions=0")
    result = compare(
        load_config(None, [*overrides, "compare.variants=[{name: a}, {name: b, set: {encoder.model: tfidf}}]"])
    )
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "lmtransfer" and "comparison" in card.data.tags
    assert result.report.verdict in card.text and "| a |" in card.text and "| b |" in card.text
    for row in result.rows:  # and every row's run folder has its own
        check_card(Path(row.run_dir), yaml.safe_load(Path(row.run_dir, "metrics.json").read_text()), "classification")


def test_push_uploads_the_folder_without_checkpoints_and_only_safetensors(run_overrides, tmp_path, monkeypatch):
    result = train(load_config(None, [*run_overrides, "strategy=lora", "train.epochs=1"]), progress=False)
    folder, files = upload_plan(result.directory)
    assert (result.directory / "checkpoints").is_dir() and not any(f.startswith("checkpoints/") for f in files)
    assert {"README.md", "config.yaml", "model.safetensors", "encoder/model.safetensors"} <= set(files)
    assert any(f.startswith("adapter/") and f.endswith(".safetensors") for f in files)  # the LoRA adapters too
    weights = [f for f in files if f.endswith((".safetensors", ".bin", ".pt", ".pth", ".pkl"))]
    assert weights and all(f.endswith(".safetensors") for f in weights)
    assert any(f.startswith("checkpoints/") for f in upload_plan(result.directory, checkpoints=True)[1])
    calls = []

    class FakeApi:  # what push would ask of the Hub
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs["repo_id"], kwargs))
            return type("Commit", (), {"commit_url": "https://huggingface.co/me/run/commit/1"})()

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert push(result.directory, "me/run", private=True).endswith("/commit/1")
    (_, repo, created), (_, _, uploaded) = calls
    assert repo == "me/run" and created == {"private": True, "exist_ok": True}
    assert Path(uploaded["folder_path"]) == folder and uploaded["ignore_patterns"] == ["checkpoints/*"]
    (result.directory / "extra.bin").write_bytes(b"\x80\x04pickled")
    with pytest.raises(LmtError, match=r"extra\.bin: weights go to the Hub as safetensors only"):
        upload_plan(result.directory)


def test_push_writes_the_card_of_a_run_saved_before_cards(tmp_path, monkeypatch):
    old = tmp_path / "feature"
    shutil.copytree(LEGACY / "feature", old)
    monkeypatch.chdir(LEGACY.parent)  # the saved run's paths are relative to its folder
    listed = CliRunner().invoke(cli, ["push", str(old), "me/old", "--dry-run"])
    assert listed.exit_code == 0, listed.output
    assert "to write  README.md" in listed.output and "checkpoints" not in listed.output
    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", lambda self, **k: type("C", (), {"commit_url": "u"})())
    assert push(old, "me/old") == "u"
    metrics = yaml.safe_load((old / "metrics.json").read_text())
    check_card(old, metrics, "classification")
