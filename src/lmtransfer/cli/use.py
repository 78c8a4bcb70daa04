"""``lmtransfer evaluate`` and ``lmtransfer predict``: a trained run on labelled data, or on new inputs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lmtransfer.cli.options import chosen_run, echo_json, quiet_libraries, renamed
from lmtransfer.core.atomic import atomic_write_json, atomic_write_text, existing_dir


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), callback=lambda c, p, v: chosen_run(v))
@click.option(
    "--data", "data_path", default=None, help="labelled file in the run's task format (default: its test split)"
)
@click.option(
    "--output", "-o", default=None, type=click.Path(dir_okay=False), help="also write the metrics here (JSON)"
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bars")
def evaluate(run_dir, data_path, output, quiet) -> None:
    """Evaluate a trained run on labelled data: the task's metrics (accuracy and per-class F1; micro-F1;
    Pearson / Spearman; entity precision / recall / F1 overall and per type; SQuAD EM / F1)."""
    from lmtransfer import api

    metrics = api.evaluate(run_dir, data_path, progress=not quiet)
    echo_json(metrics)
    if output:
        atomic_write_json(output, metrics)


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), callback=lambda c, p, v: chosen_run(v))
@click.argument("inputs", nargs=-1)
@click.option(
    "--data",
    "input_path",
    default=None,
    help="a file in the run's task format (CSV/TSV/JSONL texts, CoNLL words, SQuAD JSON); labels are ignored",
)
@renamed("--input", "--data", "input_path")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False), help="write here instead of stdout")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars")
def predict(run_dir, inputs, input_path, output, quiet) -> None:
    """Predict for INPUTS or the file of --data.

    INPUTS are texts (a pair task: the two texts separated by a tab; tagging: words separated by spaces)
    or, for qa, JSON objects with "question" and "context". They give one JSON line each. A --data file
    gives the task's own prediction file: JSONL, the CoNLL lines with the predicted tag appended, or the
    SQuAD answers JSON.
    """
    from lmtransfer import api
    from lmtransfer.runs.kinds import load_run

    if bool(inputs) == bool(input_path):
        raise click.UsageError("give INPUTS or --data (one of them)")
    if quiet:
        quiet_libraries()
    if input_path:
        text = api.predict_file(run_dir, input_path)
    else:
        run = load_run(existing_dir(Path(run_dir)))
        try:
            items = [run.task.parse_argument(item) for item in inputs]
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        found = run.predict(run.task.parse(items))[1]
        rows = [run.task.prediction_row(item, result) for item, result in zip(items, found)]
        text = "".join(json.dumps(rounded(row), ensure_ascii=False) + "\n" for row in rows)
    if output:
        atomic_write_text(output, text)
    else:
        click.echo(text, nl=False)


def rounded(value, digits: int = 4):
    """``value`` with every float rounded to ``digits`` decimals: what a person reads of a probability."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value
