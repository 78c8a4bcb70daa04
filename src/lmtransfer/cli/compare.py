"""``lmtransfer compare``: both ways (and baselines) side by side on one task, and the report."""

from __future__ import annotations

from pathlib import Path

import click

from lmtransfer.cli.options import SET_HELP, load_run_config
from lmtransfer.core.errors import LmtError


@click.command("compare")
@click.argument("config_path", required=False, metavar="CONFIG")
@click.option(
    "--set", "-s", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP + "; applies to the base run"
)
@click.option(
    "--report-only",
    "report_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="run nothing: rebuild report.md and report.html of this comparison folder from its results.jsonl",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bars (one line per row is still shown)")
def compare_command(config_path, overrides, report_dir, quiet) -> None:
    """Run every variant x encoder x seed of CONFIG's compare section and report which way wins.

    CONFIG is a run config (the base run) with a `compare:` section: `encoders` (encoder.model values),
    `seeds`, `variants` (each a `name`, a `set` of dotted fields, as --set takes them, and optionally its
    own `search`), `search` (trials over dotted keys for every variant but the baselines, chosen by dev
    alone; with no `space`, the way's learning rate and training length), `train_sizes` (nested training
    subsets, e.g. [100, 300, all]), `extensions` and `output_dir`. Each row trains in a child process and
    is appended to OUTPUT_DIR/results.jsonl with its metrics and their 95% intervals, whether its run
    converged, extraction / training / evaluation seconds, peak RSS, cache bytes, trainable parameters
    and inference examples/s; feature-based variants share one extraction of the union of their layers.
    Every run takes at least train.min_steps optimizer steps; a row whose dev curve had not converged runs
    again with twice the steps (up to `extensions` times, default 2), and one still not converged is left
    out of the verdict as under-trained. Run it again to resume: finished rows and trials are skipped.
    The report (the verdict, which calls a difference whose paired-bootstrap interval contains 0 a tie;
    the table with intervals; plots) goes to stdout, OUTPUT_DIR/report.md and the self-contained
    OUTPUT_DIR/report.html.

    \b
    lmtransfer compare configs/demo.yaml
    lmtransfer compare configs/conll2003-table7.yaml --set compare.seeds=[1,2,3]
    lmtransfer compare configs/sst2-sizes.yaml --set 'compare.train_sizes=[100, 300]'
    lmtransfer compare --report-only runs/compare-demo
    """
    from lmtransfer.compare.report import write_report

    if report_dir is not None:
        if config_path or overrides:
            raise click.UsageError("--report-only takes no CONFIG and no --set")
        report = write_report(Path(report_dir))
    else:
        if config_path is None:
            raise click.UsageError("give a compare CONFIG (e.g. configs/demo.yaml) or --report-only DIR")
        from lmtransfer.compare.runner import compare

        config = load_run_config(config_path, overrides)
        if config.compare is None:
            raise LmtError("no 'compare:' section (see configs/demo.yaml)", path=config_path, field="compare")
        report = compare(config, progress=not quiet).report
    click.echo(report.markdown, nl=False)
