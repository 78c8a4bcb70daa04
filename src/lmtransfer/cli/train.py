"""``lmtransfer extract`` and ``lmtransfer train``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from lmtransfer.cli.options import echo_json, load_run_config, renamed, run_config_options
from lmtransfer.core.choices import HEAD_TYPES, SPLITS, STRATEGIES, TASK_HEADS, TASKS, listed
from lmtransfer.core.errors import LmtError

FEW = 100  # a dev or test split smaller than this gets a note that its scores are rough

if TYPE_CHECKING:
    from lmtransfer.training.convergence import Convergence


@click.command()
@run_config_options
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(SPLITS),
    help="which splits (default: all three)",
)
def extract(config_path, overrides, model, layers, cache_dir, quiet, allow_pickle, splits) -> None:
    """Extract features of the config's data into the cache (resumes; cached work is not redone)."""
    from lmtransfer import api

    config = load_run_config(
        config_path,
        overrides,
        **{
            "encoder.model": model,
            "encoder.allow_pickle": True if allow_pickle else None,
            "features.layers": layers,
            "cache_dir": cache_dir,
        },
    )
    done = api.extract(config, splits or SPLITS, progress=not quiet)
    echo_json(
        {
            name: {
                "cache": str(ex.cache.directory),
                "examples": len(ex.cache),
                "bytes": ex.cache.nbytes,
                "extracted_now": ex.examples,
                "tokens_per_second": round(ex.tokens_per_second, 1),
            }
            for name, ex in done.items()
        }
    )


@click.command()
@run_config_options
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="feature: head on cached features of a frozen encoder (default); finetune: encoder and head "
    "train; lora: LoRA adapters and head train; prompt: a causal LM (default smollm2) scores each label's "
    "words after an instruction and prompt.shots demonstrations, no training; zero-shot: the nearest label "
    "description by the encoder's embeddings, no training",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="what to learn (default: the config's, else classification)",
)
@click.option(
    "--head",
    type=click.Choice(HEAD_TYPES),
    default=None,
    help="task head: " + "; ".join(f"{listed(heads)} for {task}" for task, heads in TASK_HEADS.items()),
)
@click.option("--output", "-o", default=None, help="run directory to write (default: the config's output_dir)")
@renamed("--output-dir", "--output", "output")
@click.option("--overwrite", is_flag=True, help="replace the run the output directory holds (else refused)")
@click.option("--resume", is_flag=True, help="continue a killed run from its latest checkpoint")
def train(
    config_path,
    overrides,
    model,
    layers,
    cache_dir,
    quiet,
    allow_pickle,
    strategy,
    task,
    head,
    output,
    overwrite,
    resume,
) -> None:
    """Train, evaluate on dev and test, and write a run directory.

    Runs on a CPU or one GPU as it is, and on several processes (DDP, DeepSpeed) under
    `accelerate launch -m lmtransfer train ...`; train.batch_size is the total per optimizer step.
    """
    from accelerate import PartialState

    from lmtransfer import api
    from lmtransfer.tasks.table import task_for

    config = load_run_config(
        config_path,
        overrides,
        **{
            "strategy": strategy,
            "task": task,
            "encoder.model": model,
            "encoder.allow_pickle": True if allow_pickle else None,
            "features.layers": layers,
            "cache_dir": cache_dir,
            "head.type": head,
            "output_dir": output,
        },
    )
    held = Path(config.output_dir) / "metrics.json"
    if held.is_file() and not (overwrite or resume):
        raise LmtError(
            "holds a trained run: give another --output, or --overwrite to replace it", path=config.output_dir
        )
    result = api.train(config, progress=not quiet, resume=resume)
    if not PartialState().is_main_process:
        return  # under accelerate launch, one process reports
    metrics_of = task_for(result.config).metrics
    click.echo(f"run written to {result.directory}")
    for split, metrics in (("dev", result.dev), ("test", result.test)):
        if metrics is not None:
            shown = scores_with_intervals(metrics, result.units.get(split), metrics_of)
            click.echo(f"{split}: {shown}  ({result.sizes[split]} {result.task} examples)")
            if result.sizes[split] < FEW:
                click.echo(
                    f"  note: {split} has only {result.sizes[split]} examples, so its scores are rough (see the "
                    f"95% intervals); give a {split} file or more data for a firmer number",
                    err=True,
                )
    click.echo(result.description)
    if result.convergence is not None and result.convergence.converged is not None:
        click.echo(convergence_line(result.convergence))
    c = result.costs
    speed = f", {c.train_tokens_per_second:,.0f} tokens/s" if c.train_tokens_per_second else ""
    if c.loop is not None and c.loop.mixed_precision not in ("no", None) and c.train_tokens_per_second:
        speed += f" ({c.loop.mixed_precision} autocast)"  # what mixed_precision: auto chose
    if c.prompting is not None and c.prompting.examples_per_second:  # the cost moved from training to prediction
        p = c.prompting
        speed += f"; {p.tokens_per_example:,.0f} prompt tokens an example, "
        speed += f"{p.examples_per_second:,.1f} examples/s labelled"
    click.echo(
        f"{c.strategy}: {c.trainable_parameters:,} trainable parameters, training {c.train_seconds:.1f} s"
        f"{speed}, wall {c.wall_seconds:.1f} s, peak RSS {c.peak_rss_bytes / 2**20:,.0f} MiB"
    )


def scores_with_intervals(metrics: dict, units, names: tuple[str, ...]) -> str:
    """``accuracy 0.8333 [0.5000, 1.0000]  macro_f1 ...``: each metric with its 95% interval, by the paired
    bootstrap over evaluation units that compare uses (none where the run kept no units)."""
    from lmtransfer.compare.intervals import Bootstrap

    bootstrap = Bootstrap(len(units)) if units is not None and len(units) > 1 else None
    parts = []
    for name in (n for n in names if isinstance(metrics.get(n), int | float)):
        text = f"{name} {metrics[name]:.4f}"
        if bootstrap is not None:
            interval = bootstrap.interval([units], name)
            text += f" [{interval.low:.4f}, {interval.high:.4f}]"
        parts.append(text)
    return "  ".join(parts) + ("  (95% intervals)" if bootstrap is not None and parts else "")


def convergence_line(c: Convergence) -> str:
    """``training: 300 optimizer steps, converged (best dev at step 120)`` or why it did not; and whether early
    stopping ended it before its budget."""
    head = f"training: {c.steps:,} optimizer steps (dev every {c.eval_steps:,})"
    if c.stopped_early:
        head += f", stopped early ({c.patience} evaluations without improvement, budget {c.budget_steps:,})"
    if c.converged:
        return f"{head}, converged: {c.reason}"
    return f"{head}, NOT converged: {c.reason}; raise train.min_steps (now {c.budget_steps:,} steps in all) or the lr"
