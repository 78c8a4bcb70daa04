"""Thread contention (issue 7): torch's default threads against 1 thread, on an idle CPU and with other
processes keeping every core busy.

    .venv/bin/python benchmarks/threads.py          # ~4 minutes on 2 cores; rows to benchmarks/results/threads.jsonl
    .venv/bin/python benchmarks/threads.py --table

Two workloads, each case in its own process: MiniLM extraction of 1,500 SST-2 train sentences (all
7 layers, mean-pooled, float16 cache), and a BiLSTM training step (embeddings 20,000 x 100, BiLSTM 128
per direction, max-pooled, Adam; batch 64 x 30 tokens, 30 steps). "Busy" = one process spinning on
each core (``while True: pass``) while the case runs.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import cpu

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "threads.jsonl"


def extraction(threads: int, data: Path) -> dict:
    import torch

    torch.set_num_threads(threads)
    import performance
    from lmtransfer.encoders.loading import load_encoder
    from lmtransfer.features.extraction import extract
    from lmtransfer.features.pooling import FeatureSpec

    texts = performance.sst2_texts(data)[:1500]
    encoder = load_encoder("minilm")
    with tempfile.TemporaryDirectory() as cache:
        done = extract(encoder, texts, FeatureSpec(tuple(range(7)), "sentence", "mean", 128), cache, progress=False)
    return {"tokens_per_second": done.tokens / done.seconds}


def bilstm(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    embed, lstm, out = (
        torch.nn.Embedding(20_000, 100),
        torch.nn.LSTM(100, 128, batch_first=True, bidirectional=True),
        torch.nn.Linear(256, 2),
    )
    params = [*embed.parameters(), *lstm.parameters(), *out.parameters()]
    optimizer = torch.optim.Adam(params)
    x, y = torch.randint(0, 20_000, (64, 30)), torch.randint(0, 2, (64,))
    steps, began = 30, time.perf_counter()
    for _ in range(steps):
        h, _ = lstm(embed(x))  # (B, T, 256)
        loss = torch.nn.functional.cross_entropy(out(h.amax(dim=1)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"seconds_per_step": (time.perf_counter() - began) / steps}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {(r["busy"], r["workload"], r["threads"]): r for r in rows}
    out = ["| workload | other busy processes | torch threads | speed |", "|---|---|---|---|"]
    for (busy, workload, threads), r in latest.items():
        speed = (
            f"{r['tokens_per_second']:,.0f} tokens/s"
            if workload == "extraction"
            else f"{r['seconds_per_step']:.3f} s/step"
        )
        out.append(f"| {workload} | {busy} | {threads} | {speed} |")
    return "\n".join(out)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        workload, threads = sys.argv[2], int(sys.argv[3])
        row = extraction(threads, DATA) if workload == "extraction" else bilstm(threads)
        print(json.dumps(row))
        return
    if sys.argv[1:2] == ["--table"]:
        print(table(OUT))
        return
    if not (DATA / "sst2" / "train.tsv").is_file():
        sys.exit(f"skipped: {DATA / 'sst2'} not found (see ../shared/data/README.md)")
    from lmtransfer.core.atomic import append_jsonl
    from lmtransfer.core.threads import usable_cores

    cores = usable_cores()
    for busy in (0, cores):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        time.sleep(3 if busy else 0)
        try:
            for workload in ("extraction", "bilstm"):
                for threads in (cores, 1):
                    proc = subprocess.run(
                        [sys.executable, __file__, "--child", workload, str(threads)],
                        stdout=subprocess.PIPE,
                        text=True,
                        check=True,
                        cwd=HERE,
                    )
                    row = {
                        "benchmark": "threads",
                        "date": datetime.date.today().isoformat(),
                        **cpu(),
                        "cores": cores,
                        "busy": busy,
                        "workload": workload,
                        "threads": threads,
                        **json.loads(proc.stdout.strip().splitlines()[-1]),
                    }
                    append_jsonl(OUT, row)
                    print(json.dumps(row), flush=True)
        finally:
            for spinner in spinners:
                spinner.kill()
    print(table(OUT))


if __name__ == "__main__":
    main()
