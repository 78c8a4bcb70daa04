"""``lmtransfer compare DATA``: columns and task found from a table (or refused, naming the columns), the
training sizes and the budget's cuts, the commented config `init` writes, and a tiny comparison run whole."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lmtransfer import load_config
from lmtransfer.cli.main import cli
from lmtransfer.compare.estimate import Speeds, estimate, fit
from lmtransfer.compare.standard import Plan, config_yaml, held_out_counts, sizes_for
from lmtransfer.config.variants import jobs
from lmtransfer.core.errors import DataError
from lmtransfer.data.inspect import inspect_table
from tests.conftest import SENTENCES


def write(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sentiment(i: int) -> str:
    return ["pos", "neg", "other"][i % 3]


@pytest.fixture
def tables(tmp_path) -> dict[str, Path]:
    n = range(60)
    return {
        "single": write(
            tmp_path / "single.csv", ["id", "review", "label"], [[i, SENTENCES[i % 12], sentiment(i)] for i in n]
        ),
        "pairs": write(
            tmp_path / "pairs.csv",
            ["premise", "hypothesis", "label"],
            [[SENTENCES[i % 12], SENTENCES[(i * 5) % 12], i % 2] for i in n],
        ),
        "scores": write(tmp_path / "scores.csv", ["text", "label"], [[SENTENCES[i % 12], i / 10] for i in n]),
        "multi": write(
            tmp_path / "multi.csv", ["text", "label"], [[SENTENCES[i % 12], "a,b" if i % 2 else "c"] for i in n]
        ),
        "jsonl": _jsonl(tmp_path / "lists.jsonl", [{"text": SENTENCES[i % 12], "label": ["x"] * (i % 2)} for i in n]),
        "no-label": write(tmp_path / "nolabel.csv", ["text", "sentiment"], [[s, "pos"] for s in SENTENCES]),
        "three-texts": write(tmp_path / "three.csv", ["a", "b", "c", "label"], [[s, s, s, "x"] for s in SENTENCES]),
    }


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text", "pair", "task", "labels"),
    [
        ("single", "review", None, "classification", ("neg", "other", "pos")),  # the id column is not text
        ("pairs", "premise", "hypothesis", "classification", ("0", "1")),
        ("scores", "text", None, "regression", ()),
        ("multi", "text", None, "multilabel", ("a", "b", "c")),
        ("jsonl", "text", None, "multilabel", ("x",)),
    ],
)
def test_columns_and_task_are_found(tables, name, text, pair, task, labels):
    facts = inspect_table(tables[name])
    assert (facts.text_column, facts.text_pair_column, facts.label_column) == (text, pair, "label")
    assert (facts.task, facts.labels, facts.rows) == (task, labels, 60)


def test_what_cannot_be_told_is_refused_naming_the_columns(tables):
    with pytest.raises(DataError, match=r"give --label-column \(columns: text, sentiment\)"):
        inspect_table(tables["no-label"])
    with pytest.raises(
        DataError, match=r"3 columns that could be text: give --text-column .*\(columns: a, b, c, label\)"
    ):
        inspect_table(tables["three-texts"])
    facts = inspect_table(tables["three-texts"], text_column="b")
    assert (facts.text_column, facts.text_pair_column) == ("b", None)
    with pytest.raises(DataError, match=r"no column 'nope' \(columns: text, sentiment\)"):
        inspect_table(tables["no-label"], label_column="nope")


def test_a_dataset_folder_is_read_by_its_train_and_validation_splits(tmp_path):
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def part(n: int) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"sentence": SENTENCES[:n], "label": [i % 2 for i in range(n)]}, features=features
        )

    datasets.DatasetDict({"train": part(12), "validation": part(4)}).save_to_disk(str(tmp_path / "ds"))
    facts = inspect_table(tmp_path / "ds")
    assert (facts.format, facts.text_column, facts.task, facts.labels) == (
        "hf",
        "sentence",
        "classification",
        ("neg", "pos"),
    )
    assert facts.dev_rows == 4 and facts.data_fields["hf"] == str(tmp_path / "ds")
    datasets.DatasetDict({"train": part(12)}).save_to_disk(str(tmp_path / "only"))
    with pytest.raises(DataError, match=r"needs a train and a validation split \(it has train\)"):
        inspect_table(tmp_path / "only")


def test_sizes_grow_by_half_a_decade_up_to_all():
    assert sizes_for(60) == ("all",)
    assert sizes_for(1600) == (50, 160, 500, "all")
    assert sizes_for(67349) == (50, 160, 500, 1600, 5000, 16000, "all")
    assert sizes_for(1600, labels=20) == (100, 320, 1000, "all")  # 5 examples a label at the smallest
    assert held_out_counts(2000, None, None) == (1600, 200, 200)
    assert held_out_counts(2000, 300, None) == (1800, 300, 200)


def test_a_budget_cuts_trials_then_middle_sizes_then_the_largest(tables):
    facts = inspect_table(tables["single"])
    plan = Plan(facts, "minilm", 64, (50, 160, 500, "all"), 3, "out", (1600, 200, 200))
    speeds = Speeds(forward=0.002, step=0.15, max_length=64)
    full = estimate(plan, speeds).seconds
    assert estimate(plan.with_(trials=1), speeds).seconds < full
    fitted, cuts = fit(plan, speeds, minutes=(full + estimate(plan, speeds).reserve) / 60 + 1)
    assert fitted == plan and cuts == []
    fitted, cuts = fit(plan, speeds, minutes=5)
    assert fitted.trials == 1 and cuts[:2] == ["trials per search: 2", "trials per search: 1"]
    found = estimate(fitted, speeds)
    assert found.seconds + found.reserve <= 5 * 60 and found.reserve > 0
    assert fitted.sizes[0] == 50 and len(fitted.sizes) < 4
    smallest, cuts = fit(plan, speeds, minutes=1)
    assert cuts[-1] == "the smallest plan is still over the budget" and len(smallest.sizes) == 2


def test_prompting_is_priced_by_its_lm_and_never_cut_by_a_budget(tables):
    facts = inspect_table(tables["single"])
    plan = Plan(facts, "minilm", 64, (50, 160, 500, "all"), 2, "out", (1600, 200, 200), prompt="smollm2")
    speeds, lm = Speeds(forward=0.002, step=0.15, max_length=64), Speeds(forward=0.05, step=0.0, max_length=64)
    found = estimate(plan, speeds, lm)
    assert found.parts["prompting"] > 0 and found.parts["zero-shot"] > 0
    assert estimate(plan, speeds, Speeds(0.1, 0.0, 64)).parts["prompting"] > found.parts["prompting"]
    without = estimate(plan.with_(prompt=None), speeds)
    assert "prompting" not in without.parts and found.seconds > without.seconds
    fitted, cuts = fit(plan, speeds, 5, lm)
    assert fitted.prompt == "smollm2" and cuts  # cut trials and sizes, never the prompt rows


def test_init_writes_a_commented_config_that_runs_the_same_rows(tables, tmp_path):
    facts = inspect_table(tables["pairs"])
    plan = Plan(facts, "minilm", 32, (50, "all"), 2, str(tmp_path / "out"), (48, 6, 6))
    text = config_yaml(plan, "lmtransfer compare pairs.csv", note="plan: a note")
    assert text.startswith("# Written by: lmtransfer compare pairs.csv\n") and "# plan: a note" in text
    data = yaml.safe_load(text)
    assert data["task"] == "classification" and data["data"]["text_pair_column"] == "hypothesis"
    assert [v["name"] for v in data["compare"]["variants"]] == ["tfidf", "mix-all", "finetune"]
    path = tmp_path / "compare.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    found = {(job.variant, job.train_size) for job in jobs(config)}
    assert found == {(v, s) for v in ("tfidf", "mix-all", "finetune") for s in (50, "all")}


def test_compare_data_runs_the_standard_comparison_and_init_reproduces_it(tables, tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cmp"
    options = ["-m", str(tiny_bert_dir), "--trials", "1", "-o", str(out)]
    answer = CliRunner().invoke(cli, ["compare", str(tables["single"]), *options, "-q"])
    assert answer.exit_code == 0, answer.output
    assert "task: classification (3 distinct labels); train / dev / test: 48 / 6 / 6" in answer.output
    assert "text 'review', label 'label'" in answer.output and "**Verdict.**" in answer.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["variant"] for r in rows) == ["finetune", "mix-all", "tfidf"]

    printed = CliRunner().invoke(cli, ["init", str(tables["single"]), *options])
    assert printed.exit_code == 0, printed.output
    (tmp_path / "mine.yaml").write_text(printed.stdout, encoding="utf-8")
    again = load_config(tmp_path / "mine.yaml")
    assert {job.config_hash for job in jobs(again)} == {r["config_hash"] for r in rows}

    best = json.loads((out / "best.json").read_text())
    assert best["train_size"] == "all" and (out / best["run_dir"]).is_dir() and best["run_dir"].startswith("runs/")
    assert best["dev"] == max(r["dev"]["accuracy"] for r in rows)
    assert f"winner: {out}: the comparison's winner, {best['variant']}" in answer.output
    predicted = CliRunner().invoke(cli, ["predict", str(out), "the movie was great"])
    assert predicted.exit_code == 0, predicted.output
    assert f"using {out}: the comparison's winner" in predicted.output
    row = json.loads(predicted.stdout)
    assert row["label"] in {"pos", "neg", "other"} and all(len(repr(p)) <= 6 for p in row["probabilities"].values())

    from lmtransfer.cli.serve import _load

    (served,), _ = _load((str(out),), (), 32, "float32")  # serve takes the folder, and serves the winner
    assert served.name == "cmp" and served.run.directory.resolve() == (out / best["run_dir"]).resolve()

    plan_only = CliRunner().invoke(cli, ["compare", str(tables["single"]), *options, "--plan"])
    assert plan_only.exit_code == 0 and "estimate on this machine: about" in plan_only.output


@pytest.mark.parametrize(
    ("name", "task", "metric"),
    [("pairs", "classification", "accuracy"), ("scores", "regression", "pearson"), ("multi", "multilabel", "micro_f1")],
)
def test_compare_data_runs_each_inferable_task(tables, tiny_bert_dir, tmp_path, name, task, metric):
    out = tmp_path / f"cmp-{name}"
    options = ["-m", str(tiny_bert_dir), "--trials", "1", "-o", str(out), "-q"]
    answer = CliRunner().invoke(cli, ["compare", str(tables[name]), *options])
    assert answer.exit_code == 0, answer.output
    assert f"task: {task} (" in answer.output and "**Verdict.**" in answer.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["variant"] for r in rows) == ["finetune", "mix-all", "tfidf"]
    assert all(r["status"] == "ok" and r["metric"] == metric and r["task"] == task for r in rows)
    assert (out / "best.json").is_file()


def test_a_config_refuses_the_options_of_data_even_at_their_defaults():
    config = str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    for option in (["-m", "minilm"], ["--trials", "2"], ["--budget", "5"]):
        answer = CliRunner().invoke(cli, ["compare", config, *option])
        assert answer.exit_code == 2 and f"{option[0] if option[0] != '-m' else '--model'}: for DATA" in answer.output


def test_compare_report_rebuilds_and_the_old_spelling_still_works(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    for args in (["compare", "report", str(empty)], ["compare", "--report-only", str(empty)]):
        answer = CliRunner().invoke(cli, args)
        assert answer.exit_code == 0 and "No run finished, so there is nothing to compare yet." in answer.output
    old = CliRunner().invoke(cli, ["compare", "--report-only", str(empty)])
    assert "is now `lmtransfer compare report DIR`; the old spelling goes in the next release" in old.output


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    from tests.test_causal_lm import WORDS
    from tests.tiny_decoders import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("llama"), WORDS)


def test_compare_data_with_prompt_runs_the_untrained_ways_once_beside_every_size(
    tables, tiny_bert_dir, llama_dir, tmp_path
):
    out = tmp_path / "cmp"
    options = ["-m", str(tiny_bert_dir), "--trials", "1", "-o", str(out), "--prompt", str(llama_dir), "-q"]
    answer = CliRunner().invoke(cli, ["compare", str(tables["single"]), *options])
    assert answer.exit_code == 0, answer.output
    assert f"; once each, untrained: zero-shot, prompt-0, prompt-4 ({llama_dir} prompted);" in answer.output
    assert ", prompting " in answer.output.split("estimate on this machine: ")[1].splitlines()[0]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    untrained = sorted((r["variant"], r.get("train_size"), r["status"]) for r in rows if r.get("train_size") is None)
    assert untrained == [("prompt-0", None, "ok"), ("prompt-4", None, "ok"), ("zero-shot", None, "ok")]
    assert sorted(r["variant"] for r in rows if r.get("train_size") is not None) == ["finetune", "mix-all", "tfidf"]
    assert "Prompting (prompt-" in answer.output  # the verdict's sentence on prompting
    best = json.loads((out / "best.json").read_text())  # the untrained rows stand beside the largest size
    assert best["dev"] == max(r["dev"]["accuracy"] for r in rows if r.get("train_size") in ("all", None))
    written = yaml.safe_load((out / "compare.yaml").read_text())
    assert written["prompt"] == {"verbalizer": {"neg": "neg", "other": "other", "pos": "pos"}}  # to edit
    assert "# the words each label is scored by when prompted" in (out / "compare.yaml").read_text()


def test_prompt_on_pairs_leaves_zero_shot_out_and_says_numbers_make_poor_words(tables, tiny_bert_dir, llama_dir):
    options = ["-m", str(tiny_bert_dir), "--trials", "1", "--prompt", str(llama_dir), "--plan"]
    answer = CliRunner().invoke(cli, ["compare", str(tables["pairs"]), *options])
    assert answer.exit_code == 0, answer.output
    assert "untrained: prompt-0, prompt-4 (" in answer.output  # zero-shot embeds one text, not a pair
    assert "prompting: the labels are numbers (0, 1): the prompt scores them as written" in answer.output


def test_prompt_is_refused_where_a_prompt_cannot_pick_the_answer(tables, tiny_bert_dir, llama_dir):
    for name in ("scores", "multi"):
        answer = CliRunner().invoke(cli, ["compare", str(tables[name]), "--prompt", str(llama_dir), "--plan"])
        assert answer.exit_code == 2 and "--prompt: a prompt picks one label per text (classification)" in answer.output
