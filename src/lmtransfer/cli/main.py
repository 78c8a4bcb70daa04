"""The ``lmtransfer`` command line: one group, whose commands live in the modules beside this one.

Each command imports what it runs when it runs, so that ``lmtransfer --help`` and ``lmtransfer cache ls``
start without importing torch.
"""

from __future__ import annotations

import os
import sys

import click

from lmtransfer.cli.cache import cache
from lmtransfer.cli.compare import compare_group, init_command
from lmtransfer.cli.export import export_command
from lmtransfer.cli.hub import push_command
from lmtransfer.cli.models import fill_mask_command, pretrain_command, train_vectors_command
from lmtransfer.cli.serve import serve_command
from lmtransfer.cli.train import extract, train
from lmtransfer.cli.use import evaluate, predict
from lmtransfer.core.errors import LmtError
from lmtransfer.core.progress import quiet_libraries_when_logged

# the top-level help, by what a user comes to do; each line says what the command does
SECTIONS = {
    "Compare the ways": {
        "compare": "feature-based vs fine-tuning vs TF-IDF on your data (DATA or CONFIG), with a verdict",
        "init": "the YAML config of `compare DATA`, commented, to edit",
    },
    "Train and use": {
        "train": "train one run (feature-based, fine-tuned or LoRA), scored on dev and test",
        "extract": "fill the feature cache for a config's data (train does it when needed)",
        "evaluate": "a run's metrics on labelled data",
        "predict": "a run's predictions for texts on the command line or a file",
    },
    "Serve and share": {
        "serve": "an HTTP API for runs and encoders (predict, embeddings, features)",
        "export": "a run as an ONNX folder that predicts without torch weights",
        "push": "a run folder to the Hugging Face Hub, with its model card",
    },
    "Models and cache": {
        "pretrain": "masked-LM training of an encoder on plain text",
        "train-vectors": "word2vec vectors from plain text (gensim)",
        "fill-mask": "a masked LM's guesses for [MASK] in texts",
        "cache": "list, verify and remove feature caches",
    },
}


class _Sections(click.Group):
    """The commands listed by section (``SECTIONS``), in the order a user needs them."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, commands in SECTIONS.items():
            with formatter.section(title):
                formatter.write_dl([(name, line) for name, line in commands.items() if name in self.commands])


@click.group(cls=_Sections, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lmtransfer")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="LMTRANSFER_THREADS",
    help="CPU threads torch runs (default: one per core; env LMTRANSFER_THREADS). 1 is often faster when "
    "other jobs share the CPU. Goes before the command: lmtransfer --threads 1 train ...",
)
@click.pass_context
def cli(ctx: click.Context, threads: int | None) -> None:
    """Take a pretrained language model to a labelled NLP task, feature-based or fine-tuned, and find out
    which way wins on your data: `lmtransfer compare my.csv`.

    With no CONFIG, train and the other run commands use the embedded defaults: MiniLM (alias 'minilm') on
    the BBC News demo data, mean-pooled features of all layers, a scalar mix and a linear head.
    """
    if ctx.invoked_subcommand == "serve":
        # torch's OpenMP threads spin after each parallel region, taking the CPU the server's event loop
        # needs between batches; passive waiting (read when torch loads, so set first) served 13% more
        # requests per second on 2 cores (docs/serving.md)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threads is None:
        threads = _threads_per_launched_process()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _threads_per_launched_process() -> int | None:
    """Under ``accelerate launch`` with several processes on one machine and no GPU, each process's share
    of the cores (torch would start one thread per core in every process, and they would fight over them);
    None otherwise: torch's default. OMP_NUM_THREADS, where set, is respected."""
    local = os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE")
    if not local or not local.isdigit() or int(local) <= 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    from lmtransfer.core.devices import accelerator_available
    from lmtransfer.core.threads import usable_cores  # imports torch: only when launched

    return None if accelerator_available() else max(1, usable_cores() // int(local))


for command in (extract, train, evaluate, predict, fill_mask_command, pretrain_command, train_vectors_command):
    cli.add_command(command)
cli.add_command(compare_group)
cli.add_command(init_command)
cli.add_command(serve_command)
cli.add_command(push_command)
cli.add_command(export_command)
cli.add_command(cache)


def main() -> None:
    quiet_libraries_when_logged()
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LmtError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; finished cache shards are kept and the next run resumes", err=True)
        sys.exit(130)
