"""The command line: train / evaluate / predict / extract, errors as one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from lmtransfer.cli.main import cli


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_train_evaluate_predict(run_overrides, tmp_path, sentiment_files):
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", "-q", *sets(run_overrides), "--head", "mlp"])
    assert trained.exit_code == 0, trained.output
    assert "dev: accuracy" in trained.output and "layer weights: 0:" in trained.output
    run_dir = str(tmp_path / "run")
    evaluated = runner.invoke(
        cli, ["evaluate", run_dir, "-q", "--data", str(sentiment_files["dev"]), "--output", str(tmp_path / "m.json")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "m.json").read_text())["examples"] == 6
    predicted = runner.invoke(cli, ["predict", run_dir, "the movie was great", "shares rose"])
    rows = [json.loads(line) for line in predicted.output.splitlines()]
    assert [r["text"] for r in rows] == ["the movie was great", "shares rose"]
    assert all(r["label"] in {"pos", "neg", "biz"} for r in rows)
    from_file = runner.invoke(
        cli, ["predict", run_dir, "--data", str(sentiment_files["test"]), "-o", str(tmp_path / "p.jsonl")]
    )
    assert from_file.exit_code == 0 and len((tmp_path / "p.jsonl").read_text().splitlines()) == 6


def test_extract_command_reports_caches(run_overrides):
    result = CliRunner().invoke(cli, ["extract", "-q", *sets(run_overrides), "--split", "train", "--layers", "last"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["train"]["examples"] == 48 and report["train"]["extracted_now"] == 48


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_bytes(b"text,label\ngood,pos\n\xff\xfe,neg\n")
    proc = subprocess.run(
        [sys.executable, "-m", "lmtransfer", "train", "--set", f"data.train={bad}", "--set", "encoder.model=/nowhere"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}: line 3: bytes that are not UTF-8 (0xff at column 1)"


def test_help_explains_defaults():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "MiniLM" in result.output and "BBC News" in result.output
    for command in ("extract", "train", "evaluate", "predict", "cache"):
        assert command in result.output
    assert "--set" in CliRunner().invoke(cli, ["train", "--help"]).output
