"""Performance benchmark (issue 7): lmtransfer against the tools users would otherwise reach for.

How to run (about 30 minutes on a 2-core CPU, 6 on one GPU; needs ../shared/data/sst2 and
../shared/data/conll2003, and sentence-transformers, which `pip install -e .[bench]` adds):

    .venv/bin/python benchmarks/performance.py            # appends rows to benchmarks/results/performance.jsonl
    .venv/bin/python benchmarks/performance.py --device cuda --out benchmarks/results/performance-gpu.jsonl
    .venv/bin/python benchmarks/performance.py --table    # the Markdown tables and target checks from that file
    .venv/bin/python benchmarks/performance.py --smoke --out /tmp/perf.jsonl   # every step on a few texts

On a GPU every tool runs there, every extraction reads all 67,349 SST-2 train sentences (a 10,000
sample is over in a second), fine-tuning trains on 10,000 of them, and the float32 and bfloat16
rows of fine-tuning are measured for lmtransfer and the Trainer alike.

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
- the machine's float32 and bfloat16 matmul peaks (torch) and int8 peak (ONNX Runtime's MatMulInteger), measured
  here, to express each tool's FLOP/s as a fraction of the peak of its arithmetic.
"""

from __future__ import annotations

import datetime
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _bench import cpu, handled, parser, run_steps

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "performance.jsonl"
CACHE = HERE / "results" / "perf-cache"
MAX_LENGTH, SAMPLE, SEED = 128, 10_000, 13
FT_SUBSET, FT_EPOCHS, FT_BATCH = 4_000, 1, 32
FT_SUBSET_GPU = 10_000
SMOKE = 300  # --smoke: texts per corpus (and fine-tuning examples)

# set from the command line (the parent passes them on to each child)
DEVICE = "cpu"
SMOKE_RUN = False

EXTRACTORS = ["lmtransfer", "lmtransfer-int8", "lmtransfer-bf16", "pipeline", "st-32", "st-64"]
# issue 19: the CPU paths (ONNX Runtime float32 and int8 weights; compute auto) and sentence-transformers in
# bfloat16 (model_kwargs dtype), run with --only (see FAST_CPU below)
FAST_EXTRACTORS = ["lmtransfer-auto", "lmtransfer-onnx", "lmtransfer-onnx-int8", "st-64-bf16"]
FAST_CPU = [
    "peak",
    *(f"extraction:sst2:{tool}" for tool in ["lmtransfer", "lmtransfer-bf16", *FAST_EXTRACTORS, "st-32", "st-64"]),
    *(f"accuracy:{variant}" for variant in ("float32", "bfloat16", "onnx", "onnx-int8")),
    *(f"finetuning:{tool}" for tool in ("lmtransfer", "lmtransfer-bf16")),
]
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
    from lmtransfer.data.tables import load_classification

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
        texts = sst2_texts(data)
    elif corpus == "sst2-full":
        texts = sst2_texts(data, None)
    else:
        sentences = conll_sentences(data)
        texts = sentences if corpus == "conll-words" else [" ".join(words) for words in sentences]
    return texts[:SMOKE] if SMOKE_RUN else texts


def ft_subset() -> int:
    return SMOKE if SMOKE_RUN else FT_SUBSET_GPU if DEVICE != "cpu" else FT_SUBSET


# ---------------------------------------------------------------- measurements (each in a child process)


def peak_memory() -> dict:
    """Peak RSS, and on a GPU its peak allocated memory too."""
    from lmtransfer.core.devices import peak_memory

    found = peak_memory()
    return {"peak_rss": found["peak_rss_bytes"], **({"peak_gpu": found["peak_gpu_bytes"]} if DEVICE != "cpu" else {})}


def count_tokens(texts: list) -> int:
    from lmtransfer.encoders.loading import load_encoder

    tokenizer = load_encoder("minilm").tokenizer
    split = bool(texts) and not isinstance(texts[0], str)
    enc = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, is_split_into_words=split)
    return sum(len(ids) for ids in enc["input_ids"])


def matmul_peak() -> dict:
    """Best float32 (and bfloat16) matmul rate over a few shapes, including MiniLM's own, on DEVICE.

    On a GPU float32 means IEEE float32 (torch's default: no TF32), the arithmetic lmtransfer's
    float32 rows use."""
    import torch

    gpu = DEVICE != "cpu"

    def rate(m: int, k: int, n: int, dtype) -> float:
        a, b = torch.randn(m, k, dtype=dtype, device=DEVICE), torch.randn(k, n, dtype=dtype, device=DEVICE)
        return best_rate(lambda: a @ b, 2 * m * k * n, torch.cuda.synchronize if gpu else None)

    if gpu:
        shapes = [(4096, 4096, 4096), (8192, 8192, 8192), (16384, 384, 1536)]
        fp32 = max(rate(*s, torch.float32) for s in shapes)
        bf16 = max(rate(*s, torch.bfloat16) for s in shapes)
        return {"fp32_flops": fp32, "bf16_flops": bf16, "device_name": torch.cuda.get_device_name()}
    shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (512, 384, 1536), (512, 1536, 384), (2048, 384, 1536)]
    fp32 = max(rate(*s, torch.float32) for s in shapes)
    from lmtransfer.core.devices import native_bfloat16

    if native_bfloat16("cpu"):  # AVX512-BF16 or AMX: the same shapes as float32
        bf16 = max(rate(*s, torch.bfloat16) for s in shapes)
    else:  # emulated on CPUs without bfloat16 units: slow, keep it small
        bf16 = rate(512, 512, 512, torch.bfloat16)
    found = {"fp32_flops": fp32, "bf16_flops": bf16, "threads": torch.get_num_threads()}
    from lmtransfer.encoders.onnx import onnxruntime_available

    if onnxruntime_available():
        found["int8_ops"] = max(int8_rate(*s, torch.get_num_threads()) for s in shapes)
    return found


def int8_rate(m: int, k: int, n: int, threads: int) -> float:
    """ONNX Runtime's int8 matmul rate (uint8 activations times int8 weights into int32: ``MatMulInteger``,
    the kernel under the int8 graph's quantised matmuls), in operations per second, best of five windows.

    torch has no public CPU int8 matmul for this, so the probe is a one-node ONNX graph."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "int8_peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnxruntime 1.32 reads
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"A": rng.integers(0, 256, (m, k), dtype=np.uint8)}
    return best_rate(lambda: session.run(None, feed), 2 * m * k * n)


def best_rate(run: Callable[[], object], ops: int, synchronize: Callable[[], None] | None = None) -> float:
    """``ops`` per call of ``run``, per second: the best of five windows of 0.3 s (a shared VM has noisy
    neighbours), after one call to warm up. ``synchronize`` waits for queued GPU work (every 20 calls,
    and at the end of each window)."""
    run()
    best = 0.0
    for _ in range(5):
        reps, began = 0, time.perf_counter()
        while time.perf_counter() - began < 0.3:
            run()
            reps += 1
            if synchronize and reps % 20 == 0:
                synchronize()
        if synchronize:
            synchronize()
        best = max(best, ops * reps / (time.perf_counter() - began))
    return best


def extract_lmtransfer(corpus: str, tool: str, data: Path) -> dict:
    from lmtransfer.encoders.loading import load_encoder
    from lmtransfer.features.extraction import extract
    from lmtransfer.features.pooling import FeatureSpec

    texts = texts_for("conll-words" if tool == "lmtransfer-words" else corpus, data)
    encoder = load_encoder("minilm")
    granularity, pooling = ("word", "first") if tool == "lmtransfer-words" else ("sentence", "mean")
    spec = FeatureSpec(tuple(range(encoder.num_layers + 1)), granularity, pooling, MAX_LENGTH)
    dtype = "int8" if tool == "lmtransfer-int8" else "float16"
    compute = {"lmtransfer-bf16": "bfloat16", "lmtransfer-auto": "auto"}.get(tool, "float32")
    backend = "onnx" if tool.startswith("lmtransfer-onnx") else "torch"
    quantize = "int8" if tool == "lmtransfer-onnx-int8" else "none"
    root = CACHE if corpus == "sst2" else CACHE / corpus  # the SST-2 sample's cache is reused for accuracy
    if tool == "lmtransfer-auto":  # auto resolves to float32 or bfloat16: a cache another row also makes
        root = root / "auto"
    batch = 64 if DEVICE == "cpu" else None  # on a GPU: lmtransfer's default there
    export_seconds = None
    if backend == "onnx":  # the graph is made once per weights (and kept): timed apart from extraction
        from lmtransfer.encoders.onnx import ensure_graph

        began = time.perf_counter()
        ensure_graph(encoder, root, quantize, progress=False)
        export_seconds = time.perf_counter() - began
    done = extract(
        encoder,
        texts,
        spec,
        root,
        dtype=dtype,
        compute=compute,
        batch_size=batch,
        progress=False,
        backend=backend,
        quantize=quantize,
    )
    if done.examples != len(texts):
        raise SystemExit(f"{done.cache.directory} was already (partly) there: clear {CACHE} first")
    row = {"tokens": done.tokens, "seconds": done.seconds, "cache_bytes": done.cache.nbytes}
    row["compute"] = done.cache.key["compute"]
    if export_seconds is not None:
        row["export_seconds"] = export_seconds
    if corpus == "sst2-full":
        shutil.rmtree(done.cache.directory)  # 350 MB nobody reads
    return row


def extract_pipeline(texts: list[str]) -> dict:
    from transformers import pipeline

    from lmtransfer.encoders.loading import resolve_model

    path = resolve_model("minilm")
    pipe = pipeline("feature-extraction", model=path, tokenizer=path, device=DEVICE)
    kwargs = {"truncation": True, "max_length": MAX_LENGTH}
    began = time.perf_counter()
    for out in pipe((t for t in texts), batch_size=32, tokenize_kwargs=kwargs):
        np.asarray(out[0]).mean(axis=0)  # what a user does next: one vector per text
    return {"seconds": time.perf_counter() - began}


def extract_st(texts: list[str], batch: int, bf16: bool = False) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from lmtransfer.encoders.loading import resolve_model

    kwargs = {"model_kwargs": {"dtype": torch.bfloat16}} if bf16 else {}  # transformers 5's name of torch_dtype
    model = SentenceTransformer(str(resolve_model("minilm")), device=DEVICE, **kwargs)
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
        row = extract_st(texts, int(tool.split("-")[1]), bf16=tool.endswith("-bf16"))
    row.setdefault("tokens", count_tokens(texts))
    return {"kind": "extraction", "corpus": corpus, "tool": tool, "examples": len(texts), **row, **peak_memory()}


def accuracy(variant: str, data: Path) -> dict:
    """SST-2 dev accuracy of a linear head on the 10k sample's cached features (extracted before)."""
    from lmtransfer import train

    extra = {
        "float32": ["features.compute=float32"],
        "bfloat16": ["features.compute=bfloat16"],
        "int8": ["features.compute=float32", "features.dtype=int8"],
        "onnx": ["features.backend=onnx"],
        "onnx-int8": ["features.backend=onnx", "features.quantize=int8"],
    }[variant]
    config = sst2_config(
        data,
        f"data.max_train_examples={SMOKE if SMOKE_RUN else SAMPLE}",
        "strategy=feature",
        "head.type=linear",
        f"output_dir={HERE / 'results' / ('perf-acc-' + variant)}",
        *extra,
    )
    metrics = train(config, progress=False).metrics
    examples = SMOKE if SMOKE_RUN else SAMPLE
    return {"kind": "accuracy", "variant": variant, "examples": examples, "dev_accuracy": metrics["dev"]["accuracy"]}


def finetuning(tool: str, data: Path) -> dict:
    import sst2_finetune as ft

    results = HERE / "results"
    subset, bf16 = ft_subset(), tool.endswith("-bf16")
    if tool.startswith("lmtransfer"):
        # later overrides win over the variant's own; float32 unless asked (lmtransfer's default on a
        # GPU is bfloat16 autocast, the Trainer's float32: each is compared with the other at the same one)
        extra = [f"train.epochs={FT_EPOCHS}", f"train.mixed_precision={'bf16' if bf16 else 'no'}"]
        row = ft.run_variant("finetune", data / "sst2", results, subset=subset, extra=extra)
    else:
        grouped = tool.endswith("grouped")
        row = ft.run_trainer(
            data / "sst2", results, subset=subset, epochs=FT_EPOCHS, group_by_length=grouped, device=DEVICE, bf16=bf16
        )
    return {
        "kind": "finetuning",
        "tool": tool,
        "examples": subset,
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
    if DEVICE != "cpu":
        return [  # what the targets need first: a device lease may end before the last step
            "peak",
            *(f"extraction:sst2-full:{tool}" for tool in EXTRACTORS if tool != "lmtransfer-int8"),
            *(f"accuracy:{variant}" for variant in ("float32", "bfloat16")),
            *(f"finetuning:{tool}" for tool in ("lmtransfer", "hf-trainer", "lmtransfer-bf16", "hf-trainer-bf16")),
            *(f"extraction:conll:{tool}" for tool in CONLL_EXTRACTORS),
        ]
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
    """The last row of each step (a step may have been run again on its own with --only), among the rows
    measured on the machine of the file's last row: a ratio never sets one machine's row against another's."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    here = _machine(rows[-1]) if rows else None
    latest = {}
    for row in rows:
        if _machine(row) == here:
            latest.pop(row["step"], None)  # re-inserted: the table keeps the order the steps last ran in
            latest[row["step"]] = row
    return list(latest.values())


def _machine(row: dict) -> tuple:
    """What a row ran on, as far as speed goes (rows from before the instruction sets were recorded differ)."""
    return row.get("device"), row.get("cpu"), tuple(row.get("isa") or ()), row.get("cores"), row.get("gpu")


def _peak_for(tool: str, peaks: dict, compute: str | None = None) -> float:
    """The matmul peak a row is measured against: bfloat16's for bfloat16 rows (by name, or by the compute
    the row's cache records: ``auto`` resolved) where the hardware does bfloat16 faster than float32,
    else float32's (a CPU that emulates bfloat16). The int8-weights rows (ONNX Runtime) against the int8
    matmul peak where it was measured (rows from before 2026-12-06 have none: float32's, which they can
    pass); only their dense maps are int8 (attention and the rest stay float32)."""
    if tool == "lmtransfer-onnx-int8" and peaks.get("int8_ops"):
        return peaks["int8_ops"]
    native = peaks["bf16_flops"] > peaks["fp32_flops"]
    bf16 = tool.endswith("bf16") or compute == "bfloat16"
    return peaks["bf16_flops"] if bf16 and native else peaks["fp32_flops"]


def _memory(r: dict) -> str:
    gpu = f" (GPU {r['peak_gpu'] / 2**20:,.0f} MiB)" if r.get("peak_gpu") else ""
    return f"{r['peak_rss'] / 2**20:,.0f} MiB{gpu}"


def table(path: Path) -> str:
    rows = [r for r in latest_run(path) if "error" not in r]
    peaks = next(r for r in rows if r["kind"] == "peak")
    naive_per_token = 7 * 384 * 4  # float32, every layer, every token
    dates = sorted({r["date"] for r in rows})
    out = [
        f"{', '.join(dates)}, {peaks.get('device_name') or rows[0]['machine']}; matmul peak measured "
        f"{peaks['fp32_flops'] / 1e9:,.0f} GFLOP/s float32, {peaks['bf16_flops'] / 1e9:,.0f} GFLOP/s bfloat16"
        + (f", {peaks['int8_ops'] / 1e9:,.0f} GOP/s int8 (ONNX Runtime)" if peaks.get("int8_ops") else "")
        + " (% of peak: bfloat16 rows against the bfloat16 peak where that is the higher one, int8 rows"
        " against the int8 peak).",
        "",
    ]
    targets = []
    for corpus in ("sst2", "conll", "sst2-full"):
        found = [r for r in rows if r["kind"] == "extraction" and r["corpus"] == corpus]
        if not found:
            continue
        speeds = {r["tool"]: r["tokens"] / r["seconds"] for r in found}
        # the best float32 sentence-transformers row: what the ratios are against (bfloat16's has its own target)
        st = max((v for k, v in speeds.items() if k.startswith("st-") and not k.endswith("-bf16")), default=None)
        pipe = speeds.get("pipeline")
        out += [
            f"Extraction, {corpus} ({found[0]['examples']:,} texts, {found[0]['tokens']:,} tokens):",
            "",
            "| tool | tokens/s | vs pipeline | vs best sentence-transformers | % of matmul peak | "
            "cache bytes/text | cache bytes/token | cache vs naive float32 | peak memory |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in found:
            speed = speeds[r["tool"]]
            per_text = r["tokens"] / r["examples"]
            cache = r.get("cache_bytes")
            naive = naive_per_token * r["tokens"]
            per_text_bytes = f"{cache / r['examples']:,.0f}" if cache else ""
            per_token_bytes = f"{cache / r['tokens']:,.0f} (naive {naive_per_token:,})" if cache else ""
            vs_naive = f"1/{naive / cache:.1f}" if cache else ""
            flops = speed * model_flops_per_token(False, per_text) / _peak_for(r["tool"], peaks, r.get("compute"))
            out.append(
                f"| {r['tool']} | {speed:,.0f} | {f'{speed / pipe:.2f}x' if pipe else ''} | "
                f"{f'{speed / st:.2f}x' if st else ''} | {100 * flops:.0f}% | "
                f"{per_text_bytes} | {per_token_bytes} | {vs_naive} | {_memory(r)} |"
            )
            if r["tool"] == "lmtransfer" and pipe:
                targets.append(f"| {corpus}: float32 extraction >= 4x the pipeline | {speed / pipe:.2f}x |")
            if r["tool"] == "lmtransfer" and st:
                targets.append(f"| {corpus}: float32 extraction >= 1.3x sentence-transformers | {speed / st:.2f}x |")
            if r["tool"] == "lmtransfer-bf16" and st:
                targets.append(f"| {corpus}: bfloat16 extraction >= 3x sentence-transformers | {speed / st:.2f}x |")
                share = speed * model_flops_per_token(False, per_text) / peaks["bf16_flops"]
                targets.append(
                    f"| {corpus}: bfloat16 extraction >= 60% of the bfloat16 matmul peak | {100 * share:.0f}% |"
                )
            if r["tool"] == "lmtransfer-onnx" and "lmtransfer" in speeds:
                targets.append(
                    f"| {corpus}: ONNX Runtime float32 vs torch float32 | {speed / speeds['lmtransfer']:.2f}x |"
                )
            fastest = max((k for k in speeds if k.startswith("lmtransfer")), key=speeds.get, default=None)
            if r["tool"] == fastest and st:
                st_bf16 = speeds.get("st-64-bf16")
                targets.append(
                    f"| {corpus}: fastest lmtransfer path ({fastest}) >= 4x sentence-transformers | {speed / st:.2f}x |"
                )
                if st_bf16:
                    targets.append(
                        f"| {corpus}: {fastest} >= 1.3x sentence-transformers bfloat16 | {speed / st_bf16:.2f}x |"
                    )
            if r["tool"] in ("lmtransfer", "lmtransfer-int8") and cache and corpus != "conll-words":
                targets.append(f"| {corpus}: {r['tool']} cache <= 1/50 of naive float32 | 1/{naive / cache:.1f} |")
            if corpus == "sst2-full" and r["tool"] == "lmtransfer":
                targets.append(f"| all of SST-2 train: peak RSS < 2 GB | {r['peak_rss'] / 2**20:,.0f} MiB |")
        out.append("")
    accuracy = {r["variant"]: r for r in rows if r["kind"] == "accuracy"}
    if accuracy:
        examples = next(iter(accuracy.values())).get("examples", SAMPLE)
        out += [f"SST-2 dev accuracy, linear head on features of a fixed {examples:,}-sentence train sample: "]
        out += [", ".join(f"{k} {v['dev_accuracy']:.4f}" for k, v in accuracy.items()), ""]
        for variant in ("bfloat16", "onnx", "onnx-int8"):
            if "float32" in accuracy and variant in accuracy:
                gap = 100 * (accuracy[variant]["dev_accuracy"] - accuracy["float32"]["dev_accuracy"])
                targets.append(f"| {variant} dev accuracy within 0.3 (0.5 for int8) of float32 | {gap:+.2f} points |")
    tuned = [r for r in rows if r["kind"] == "finetuning"]
    if tuned:
        speeds = {r["tool"]: r["tokens"] / r["seconds"] for r in tuned}
        by_tool = {r["tool"]: r for r in tuned}
        out += [
            f"Fine-tuning, SST-2 {tuned[0]['examples']:,}-sentence subset, {FT_EPOCHS} epoch, batch {FT_BATCH}:",
            "",
            "| tool | train tokens/s | vs HF Trainer (same precision) | % of matmul peak | dev accuracy | "
            "peak memory |",
            "|---|---|---|---|---|---|",
        ]
        for r in tuned:
            speed = speeds[r["tool"]]
            flops = speed * model_flops_per_token(True, r["tokens"] / r["examples"] / FT_EPOCHS)
            trainer = speeds.get("hf-trainer-bf16" if r["tool"].endswith("bf16") else "hf-trainer")
            ratio = f"{speed / trainer:.2f}x" if trainer else ""
            out.append(
                f"| {r['tool']} | {speed:,.0f} | {ratio} | {100 * flops / _peak_for(r['tool'], peaks):.0f}% | "
                f"{r['dev_accuracy']:.4f} | {_memory(r)} |"
            )
            if r["tool"].startswith("lmtransfer") and trainer:
                targets.append(f"| fine-tuning ({r['tool']}) >= 1.3x the HF Trainer | {speed / trainer:.2f}x |")
        if "lmtransfer-bf16" in speeds and "lmtransfer" in speeds:
            ratio = speeds["lmtransfer-bf16"] / speeds["lmtransfer"]
            gap = 100 * (by_tool["lmtransfer-bf16"]["dev_accuracy"] - by_tool["lmtransfer"]["dev_accuracy"])
            targets.append(
                f"| bf16 autocast fine-tuning >= 1.5x float32, dev within 0.5 | {ratio:.2f}x, {gap:+.2f} points |"
            )
        out.append("")
    if targets:
        out += ["Targets (ratios within this run):", "", "| target | measured |", "|---|---|", *targets]
    return "\n".join(out)


def main() -> None:
    cli = parser(__doc__, DATA, OUT, "run just these steps (names as in the log)")
    cli.add_argument("--device", default="cpu", help="where every tool runs: cpu (default) or cuda")
    cli.add_argument("--smoke", action="store_true", help=f"every step on {SMOKE} texts: a wiring check")
    args = cli.parse_args()
    global DEVICE, SMOKE_RUN
    DEVICE, SMOKE_RUN = args.device, args.smoke
    if handled(args, lambda: child(args.child, args.data), table, ("sst2/train.tsv", "conll2003/eng.train")):
        return
    from lmtransfer.core.threads import usable_cores

    if not args.only:
        shutil.rmtree(CACHE, ignore_errors=True)
    common = {
        "benchmark": "performance",
        "run": datetime.datetime.now().isoformat(timespec="seconds"),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {usable_cores()} cores",
        "device": DEVICE,
        "model": "minilm",
        "max_length": MAX_LENGTH,
        **cpu(),
        **({"smoke": True} if SMOKE_RUN else {}),
    }
    flags = ["--device", DEVICE, *(["--smoke"] if SMOKE_RUN else [])]
    failed = run_steps(__file__, args.only or steps(), args.data, args.out, common, flags)
    print(table(args.out))
    if failed:
        sys.exit(f"failed steps: {', '.join(failed)}")


if __name__ == "__main__":
    main()
