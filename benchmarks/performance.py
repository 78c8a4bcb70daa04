"""Performance benchmark (issue 7): lmtransfer against the tools users would otherwise reach for.

How to run (about 30 minutes on a 2-core CPU; needs ../shared/data/sst2 and ../shared/data/conll2003,
and sentence-transformers, which `pip install -e .[bench]` adds):

    .venv/bin/python benchmarks/performance.py            # appends rows to benchmarks/results/performance.jsonl
    .venv/bin/python benchmarks/performance.py --table    # the Markdown tables and target checks from that file

Everything runs on the same machine in one invocation, each measurement in its own process (so that
peak RSS is that tool's alone), on MiniLM (all-MiniLM-L6-v2), max length 128:

- extraction: a fixed 10,000-sentence sample of SST-2 train and all 14,041 CoNLL-2003 train sentences
  (words joined by spaces), through lmtransfer (all 7 hidden states, mean-pooled per sentence, written
  to its cache), the `transformers` feature-extraction pipeline (batch 32) and sentence-transformers
  `encode` (batch 32 and 64). Tokens are real tokens, special tokens included, padding excluded.
- lmtransfer with bfloat16 compute, and with int8 storage; the SST-2 dev accuracy of a linear head on
  each against float32 compute;
- the full SST-2 train set (67,349 sentences) through lmtransfer, for peak RSS;
- fine-tuning on a 4,000-sentence SST-2 subset, 1 epoch, batch 32: lmtransfer against the HF Trainer
  (default settings, and with its own group_by_length for reference);
- the machine's float32 matmul peak, measured here, to express each tool's FLOP/s as a fraction of it.
"""

from __future__ import annotations

import datetime
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _bench import parser

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "performance.jsonl"
CACHE = HERE / "results" / "perf-cache"
MAX_LENGTH, SAMPLE, SEED = 128, 10_000, 13
FT_SUBSET, FT_EPOCHS, FT_BATCH = 4_000, 1, 32

EXTRACTORS = ["lmtransfer", "lmtransfer-int8", "lmtransfer-bf16", "pipeline", "st-32", "st-64"]
CONLL_EXTRACTORS = ["lmtransfer", "lmtransfer-words", "pipeline", "st-32", "st-64"]


# ---------------------------------------------------------------- data


def sst2_config(data: Path, *extra: str):
    from lmtransfer import load_config

    sst2 = data / "sst2"
    return load_config(
        None,
        [
            f"data.train={sst2 / 'train.tsv'}",
            f"data.dev={sst2 / 'dev.tsv'}",
            f"data.test={sst2 / 'test_labeled.tsv'}",
            "data.text_column=sentence",
            f"data.split_seed={SEED}",
            "encoder.model=minilm",
            f"encoder.max_length={MAX_LENGTH}",
            "features.layers=all",
            "features.pooling=mean",
            f"train.seed={SEED}",
            f"cache_dir={CACHE}",
            *extra,
        ],
    )


def sst2_texts(data: Path, sample: int | None = SAMPLE) -> list[str]:
    """The SST-2 train sentences a run with data.max_train_examples=sample trains on (all when None)."""
    from lmtransfer.data import load_classification

    config = sst2_config(data, *([f"data.max_train_examples={sample}"] if sample else []))
    return load_classification(config.data).train.texts


def conll_sentences(data: Path) -> list[list[str]]:
    """Words of each CoNLL-2003 train sentence (a minimal reader: first column, blank-line separated)."""
    sentences, words = [], []
    for line in (data / "conll2003" / "eng.train").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(words)
            words = []
        else:
            words.append(line.split()[0])
    if words:
        sentences.append(words)
    return sentences


def texts_for(corpus: str, data: Path) -> list:
    if corpus == "sst2":
        return sst2_texts(data)
    if corpus == "sst2-full":
        return sst2_texts(data, None)
    sentences = conll_sentences(data)
    return sentences if corpus == "conll-words" else [" ".join(words) for words in sentences]


# ---------------------------------------------------------------- measurements (each in a child process)


def peak_rss() -> int:
    from lmtransfer.pipeline import peak_rss_bytes

    return peak_rss_bytes()


def count_tokens(texts: list) -> int:
    from lmtransfer.encoders import load_encoder

    tokenizer = load_encoder("minilm").tokenizer
    split = bool(texts) and not isinstance(texts[0], str)
    enc = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, is_split_into_words=split)
    return sum(len(ids) for ids in enc["input_ids"])


def matmul_peak() -> dict:
    """Best float32 (and bfloat16) matmul rate over a few shapes, including MiniLM's own."""
    import torch

    def rate(m: int, k: int, n: int, dtype) -> float:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b
        best = 0.0
        for _ in range(5):  # the best of five short windows: a shared VM has noisy neighbours
            reps, began = 0, time.perf_counter()
            while time.perf_counter() - began < 0.3:
                a @ b
                reps += 1
            best = max(best, 2 * m * k * n * reps / (time.perf_counter() - began))
        return best

    shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (512, 384, 1536), (512, 1536, 384), (2048, 384, 1536)]
    fp32 = max(rate(*s, torch.float32) for s in shapes)
    bf16 = rate(512, 512, 512, torch.bfloat16)  # emulated on CPUs without bfloat16 units: slow, keep it small
    return {"fp32_flops": fp32, "bf16_flops": bf16, "threads": torch.get_num_threads()}


def extract_lmtransfer(corpus: str, tool: str, data: Path) -> dict:
    from lmtransfer.encoders import load_encoder
    from lmtransfer.extraction import extract
    from lmtransfer.features import FeatureSpec

    texts = texts_for("conll-words" if tool == "lmtransfer-words" else corpus, data)
    encoder = load_encoder("minilm")
    granularity, pooling = ("word", "first") if tool == "lmtransfer-words" else ("sentence", "mean")
    spec = FeatureSpec(tuple(range(encoder.num_layers + 1)), granularity, pooling, MAX_LENGTH)
    dtype = "int8" if tool == "lmtransfer-int8" else "float16"
    compute = "bfloat16" if tool == "lmtransfer-bf16" else "float32"
    root = CACHE if corpus == "sst2" else CACHE / corpus  # the SST-2 sample's cache is reused for accuracy
    done = extract(encoder, texts, spec, root, dtype=dtype, compute=compute, batch_size=64, progress=False)
    if done.examples != len(texts):
        raise SystemExit(f"{done.cache.directory} was already (partly) there: clear {CACHE} first")
    row = {"tokens": done.tokens, "seconds": done.seconds, "cache_bytes": done.cache.nbytes}
    if corpus == "sst2-full":
        shutil.rmtree(done.cache.directory)  # 350 MB nobody reads
    return row


def extract_pipeline(texts: list[str]) -> dict:
    from transformers import pipeline

    from lmtransfer.encoders import resolve_model

    path = resolve_model("minilm")
    pipe = pipeline("feature-extraction", model=path, tokenizer=path, device="cpu")
    kwargs = {"truncation": True, "max_length": MAX_LENGTH}
    began = time.perf_counter()
    for out in pipe((t for t in texts), batch_size=32, tokenize_kwargs=kwargs):
        np.asarray(out[0]).mean(axis=0)  # what a user does next: one vector per text
    return {"seconds": time.perf_counter() - began}


def extract_st(texts: list[str], batch: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from lmtransfer.encoders import resolve_model

    model = SentenceTransformer(str(resolve_model("minilm")), device="cpu")
    model.max_seq_length = MAX_LENGTH
    began = time.perf_counter()
    model.encode(texts, batch_size=batch)
    return {"seconds": time.perf_counter() - began}


def extraction(corpus: str, tool: str, data: Path) -> dict:
    texts = texts_for(corpus, data)
    if tool.startswith("lmtransfer"):
        row = extract_lmtransfer(corpus, tool, data)
    elif tool == "pipeline":
        row = extract_pipeline(texts)
    else:
        row = extract_st(texts, int(tool.split("-")[1]))
    row.setdefault("tokens", count_tokens(texts))
    return {"kind": "extraction", "corpus": corpus, "tool": tool, "examples": len(texts), **row, "peak_rss": peak_rss()}


def accuracy(variant: str, data: Path) -> dict:
    """SST-2 dev accuracy of a linear head on the 10k sample's cached features (extracted before)."""
    from lmtransfer import train

    extra = {"float32": [], "bfloat16": ["features.compute=bfloat16"], "int8": ["features.dtype=int8"]}[variant]
    config = sst2_config(
        data,
        f"data.max_train_examples={SAMPLE}",
        "strategy=feature",
        "head.type=linear",
        f"output_dir={HERE / 'results' / ('perf-acc-' + variant)}",
        *extra,
    )
    metrics = train(config, progress=False).metrics
    return {"kind": "accuracy", "variant": variant, "dev_accuracy": metrics["dev"]["accuracy"]}


def finetuning(tool: str, data: Path) -> dict:
    import sst2_finetune as ft

    results = HERE / "results"
    if tool == "lmtransfer":
        # the later train.epochs override wins over the variant's own
        row = ft.run_variant("finetune", data / "sst2", results, subset=FT_SUBSET, extra=[f"train.epochs={FT_EPOCHS}"])
    else:
        row = ft.run_trainer(
            data / "sst2", results, subset=FT_SUBSET, epochs=FT_EPOCHS, group_by_length=tool.endswith("grouped")
        )
    return {
        "kind": "finetuning",
        "tool": tool,
        "examples": FT_SUBSET,
        "tokens": row["train_tokens"],
        "seconds": row["train_seconds"],
        "dev_accuracy": row["dev_accuracy"],
        "peak_rss": row["peak_rss_bytes"],
    }


def child(step: str, data: Path) -> dict:
    kind, _, rest = step.partition(":")
    if kind == "peak":
        return {"kind": "peak", **matmul_peak()}
    if kind == "extraction":
        corpus, tool = rest.split(":")
        return extraction(corpus, tool, data)
    if kind == "accuracy":
        return accuracy(rest, data)
    return finetuning(rest, data)


def steps() -> list[str]:
    return [
        "peak",
        *(f"extraction:sst2:{tool}" for tool in EXTRACTORS),
        *(f"accuracy:{variant}" for variant in ("float32", "bfloat16", "int8")),
        *(f"extraction:conll:{tool}" for tool in CONLL_EXTRACTORS),
        "extraction:sst2-full:lmtransfer",
        *(f"finetuning:{tool}" for tool in ("lmtransfer", "hf-trainer", "hf-trainer-grouped")),
    ]


# ---------------------------------------------------------------- the table


def model_flops_per_token(training: bool, tokens_per_text: float) -> float:
    """Useful FLOPs per real token of MiniLM: the dense maps plus attention over the text's own tokens."""
    layers, hidden, inner = 6, 384, 1536
    dense = 2 * layers * (4 * hidden * hidden + 2 * hidden * inner)
    attention = 2 * layers * 2 * hidden * tokens_per_text  # scores and the weighted sum
    return (dense + attention) * (3 if training else 1)  # backward ~ twice the forward


def latest_run(path: Path) -> list[dict]:
    """The last row of each step (a step may have been run again on its own with --only)."""
    latest = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest.pop(row["step"], None)  # re-inserted: the table keeps the order the steps last ran in
            latest[row["step"]] = row
    return list(latest.values())


def table(path: Path) -> str:
    rows = latest_run(path)
    peak = next(r for r in rows if r["kind"] == "peak")["fp32_flops"]
    naive_per_token = 7 * 384 * 4  # float32, every layer, every token
    dates = sorted({r["date"] for r in rows})
    out = [f"{', '.join(dates)}, {rows[0]['machine']}; float32 matmul peak measured {peak / 1e9:,.0f} GFLOP/s.", ""]
    for corpus in ("sst2", "conll", "sst2-full"):
        found = [r for r in rows if r["kind"] == "extraction" and r["corpus"] == corpus]
        if not found:
            continue
        st = max((r["tokens"] / r["seconds"] for r in found if r["tool"].startswith("st-")), default=None)
        pipe = next((r["tokens"] / r["seconds"] for r in found if r["tool"] == "pipeline"), None)
        out += [
            f"Extraction, {corpus} ({found[0]['examples']:,} texts, {found[0]['tokens']:,} tokens):",
            "",
            "| tool | tokens/s | vs pipeline | vs best sentence-transformers | % of matmul peak | "
            "cache bytes/text | cache bytes/token | cache vs naive float32 | peak RSS |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in found:
            speed = r["tokens"] / r["seconds"]
            per_text = r["tokens"] / r["examples"]
            cache = r.get("cache_bytes")
            naive = naive_per_token * r["tokens"]
            per_text_bytes = f"{cache / r['examples']:,.0f}" if cache else ""
            per_token_bytes = f"{cache / r['tokens']:,.0f} (naive {naive_per_token:,})" if cache else ""
            vs_naive = f"1/{naive / cache:.1f}" if cache else ""
            out.append(
                f"| {r['tool']} | {speed:,.0f} | {f'{speed / pipe:.2f}x' if pipe else ''} | "
                f"{f'{speed / st:.2f}x' if st else ''} | "
                f"{100 * speed * model_flops_per_token(False, per_text) / peak:.0f}% | "
                f"{per_text_bytes} | {per_token_bytes} | {vs_naive} | "
                f"{r['peak_rss'] / 2**20:,.0f} MiB |"
            )
        out.append("")
    accuracy = {r["variant"]: r["dev_accuracy"] for r in rows if r["kind"] == "accuracy"}
    if accuracy:
        out += ["SST-2 dev accuracy, linear head on the 10k sample's features: "]
        out += [", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()), ""]
    tuned = [r for r in rows if r["kind"] == "finetuning"]
    if tuned:
        trainer = next((r for r in tuned if r["tool"] == "hf-trainer"), None)
        out += [
            f"Fine-tuning, SST-2 {FT_SUBSET:,}-sentence subset, {FT_EPOCHS} epoch, batch {FT_BATCH}:",
            "",
            "| tool | train tokens/s | vs HF Trainer | % of matmul peak | dev accuracy | peak RSS |",
            "|---|---|---|---|---|---|",
        ]
        for r in tuned:
            speed = r["tokens"] / r["seconds"]
            flops = speed * model_flops_per_token(True, r["tokens"] / r["examples"] / FT_EPOCHS)
            ratio = f"{speed / (trainer['tokens'] / trainer['seconds']):.2f}x" if trainer else ""
            out.append(
                f"| {r['tool']} | {speed:,.0f} | {ratio} | {100 * flops / peak:.0f}% | {r['dev_accuracy']:.4f} | "
                f"{r['peak_rss'] / 2**20:,.0f} MiB |"
            )
    return "\n".join(out)


def main() -> None:
    args = parser(__doc__, DATA, OUT, "run just these steps (names as in the log)").parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data)))
        return
    if args.table:
        print(table(args.out))
        return
    for needed in ("sst2/train.tsv", "conll2003/eng.train"):
        if not (args.data / needed).is_file():
            sys.exit(f"skipped: {args.data / needed} not found (see ../shared/data/README.md)")
    from lmtransfer.atomic import append_jsonl

    if not args.only:
        shutil.rmtree(CACHE, ignore_errors=True)
    common = {
        "benchmark": "performance",
        "run": datetime.datetime.now().isoformat(timespec="seconds"),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cores()} cores",
        "model": "minilm",
        "max_length": MAX_LENGTH,
    }
    for step in args.only or steps():
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", step, "--data", str(args.data)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        row = {**common, "step": step, **json.loads(proc.stdout.strip().splitlines()[-1])}
        append_jsonl(args.out, row)
        print(f"{step}: {time.perf_counter() - began:.0f} s", flush=True)
    print(table(args.out))


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
