"""`lmtransfer train` says how sure its scores are, never replaces a run unasked, writes the gold label
beside each prediction, and writes plain lines, not bar frames, where stderr is a log."""

from __future__ import annotations

import io
import json

from click.testing import CliRunner

from lmtransfer.cli.main import cli
from lmtransfer.core.errors import LmtError
from lmtransfer.core.progress import Progress


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_train_gives_intervals_warns_of_small_splits_and_keeps_runs(run_overrides, tmp_path):
    runner = CliRunner()
    first = runner.invoke(cli, ["train", "-q", *sets(run_overrides)])
    assert first.exit_code == 0, first.output
    dev = next(line for line in first.stdout.splitlines() if line.startswith("dev: "))
    assert (
        dev.startswith("dev: accuracy ")
        and "] " in dev
        and dev.endswith("(95% intervals)  (6 classification examples)")
    )
    low, high = (float(x) for x in dev.split("[", 1)[1].split("]", 1)[0].split(", "))
    accuracy = float(dev.split()[2])
    assert 0.0 <= low <= accuracy <= high <= 1.0
    assert "note: dev has only 6 examples, so its scores are rough" in first.stderr
    assert "note: test has only 6 examples" in first.stderr

    again = runner.invoke(cli, ["train", "-q", *sets(run_overrides)])
    assert isinstance(again.exception, LmtError)
    assert (
        str(again.exception)
        == f"{tmp_path / 'run'}: holds a trained run: give another --output, or --overwrite to replace it"
    )
    replaced = runner.invoke(cli, ["train", "-q", "--overwrite", *sets(run_overrides)])
    assert replaced.exit_code == 0, replaced.output

    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions" / "dev.jsonl").read_text().splitlines()]
    gold = ["pos", "neg", "pos", "neg", "biz", "biz"]  # the dev file's labels (conftest.sentiment_files)
    assert [row["gold"] for row in rows] == gold and all(row["label"] in {"pos", "neg", "biz"} for row in rows)


def test_a_bar_in_a_log_is_whole_lines_without_carriage_returns():
    log = io.StringIO()  # not a terminal
    with Progress(total=3, desc="train", unit="step", file=log) as bar:
        for _ in range(3):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text and text.splitlines()[-1].startswith("train: 100%|") and len(text.splitlines()) == 1
    quiet = io.StringIO()
    with Progress(total=3, desc="predict", file=quiet, leave=False) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""  # a bar that is not kept leaves nothing in a log
