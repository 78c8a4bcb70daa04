"""The Python API as a user meets it: overrides as a mapping or keyword arguments, data as tables in memory
(lists, pandas, datasets), and ``Run.load``, which loads a run once and predicts, gives probabilities and
evaluates from plain values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import lmtransfer
from lmtransfer import api, load_config
from lmtransfer.core.errors import ConfigError, DataError, LmtError
from lmtransfer.data import memory
from lmtransfer.runs import encoder_run
from lmtransfer.runs.kinds import load_run
from lmtransfer.runs.loaded import Run
from tests.conftest import SENTENCES

LABELS = ["pos", "neg", "pos", "neg", "biz", "biz", "pos", "biz", "neg", "pos", "neg", "biz"]


@pytest.fixture
def base(run_overrides) -> list[str]:
    """The tiny feature run's overrides without its data files (the data comes from memory)."""
    return [item for item in run_overrides if not item.startswith("data.")]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"text": SENTENCES * 4, "label": LABELS * 4})


# overrides -----------------------------------------------------------------------------------------------
def test_overrides_as_strings_mapping_and_keywords_agree():
    strings = load_config(None, ["head.type=mlp", "train.epochs=2", "strategy=finetune"])
    mapping = load_config(None, {"head.type": "mlp", "train.epochs": 2, "strategy": "finetune"})
    keywords = load_config(None, head__type="mlp", train__epochs=2, strategy="finetune")
    assert strings.model_dump() == mapping.model_dump() == keywords.model_dump()
    assert keywords.head.type == "mlp" and keywords.train.epochs == 2


def test_keyword_overrides_come_after_the_others():
    config = load_config(None, ["train.epochs=5"], train__epochs=3, output_dir="runs/x")
    assert config.train.epochs == 3 and config.output_dir == "runs/x"


@pytest.mark.parametrize(
    ("overrides", "fields", "named"),
    [
        ({"head.type": "nosuch"}, {}, "overrides: field 'head.type=nosuch'"),
        ((), {"train__epochs": 0}, "overrides: field 'train.epochs=0'"),
        ({"nosuch.x": 1}, {}, "overrides: field 'nosuch.x=1'"),
        (["head.type=nosuch"], {}, "command line: field 'head.type=nosuch'"),
    ],
)
def test_an_override_error_names_the_override(overrides, fields, named):
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides, **fields)
    assert str(caught.value).startswith(named)


def test_one_string_is_not_a_list_of_overrides():
    with pytest.raises(ConfigError, match="not one string"):
        load_config(None, "head.type=mlp")


# data in memory --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pandas", "columns", "records", "tuple", "datasets"])
def test_train_takes_a_table_in_memory(kind, base, frame, one_thread):
    tables = {
        "pandas": frame,
        "columns": {"text": list(frame.text), "label": np.array(frame.label)},
        "records": frame.to_dict("records"),
        "tuple": (list(frame.text), list(frame.label)),
    }
    if kind == "datasets":
        datasets = pytest.importorskip("datasets")
        tables[kind] = datasets.Dataset.from_pandas(frame)
    result = api.train(load_config(None, base), progress=False, data=tables[kind])
    saved = yaml.safe_load((result.directory / "config.yaml").read_text(encoding="utf-8"))["data"]
    # the saved config says the data was a table in memory, and which (the same table, the same fingerprint)
    assert saved["train"] == memory.fingerprint(memory.columns(frame)) and saved["dev"] is None
    assert result.metrics["dev"]["accuracy"] >= 0


def test_dev_and_test_are_held_out_of_a_table_as_of_a_file(base, frame, sentiment_files, one_thread):
    from_memory = api.train(load_config(None, base), progress=False, data=frame)
    files = [f"data.train={sentiment_files['train']}", f"output_dir={from_memory.directory}-file"]
    from_file = api.train(load_config(None, [*base, *files]), progress=False)
    assert from_memory.metrics["dev"] == from_file.metrics["dev"]  # the same rows held out, the same run
    assert from_memory.metrics["test"] == from_file.metrics["test"]


def test_given_dev_and_test_tables_are_used(base, frame, one_thread):
    dev, test = frame.iloc[:6], frame.iloc[6:12]
    result = api.train(load_config(None, base), progress=False, data=frame, dev=dev, test=test)
    written = {split: (result.directory / "predictions" / f"{split}.jsonl") for split in ("dev", "test")}
    assert {split: len(path.read_text(encoding="utf-8").splitlines()) for split, path in written.items()} == {
        "dev": 6,
        "test": 6,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(label=f.label.where(f.index != 5, None)), r"row 5: field 'label': missing value"),
        (lambda f: f.assign(text=f.text.where(f.index != 7, "  ")), r"row 7: field 'text': empty text"),
        (lambda f: f.rename(columns={"label": "y"}), r"row 0: field 'label': missing \(columns: text, y\)"),
        (lambda f: f.iloc[:0], "no rows"),
    ],
)
def test_a_bad_table_is_refused_naming_column_and_row(change, message, base, frame, tmp_path):
    with pytest.raises(DataError, match=message) as caught:
        api.train(load_config(None, base), progress=False, data=change(frame))
    assert str(caught.value).startswith("train data in memory (")
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_a_table_of_another_kind_is_refused(base):
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        api.train(load_config(None, base), progress=False, data="train.csv")


def test_a_file_task_refuses_a_table(base, frame):
    with pytest.raises(ConfigError, match="task 'tagging' reads files"):
        api.train(load_config(None, [*base, "task=tagging"]), progress=False, data=frame)


# Run.load -------------------------------------------------------------------------------------------------
@pytest.fixture
def trained(run_overrides, one_thread):
    return api.train(load_config(None, run_overrides), progress=False)


def test_lmtransfer_run_is_the_loaded_run_and_load_run_is_unchanged(trained):
    assert lmtransfer.Run is Run
    assert type(Run.load(trained.directory).loaded) is type(load_run(trained.directory)) is encoder_run.Run


def test_run_predicts_as_api_predict(trained):
    run = Run.load(trained.directory)
    texts = ["the movie was great", "shares fell"]
    assert run.predict(texts) == api.predict(trained.directory, texts)
    assert run.task == "classification" and run.labels == ["biz", "neg", "pos"]


def test_predict_proba_is_in_label_order(trained):
    run = Run.load(trained.directory)
    texts = ["the movie was great", "shares fell", "news of the day"]
    probabilities = run.predict_proba(texts)
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    for row, found in zip(probabilities, run.predict(texts)):
        assert run.labels[int(row.argmax())] == found["label"]
        assert row.tolist() == [found["probabilities"][label] for label in run.labels]


def test_predict_proba_refuses_a_regression_run(run_overrides, tmp_path, one_thread):
    rows = "\n".join(json.dumps({"text": t, "label": i / 12}) for i, t in enumerate(SENTENCES * 2))
    (tmp_path / "scores.jsonl").write_text(rows, encoding="utf-8")
    base = [item for item in run_overrides if not item.startswith("data.")]
    result = api.train(load_config(None, [*base, "task=regression", f"data.train={tmp_path / 'scores.jsonl'}"]), False)
    run = Run.load(result.directory)
    assert isinstance(run.predict(["great"])[0]["score"], float)
    with pytest.raises(LmtError, match="a regression run gives no probabilities; use predict"):
        run.predict_proba(["great"])


def test_the_encoder_loads_once(trained, monkeypatch):
    calls = []
    original = encoder_run.Run.load_encoder
    monkeypatch.setattr(encoder_run.Run, "load_encoder", lambda self: calls.append(1) or original(self))
    run = Run.load(trained.directory)
    assert calls == []  # not before it is needed
    for _ in range(3):
        run.predict(["the movie was great"])
    run.predict_proba(["shares fell"])
    assert calls == [1]
    for _ in range(2):
        api.predict(trained.directory, ["the movie was great"])
    assert calls == [1, 1, 1]  # api.predict loads it at every call


def test_evaluate_takes_the_config_split_a_file_or_a_table(trained, sentiment_files):
    run = Run.load(trained.directory)
    assert run.evaluate() == api.evaluate(trained.directory, progress=False)
    assert run.evaluate()["accuracy"] == trained.metrics["test"]["accuracy"]
    table = pd.read_csv(sentiment_files["dev"])
    assert run.evaluate(table) == run.evaluate(sentiment_files["dev"])
    with pytest.raises(DataError, match=r"evaluation data in memory \(\w+\), row 2: field 'label': label 'odd'"):
        run.evaluate(table.assign(label=table.label.where(table.index != 2, "odd")))


def test_a_run_trained_in_memory_asks_for_its_data_again(base, frame, one_thread):
    run = Run.load(api.train(load_config(None, base), progress=False, data=frame).directory)
    with pytest.raises(DataError, match="the run's data was a table in memory; give it again"):
        run.evaluate()
    assert run.evaluate(frame)["accuracy"] >= 0


def test_a_comparison_folder_loads_its_winner(trained, tmp_path):
    folder = tmp_path / "comparison"
    (folder / "runs").mkdir(parents=True)
    trained.directory.rename(folder / "runs" / "chosen")
    (folder / "best.json").write_text(json.dumps({"run_dir": "runs/chosen", "why": "best on dev"}), encoding="utf-8")
    run = Run.load(folder)
    assert run.directory == folder / "runs" / "chosen" and "best on dev" in run.chosen
    assert run.predict(["shares fell"]) == api.predict(folder, ["shares fell"])
