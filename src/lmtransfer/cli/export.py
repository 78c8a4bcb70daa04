"""``lmtransfer export``: a run as a self-contained inference artefact, in a format a feature backend writes
(ONNX)."""

from __future__ import annotations

import click

from lmtransfer.cli.options import chosen_run, renamed
from lmtransfer.core import choices as c
from lmtransfer.core.backends import export_formats


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), callback=lambda c, p, v: chosen_run(v))
@click.option(
    "--format", "fmt", type=click.Choice(export_formats()), default="onnx", show_default=True, help="artefact format"
)
@click.option(
    "--quantize",
    type=click.Choice(c.ONNX_QUANTIZATIONS),
    default="none",
    show_default=True,
    help="int8: the encoder's weights quantised by ONNX Runtime (faster on a CPU; features move a little)",
)
@click.option(
    "--output", "-o", type=click.Path(file_okay=False), default=None, help="the folder (default: RUN_DIR-onnx[-int8])"
)
@renamed("--out", "--output", "output", type=click.Path(file_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="no progress messages")
def export_command(run_dir, fmt, quantize, output, quiet) -> None:
    """Write RUN_DIR (a fine-tuned or feature-based run of a transformer) as a folder that predicts without
    torch weights: the encoder's hidden states as an ONNX graph, its tokenizer, the run's head, labels and
    config. `lmtransfer predict`, `evaluate` and `serve` take the folder as they take the run:

        lmtransfer export runs/demo --quantize int8
        lmtransfer serve runs/demo-onnx-int8

    Needs onnxruntime and onnx (pip install onnxruntime onnx, the 'onnx' extra).
    """
    from lmtransfer.runs.export import export_run

    folder = export_run(run_dir, output, quantize=quantize, progress=not quiet, fmt=fmt)
    click.echo(str(folder))
