"""Loading a causal LM from a GGUF file: transformers reading the file (the first load, which also writes the
float32 copy into an empty cache) against later loads from that copy, in one run, with the weights hash of
each (they must be equal: a prompt run checks its model by it).

    .venv/bin/python benchmarks/gguf_load.py                 # smollm2; rows: results/gguf_load.jsonl
    .venv/bin/python benchmarks/gguf_load.py --model path/to/model.gguf --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

from _bench import cpu

OUT = Path(__file__).resolve().parent / "results" / "gguf_load.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--repeats", type=int, default=3, help="loads from the copy")
    args = parser.parse_args()
    os.environ["LMTRANSFER_CACHE"] = tempfile.mkdtemp(prefix="gguf-load-")  # an empty cache: the first load converts
    import torch

    from lmtransfer.encoders.causal_lm import load_causal_lm
    from lmtransfer.runs.prompt_run import weights_hash

    torch.set_num_threads(2)

    def timed() -> tuple[float, str]:
        start = time.perf_counter()
        lm = load_causal_lm(args.model)
        return time.perf_counter() - start, weights_hash(lm)

    first, first_hash = timed()
    later = [timed() for _ in range(args.repeats)]
    row = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "model": args.model,
        "first_load_seconds": round(first, 2), "copy_load_seconds": [round(s, 2) for s, _ in later],
        "same_weights": all(h == first_hash for _, h in later), "speedup": round(first / min(s for s, _ in later), 1),
        **cpu(),
    }  # fmt: skip
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
