"""The ``lmtransfer`` command line: extract, train, evaluate, predict, fill-mask, pretrain, and cache management."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from lmtransfer.errors import LmtError

SET_HELP = "override a config field, e.g. --set head.type=mlp --set train.lr=3e-4 (repeatable)"


def _config(config_path: str | None, overrides: tuple[str, ...], **shortcuts: str | None):
    from lmtransfer.config import load_config

    extra = [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
    return load_config(config_path, [*extra, *overrides])


def _echo_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2))


def _common(func):
    """Options shared by the commands that read a run config."""
    options = [
        click.argument("config_path", required=False, metavar="[CONFIG]"),
        click.option("--set", "-s", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP),
        click.option(
            "--model",
            "-m",
            default=None,
            help="encoder: local dir, hub id, alias (minilm, mpnet, glove-6b-50d), a vectors file, or a baseline: "
            "counts, tfidf, scratch",
        ),
        click.option("--layers", default=None, help="'all', 'last4', an index or a list such as '[-1,-2]'"),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False), help="feature cache root"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bars"),
        click.option(
            "--allow-pickle",
            is_flag=True,
            help="also load a model that has only pickle weights (pytorch_model.bin), with "
            "torch.load(weights_only=True); sets encoder.allow_pickle",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lmtransfer")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="LMTRANSFER_THREADS",
    help="CPU threads torch runs (default: one per core; env LMTRANSFER_THREADS). 1 is often faster when "
    "other jobs share the CPU. Goes before the command: lmtransfer --threads 1 train ...",
)
def cli(threads: int | None) -> None:
    """Take a pretrained language model to a labelled NLP task, feature-based or fine-tuned.

    With no CONFIG, every command uses the embedded defaults: MiniLM (alias 'minilm') on the BBC News
    demo data, mean-pooled features of all layers, a scalar mix and a linear head.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@cli.command()
@_common
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(["train", "dev", "test"]),
    help="which splits (default: all three)",
)
def extract(config_path, overrides, model, layers, cache_dir, quiet, allow_pickle, splits) -> None:
    """Extract features of the config's data into the cache (resumes; cached work is not redone)."""
    from lmtransfer import pipeline

    config = _config(
        config_path,
        overrides,
        **{
            "encoder.model": model,
            "encoder.allow_pickle": True if allow_pickle else None,
            "features.layers": layers,
            "cache_dir": cache_dir,
        },
    )
    done = pipeline.extract(config, splits or ("train", "dev", "test"), progress=not quiet)
    _echo_json(
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


@cli.command()
@_common
@click.option(
    "--strategy",
    type=click.Choice(["feature", "finetune", "lora"]),
    default=None,
    help="feature: head on cached features of a frozen encoder (default); finetune: encoder and head "
    "train; lora: LoRA adapters and head train",
)
@click.option(
    "--task",
    type=click.Choice(["classification", "multilabel", "regression", "tagging", "qa"]),
    default=None,
    help="what to learn (default: the config's, else classification)",
)
@click.option(
    "--head",
    type=click.Choice(["linear", "mlp", "bilstm", "crf", "bilstm-crf"]),
    default=None,
    help="task head: linear, mlp or bilstm (over the tokens) for text tasks; linear, bilstm, crf or bilstm-crf "
    "for tagging; linear or bilstm for qa",
)
@click.option("--output-dir", "-o", default=None, help="run directory to write (replaced if it exists)")
@click.option("--resume", is_flag=True, help="continue a killed run from its latest checkpoint")
def train(
    config_path, overrides, model, layers, cache_dir, quiet, allow_pickle, strategy, task, head, output_dir, resume
) -> None:
    """Train, evaluate on dev and test, and write a run directory.

    Runs on a CPU or one GPU as it is, and on several processes (DDP, DeepSpeed) under
    `accelerate launch -m lmtransfer train ...`; train.batch_size is the total per optimizer step.
    """
    from lmtransfer import pipeline

    config = _config(
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
            "output_dir": output_dir,
        },
    )
    result = pipeline.train(config, progress=not quiet, resume=resume)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return  # under accelerate launch, one process reports
    from lmtransfer.tasks import task_for

    m = result.metrics
    summary = task_for(config).summary
    click.echo(f"run written to {result.directory}")
    for split in ("dev", "test"):
        if split in m:
            click.echo(f"{split}: {summary(m[split])}  ({m['sizes'][split]} {m['task']} examples)")
    weights_file = result.directory / "layer_weights.json"
    weights = json.loads(weights_file.read_text()) if weights_file.is_file() else {}
    if "vocabulary_size" in m:  # a bag-of-words baseline
        click.echo(f"{m['vocabulary_size']:,} bag-of-words features, scikit-learn linear model")
    elif "softmax" in weights:
        mix = "  ".join(f"{layer}:{w:.2f}" for layer, w in zip(weights["layers"], weights["softmax"]))
        click.echo(f"layer weights: {mix}  gamma {weights['gamma']:.2f}")
    else:
        click.echo(f"layers {weights['layers']}, concatenated")
    c = m["costs"]
    speed = f", {c['train_tokens_per_second']:,.0f} tokens/s" if c.get("train_tokens_per_second") else ""
    click.echo(
        f"{c['strategy']}: {c['trainable_parameters']:,} trainable parameters, training {c['train_seconds']:.1f} s"
        f"{speed}, wall {c['wall_seconds']:.1f} s, peak RSS {c['peak_rss_bytes'] / 2**20:,.0f} MiB"
    )


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--data", "data_path", default=None, help="labelled file in the run's task format (default: its test split)"
)
@click.option("--output", default=None, type=click.Path(dir_okay=False), help="also write the metrics here (JSON)")
@click.option("--quiet", "-q", is_flag=True)
def evaluate(run_dir, data_path, output, quiet) -> None:
    """Evaluate a trained run on labelled data: the task's metrics (accuracy and per-class F1; micro-F1;
    Pearson / Spearman; entity precision / recall / F1 overall and per type; SQuAD EM / F1)."""
    from lmtransfer import pipeline
    from lmtransfer.atomic import atomic_write_json

    metrics = pipeline.evaluate(run_dir, data_path, progress=not quiet)
    _echo_json(metrics)
    if output:
        atomic_write_json(output, metrics)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1)
@click.option(
    "--input",
    "input_path",
    default=None,
    help="a file in the run's task format (CSV/TSV/JSONL texts, CoNLL words, SQuAD JSON); labels are ignored",
)
@click.option("--output", default=None, type=click.Path(dir_okay=False), help="write here instead of stdout")
def predict(run_dir, inputs, input_path, output) -> None:
    """Predict for INPUTS or the file of --input.

    INPUTS are texts (a pair task: the two texts separated by a tab; tagging: words separated by spaces)
    or, for qa, JSON objects with "question" and "context". They give one JSON line each. An --input file
    gives the task's own prediction file: JSONL, the CoNLL lines with the predicted tag appended, or the
    SQuAD answers JSON.
    """
    from lmtransfer import pipeline
    from lmtransfer.atomic import atomic_write_text, existing_dir
    from lmtransfer.runs import run_config

    if bool(inputs) == bool(input_path):
        raise click.UsageError("give INPUTS or --input (one of them)")
    if input_path:
        text = pipeline.predict_file(run_dir, input_path)
    else:
        config = run_config(existing_dir(Path(run_dir)))
        items = [_parse_input(item, config.task, config.data.text_pair_column) for item in inputs]
        rows = [_row(item, found, config.task) for item, found in zip(items, pipeline.predict(run_dir, items))]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output:
        atomic_write_text(output, text)
    else:
        click.echo(text, nl=False)


def _row(item, found, task: str) -> dict:
    if task == "tagging":
        return {"words": item.split(), "tags": found}
    if task == "qa":
        return {**item, **found}
    if isinstance(item, tuple):
        return {"text": item[0], "text_pair": item[1], **found}
    return {"text": item, **found}


def _parse_input(item: str, task: str, pair_column: str | None):
    if task == "qa":
        try:
            return json.loads(item)
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"qa inputs are JSON objects with question and context ({exc.msg})") from None
    if pair_column is not None:
        first, tab, second = item.partition("\t")
        if not tab:
            raise click.UsageError("this run reads sentence pairs: give each input as the two texts joined by a tab")
        return (first, second)
    return item


@cli.command("fill-mask")
@click.argument("texts", nargs=-1, required=True)
@click.option(
    "--model", "-m", required=True, help="a masked LM: local dir, hub id or alias (a 'pretrain' output dir works)"
)
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1), help="tokens listed per mask")
@click.option(
    "--targets",
    default=None,
    metavar="W1,W2,...",
    help="score only these comma-separated words, each a single token of the vocabulary (all are listed; "
    "--top-k is then ignored)",
)
def fill_mask_command(texts, model, top_k, targets) -> None:
    """The most likely tokens, with probabilities, for each mask in TEXTS.

    Mark a mask as [MASK], <mask> or {mask}, whatever the model's own mask token; a text may hold
    several. Prints one JSON line per text: {"text", "masks"}, with one list per mask of
    {"token", "token_id", "score", "sequence"}, most likely first. A model without a masked-LM head
    (all-MiniLM-L6-v2, say) is refused: 'lmtransfer pretrain' gives it one.
    """
    from lmtransfer.fillmask import fill_mask

    words = None if targets is None else [word.strip() for word in targets.split(",") if word.strip()]
    results = fill_mask(model, list(texts), top_k=top_k, targets=words)
    for text, masks in zip(texts, results):
        click.echo(json.dumps({"text": text, "masks": masks}, ensure_ascii=False))


@cli.command("pretrain")
@click.option("--model", "-m", required=True, help="encoder to train: local dir, hub id or alias (minilm, ...)")
@click.option(
    "--corpus",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="UTF-8 plain text, one document or sentence per line (blank lines skipped)",
)
@click.option("--output-dir", "-o", required=True, help="where the masked LM is written (replaced if it exists)")
@click.option("--epochs", default=1, show_default=True, type=click.IntRange(min=1), help="passes over the corpus")
@click.option(
    "--max-steps", default=None, type=click.IntRange(min=1), help="optimizer steps to run instead of --epochs"
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=5e-5, show_default=True, type=float, help="peak AdamW learning rate (linear decay)")
@click.option(
    "--mlm-probability", default=0.15, show_default=True, type=float, help="share of tokens (or words) masked"
)
@click.option("--whole-word-mask", is_flag=True, help="mask all pieces of a word together")
@click.option(
    "--max-length",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    help="tokens per example; longer lines become several examples",
)
@click.option("--seed", default=13, show_default=True, type=int)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def pretrain_command(
    model,
    corpus,
    output_dir,
    epochs,
    max_steps,
    batch_size,
    lr,
    mlm_probability,
    whole_word_mask,
    max_length,
    seed,
    quiet,
) -> None:
    """Continue (or start) masked-LM training of an encoder on an unlabelled corpus.

    A checkpoint without a masked-LM head (all-MiniLM-L6-v2, say) gets a new one, tied to its input
    embeddings. The output is a Hugging Face masked LM that fill-mask loads and that serves as --model
    of a feature-based or fine-tuned run.
    """
    from lmtransfer.pretrain import pretrain

    result = pretrain(
        model,
        corpus,
        output_dir,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        mlm_probability=mlm_probability,
        whole_word_mask=whole_word_mask,
        max_length=max_length,
        seed=seed,
        progress=not quiet,
    )
    if result.new_head:
        click.echo("the checkpoint had no masked-LM head: a new one was trained, tied to the input embeddings")
    click.echo(f"masked LM written to {result.output_dir}")
    click.echo(
        f"{result.steps} steps over {result.examples} examples in {result.seconds:.1f} s, "
        f"final loss {result.final_loss:.4f} (mean of the last 50 steps)"
    )


@cli.command("train-vectors")
@click.option(
    "--corpus",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="UTF-8 plain text, one sentence or document per line (blank lines skipped)",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="vectors file: .txt or .vec (word2vec text) or .bin (word2vec binary); replaced if it exists",
)
@click.option("--sg/--cbow", default=True, show_default=True, help="skip-gram (predict context from word) or CBOW")
@click.option("--dim", default=100, show_default=True, type=click.IntRange(min=1), help="vector dimension")
@click.option("--window", default=5, show_default=True, type=click.IntRange(min=1), help="context words each side")
@click.option(
    "--min-count", default=2, show_default=True, type=click.IntRange(min=1), help="drop rarer words (they read as OOV)"
)
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1), help="passes over the corpus")
@click.option(
    "--workers", default=3, show_default=True, type=click.IntRange(min=1), help="threads (1: exactly reproducible)"
)
@click.option("--seed", default=13, show_default=True, type=int)
@click.option(
    "--lowercase/--keep-case",
    default=True,
    show_default=True,
    help="lowercase the corpus first; lookups then lowercase too (it is detected from the vectors)",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def train_vectors_command(corpus, output, quiet, **options) -> None:
    """Train word2vec vectors (gensim) on a plain-text corpus.

    Lines are split into words as static-vectors encoders split text (whitespace and punctuation), so
    the output serves directly as --model (or encoder.model) of a run: frozen with the default strategy,
    updated with --set encoder.update_vectors=true. Needs gensim: pip install 'lmtransfer[vectors]'.
    """
    from lmtransfer.train_vectors import train_vectors

    result = train_vectors(corpus, output, progress=not quiet, **options)
    click.echo(
        f"{result.words:,} words x {result.dim} written to {result.output} "
        f"({result.lines:,} lines, {result.tokens:,} words of corpus, {result.seconds:.1f} s)"
    )


@cli.command("compare")
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
    `seeds`, `variants` (each a `name` and a `set` of dotted fields, as --set takes them) and `output_dir`.
    Each row trains in a child process and is appended to OUTPUT_DIR/results.jsonl with its metrics,
    extraction / training / evaluation seconds, peak RSS, cache bytes, trainable parameters and
    inference examples/s; feature-based variants share one extraction of the union of their layers.
    Run it again to resume: finished rows are skipped. The report (mean +- std over seeds, plots,
    a verdict) goes to stdout, OUTPUT_DIR/report.md and the self-contained OUTPUT_DIR/report.html.

    \b
    lmtransfer compare configs/demo.yaml
    lmtransfer compare configs/conll2003-table7.yaml --set compare.seeds=[1,2,3]
    lmtransfer compare --report-only runs/compare-demo
    """
    from lmtransfer.report import write_report

    if report_dir is not None:
        if config_path or overrides:
            raise click.UsageError("--report-only takes no CONFIG and no --set")
        report = write_report(Path(report_dir))
    else:
        if config_path is None:
            raise click.UsageError("give a compare CONFIG (e.g. configs/demo.yaml) or --report-only DIR")
        from lmtransfer.comparison import compare

        config = _config(config_path, overrides)
        if config.compare is None:
            raise LmtError("no 'compare:' section (see configs/demo.yaml)", path=config_path, field="compare")
        report = compare(config, progress=not quiet).report
    click.echo(report.markdown, nl=False)


@cli.group()
def cache() -> None:
    """List, verify and remove feature caches."""


def _root(cache_dir: str | None) -> Path:
    from lmtransfer.config import default_cache_dir

    return default_cache_dir(cache_dir)


@cache.command("ls")
@click.option("--cache-dir", default=None, help="default $LMTRANSFER_CACHE or ~/.cache/lmtransfer")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def cache_ls(cache_dir, as_json) -> None:
    """One line per cache: digest, model, layers, granularity, examples, size, state."""
    from lmtransfer.cache import list_caches
    from lmtransfer.extraction import human_bytes

    rows = list_caches(_root(cache_dir))
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo(f"no feature caches under {_root(cache_dir)}")
    for r in rows:
        state = "complete" if r["complete"] else f"partial {r['shards']}"
        click.echo(
            f"{r['digest']}  {Path(r['model']).name:<28} layers={r['layers']} {r['granularity']}/"
            f"{r['pooling']} {r['dtype']}  {r['examples']:>8,} ex  {human_bytes(r['bytes']):>9}  {state}"
        )


def _selected(cache_dir: str | None, digests: tuple[str, ...], everything: bool) -> list[Path]:
    from lmtransfer.cache import DIGEST_LENGTH, list_caches

    for digest in digests:  # never a path: '..', '/' or an empty prefix must not reach the file system
        if not re.fullmatch(f"[0-9a-f]{{1,{DIGEST_LENGTH}}}", digest):
            raise LmtError(
                f"'{digest}' is not a cache digest: 1 to {DIGEST_LENGTH} hex digits, as 'cache ls' shows",
                field="digest",
            )
    rows = list_caches(_root(cache_dir))
    if everything or not digests:
        return [Path(r["path"]) for r in rows]
    chosen = []
    for digest in digests:
        hits = [Path(r["path"]) for r in rows if r["digest"].startswith(digest)]
        if len(hits) != 1:
            raise LmtError(f"{'no' if not hits else 'more than one'} cache matches '{digest}'", field="digest")
        chosen += hits
    return chosen


@cache.command("verify")
@click.argument("digests", nargs=-1)
@click.option("--cache-dir", default=None)
@click.option("--no-repair", is_flag=True, help="only report; by default bad shards are dropped from the manifest")
def cache_verify(digests, cache_dir, no_repair) -> None:
    """Check sizes and sha256 checksums of every shard (all caches, or those whose digest starts with DIGESTS).

    Bad shards are dropped from the cache's manifest, so that the next extraction redoes only those.
    Exits 1 when anything was wrong.
    """
    from lmtransfer.cache import verify_cache

    bad = 0
    for directory in _selected(cache_dir, digests, False):
        problems = verify_cache(directory, repair=not no_repair)
        bad += bool(problems)
        click.echo(f"{directory.name}: {'ok' if not problems else 'BAD'}")
        for problem in problems:
            click.echo(f"  {problem}")
    sys.exit(1 if bad else 0)


@cache.command("rm")
@click.argument("digests", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="remove every cache")
@click.option("--cache-dir", default=None)
def cache_rm(digests, everything, cache_dir) -> None:
    """Remove caches by digest prefix (or --all)."""
    from lmtransfer.cache import remove_cache

    if not digests and not everything:
        raise click.UsageError("name DIGESTS or give --all")
    for directory in _selected(cache_dir, digests, everything):
        remove_cache(directory)
        click.echo(f"removed {directory}")


def main() -> None:
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
