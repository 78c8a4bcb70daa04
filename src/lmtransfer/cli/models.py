"""``lmtransfer fill-mask``, ``pretrain`` and ``train-vectors``: masked language models and word vectors."""

from __future__ import annotations

import json

import click

from lmtransfer.cli.options import quiet_libraries, renamed, required


@click.command("fill-mask")
@click.argument("texts", nargs=-1, required=True)
@click.option(
    "--model", "-m", required=True, help="a masked LM: local dir, hub id or alias (a 'pretrain' output dir works)"
)
@click.option("--quiet", "-q", is_flag=True, help="no library progress bars or warnings")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(min=1), help="tokens listed per mask")
@click.option(
    "--targets",
    default=None,
    metavar="W1,W2,...",
    help="score only these comma-separated words, each a single token of the vocabulary (all are listed; "
    "--top-k is then ignored)",
)
def fill_mask_command(texts, model, quiet, top_k, targets) -> None:
    """The most likely tokens, with probabilities, for each mask in TEXTS.

    Mark a mask as [MASK], <mask> or {mask}, whatever the model's own mask token; a text may hold
    several. Prints one JSON line per text: {"text", "masks"}, with one list per mask of
    {"token", "token_id", "score", "sequence"}, most likely first. A model without a masked-LM head
    (all-MiniLM-L6-v2, say) is refused: 'lmtransfer pretrain' gives it one.
    """
    if quiet:
        quiet_libraries()
    from lmtransfer.tasks.fill_mask import fill_mask

    words = None if targets is None else [word.strip() for word in targets.split(",") if word.strip()]
    results = fill_mask(model, list(texts), top_k=top_k, targets=words)
    for text, masks in zip(texts, results):
        click.echo(json.dumps({"text": text, "masks": masks}, ensure_ascii=False))


@click.command("pretrain")
@click.option("--model", "-m", required=True, help="encoder to train: local dir, hub id or alias (minilm, ...)")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    help="the corpus: UTF-8 plain text, one document or sentence per line (blank lines skipped); required",
)
@renamed("--corpus", "--data", "data", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", help="where the masked LM is written (replaced if it exists); required")
@renamed("--output-dir", "--output", "output")
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
    data,
    output,
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
    from lmtransfer.training.pretrain import pretrain

    result = pretrain(
        model,
        required(data, "--data"),
        required(output, "--output"),
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


@click.command("train-vectors")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    help="the corpus: UTF-8 plain text, one sentence or document per line (blank lines skipped); required",
)
@renamed("--corpus", "--data", "data", type=click.Path(exists=True, dir_okay=False))
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
def train_vectors_command(data, output, quiet, **options) -> None:
    """Train word2vec vectors (gensim) on a plain-text corpus.

    Lines are split into words as static-vectors encoders split text (whitespace and punctuation), so
    the output serves directly as --model (or encoder.model) of a run: frozen with the default strategy,
    updated with --set encoder.update_vectors=true. Needs gensim: pip install gensim (the 'vectors' extra).
    """
    from lmtransfer.encoders.word2vec import train_vectors

    result = train_vectors(required(data, "--data"), output, progress=not quiet, **options)
    click.echo(
        f"{result.words:,} words x {result.dim} written to {result.output} "
        f"({result.lines:,} lines, {result.tokens:,} words of corpus, {result.seconds:.1f} s)"
    )
