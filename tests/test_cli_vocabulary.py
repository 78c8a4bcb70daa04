"""One vocabulary of options: -o/--output wherever a command writes, --data for inputs, -q/--quiet everywhere,
each old spelling still taken (with a line that says so) for one release; the top-level help by section."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from lmtransfer.cli.main import SECTIONS, cli


@pytest.fixture
def calls(monkeypatch):
    """What each command would have run, with what; nothing runs."""
    seen: dict[str, tuple] = {}

    def recorder(name, result=None):
        def record(*args, **kwargs):
            seen[name] = (args, kwargs)
            return result

        return record

    import lmtransfer.api
    import lmtransfer.encoders.word2vec
    import lmtransfer.runs.export
    import lmtransfer.runs.hub
    import lmtransfer.training.pretrain

    monkeypatch.setattr(lmtransfer.api, "predict_file", recorder("predict", ""))
    monkeypatch.setattr(lmtransfer.runs.export, "export_run", recorder("export", "folder"))
    monkeypatch.setattr(lmtransfer.runs.hub, "upload_plan", lambda run, checkpoints: (Path(run), []))
    monkeypatch.setattr(lmtransfer.runs.hub, "push", recorder("push", "url"))
    done = SimpleNamespace(new_head=False, output_dir="out", steps=1, examples=1, seconds=0.1, final_loss=1.0)
    monkeypatch.setattr(lmtransfer.training.pretrain, "pretrain", recorder("pretrain", done))
    vectors = SimpleNamespace(words=3, dim=2, output="out", lines=1, tokens=3, seconds=0.1)
    monkeypatch.setattr(lmtransfer.encoders.word2vec, "train_vectors", recorder("train-vectors", vectors))
    return seen


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    (tmp_path / "run").mkdir()
    (tmp_path / "corpus.txt").write_text("a b c\n", encoding="utf-8")
    return {"run": str(tmp_path / "run"), "corpus": str(tmp_path / "corpus.txt"), "out": str(tmp_path / "out")}


# (command line with {placeholders}, the old spelling's replacement, what was run, where the value arrived)
CASES = [
    ("predict {run} --data {corpus} -q", ("--data", "--input"), "predict", lambda a, k: a[1]),
    ("export {run} -o {out} -q", ("-o", "--out"), "export", lambda a, k: a[1]),
    ("push {run} me/repo --message hello -q", ("--message", "-m"), "push", lambda a, k: k["message"]),
    ("pretrain -m minilm --data {corpus} -o {out} -q", ("--data", "--corpus"), "pretrain", lambda a, k: a[1]),
    ("pretrain -m minilm --data {corpus} -o {out} -q", ("-o", "--output-dir"), "pretrain", lambda a, k: a[2]),
    ("train-vectors --data {corpus} -o {out} -q", ("--data", "--corpus"), "train-vectors", lambda a, k: a[0]),
]


@pytest.mark.parametrize(("line", "spellings", "name", "value"), CASES)
def test_new_and_old_spellings_reach_the_same_place(calls, files, line, spellings, name, value):
    new, old = spellings
    args = line.format(**files).split()
    answer = CliRunner().invoke(cli, args)
    assert answer.exit_code == 0, answer.output
    found = value(*calls.pop(name))
    assert "the old spelling goes" not in answer.output
    answer = CliRunner().invoke(cli, [old if arg == new else arg for arg in args])
    assert answer.exit_code == 0, answer.output
    assert value(*calls.pop(name)) == found
    long = {"-o": "--output"}.get(new, new)
    assert f"{old} is now {long}; the old spelling goes in the next release" in answer.output


def test_a_required_option_given_by_neither_spelling_is_missing(files):
    answer = CliRunner().invoke(cli, ["train-vectors", "-o", files["out"]])
    assert answer.exit_code == 2 and "Missing option '--data'." in answer.output


def test_train_takes_output_and_its_old_spelling(monkeypatch, tmp_path):
    import lmtransfer.api

    seen = []
    monkeypatch.setattr(lmtransfer.api, "train", lambda config, **kw: seen.append(config.output_dir) or 1 / 0)
    for option in ("-o", "--output", "--output-dir"):
        CliRunner().invoke(cli, ["train", "-q", option, str(tmp_path / option)])
    assert seen == [str(tmp_path / o) for o in ("-o", "--output", "--output-dir")]


@pytest.mark.parametrize(
    "command",
    [
        "train",
        "extract",
        "evaluate",
        "predict",
        "compare",
        "pretrain",
        "train-vectors",
        "fill-mask",
        "export",
        "push",
        "serve",
    ],
)
def test_every_command_takes_quiet(command):
    answer = CliRunner().invoke(cli, [command, "--help"])
    assert "-q, --quiet" in answer.output


def test_the_top_level_help_lists_every_command_once_by_section():
    listed = [name for commands in SECTIONS.values() for name in commands]
    assert sorted(listed) == sorted(cli.commands) and len(listed) == len(set(listed))
    text = CliRunner().invoke(cli, ["--help"]).output
    assert text.index("Compare the ways:") < text.index("Train and use:") < text.index("Serve and share:")
