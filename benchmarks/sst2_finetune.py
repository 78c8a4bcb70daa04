"""SST-2 fine-tuning benchmark (issue 3): finetune and LoRA against feature-based, with the HF Trainer as reference.

How to run (about 20 minutes on a 2-core CPU; the data must be in ../shared/data/sst2):

    .venv/bin/python benchmarks/sst2_finetune.py            # writes benchmarks/results/sst2_finetune.jsonl
    .venv/bin/python benchmarks/sst2_finetune.py --table    # prints the Markdown table from that file

All variants train on the same fixed 8,000-sentence subset of SST-2 train (data.max_train_examples=8000,
split_seed 13) and are scored on the full dev set (872). Fine-tuning variants and the Trainer share
batch size, max length, epochs, learning rate and schedule. Each variant runs in its own process.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from _bench import cpu, handled, parser

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "sst2"
OUT = HERE / "results" / "sst2_finetune.jsonl"
SUBSET, BATCH, MAX_LENGTH, EPOCHS, SEED = 8000, 32, 128, 3, 13

VARIANTS = {
    "feature-linear": ["strategy=feature", "features.layers=all", "head.type=linear"],
    "feature-mlp": ["strategy=feature", "features.layers=all", "head.type=mlp"],
    "finetune": [
        "strategy=finetune",
        "features.layers=last",
        "train.lr=5e-5",
        "train.warmup_ratio=0.1",
        f"train.epochs={EPOCHS}",
        f"train.batch_size={BATCH}",
    ],
    "lora": [
        "strategy=lora",
        "features.layers=last",
        "train.lr=5e-4",
        "train.warmup_ratio=0.1",
        f"train.epochs={EPOCHS}",
        f"train.batch_size={BATCH}",
        "lora.r=8",
        "lora.alpha=16",
    ],
}


def overrides(data: Path, variant: str, results: Path, subset: int = SUBSET) -> list[str]:
    return [
        f"data.train={data / 'train.tsv'}",
        f"data.dev={data / 'dev.tsv'}",
        f"data.test={data / 'test_labeled.tsv'}",
        "data.text_column=sentence",
        f"data.max_train_examples={subset}",
        f"data.split_seed={SEED}",
        "encoder.model=minilm",
        f"encoder.max_length={MAX_LENGTH}",
        "features.pooling=mean",
        f"train.seed={SEED}",
        f"cache_dir={results / 'cache'}",
        f"output_dir={results / ('ft-' + variant)}",
        *VARIANTS[variant],
    ]


def run_variant(variant: str, data: Path, results: Path, subset: int = SUBSET, extra: tuple[str, ...] = ()) -> dict:
    from lmtransfer import load_config, train

    config = load_config(None, [*overrides(data, variant, results, subset), *extra])
    m = train(config, progress=False).metrics
    c = m["costs"]
    return {
        "variant": variant,
        "dev_accuracy": m["dev"]["accuracy"],
        "dev_macro_f1": m["dev"]["macro_f1"],
        "best_epoch": m["best_epoch"],
        "epochs_run": len(m["history"]),
        "trainable_parameters": c["trainable_parameters"],
        "train_seconds": c["train_seconds"],
        "wall_seconds": c["wall_seconds"],
        "train_tokens": c["train_tokens"],
        "train_tokens_per_second": c["train_tokens_per_second"],
        "extract_seconds": c.get("extract_seconds"),
        "cache_bytes": c.get("cache_bytes"),
        "peak_rss_bytes": c["peak_rss_bytes"],
    }


def run_trainer(
    data: Path,
    results: Path,
    subset: int = SUBSET,
    epochs: int = EPOCHS,
    group_by_length: bool = False,
    device: str = "cpu",
    bf16: bool = False,
) -> dict:
    """The HF Trainer on the same subset, batch, length, epochs, lr and schedule: the speed reference
    (on ``device``: cpu, or cuda; ``bf16``: its bfloat16 mixed precision)."""
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from lmtransfer.config.schema import DataConfig
    from lmtransfer.core.devices import peak_rss_bytes
    from lmtransfer.data.tables import load_classification
    from lmtransfer.encoders.loading import resolve_model

    split = load_classification(
        DataConfig(
            train=str(data / "train.tsv"),
            dev=str(data / "dev.tsv"),
            test=str(data / "test_labeled.tsv"),
            text_column="sentence",
            max_train_examples=subset,
            split_seed=SEED,
        )
    )
    path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    labels = {name: i for i, name in enumerate(split.labels)}

    def encode(part):
        enc = tokenizer(part.texts, truncation=True, max_length=MAX_LENGTH)
        return [{**{k: enc[k][i] for k in enc}, "labels": labels[y]} for i, y in enumerate(part.labels)]

    train_rows, dev_rows = encode(split.train), encode(split.dev)
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    args = TrainingArguments(
        output_dir=str(results / "hf-trainer"),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=64,
        num_train_epochs=epochs,
        # transformers 5 replaced group_by_length=True with this option (older 5.x releases lack it)
        **({"train_sampling_strategy": "group_by_length"} if group_by_length else {}),
        learning_rate=5e-5,
        warmup_steps=0.1,  # transformers 5: a float below 1 is a ratio of all steps
        weight_decay=0.01,
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        seed=SEED,
        use_cpu=device == "cpu",
        bf16=bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train_rows, data_collator=DataCollatorWithPadding(tokenizer)
    )
    began = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - began
    logits = trainer.predict(dev_rows).predictions
    accuracy = float((np.argmax(logits, axis=1) == np.array([r["labels"] for r in dev_rows])).mean())
    tokens = epochs * sum(len(r["input_ids"]) for r in train_rows)
    return {
        "variant": "hf-trainer",
        "dev_accuracy": accuracy,
        "train_seconds": out.metrics["train_runtime"],
        "wall_seconds": seconds,
        "train_tokens": tokens,
        "train_tokens_per_second": tokens / out.metrics["train_runtime"],
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def main() -> None:
    args = parser(__doc__, DATA, OUT, "run just these variants").parse_args()
    results = args.out.parent

    def child_row() -> dict:
        if args.child == "hf-trainer":
            return run_trainer(args.data, results)
        return run_variant(args.child, args.data, results)

    if handled(args, child_row, table):
        return
    from lmtransfer.core.atomic import append_jsonl

    common = {
        "benchmark": "sst2_finetune",
        "date": datetime.date.today().isoformat(),
        "machine": platform.machine(),
        "model": "minilm",
        "seed": SEED,
        "train_subset": SUBSET,
        **cpu(),
        "batch_size": BATCH,
        "max_length": MAX_LENGTH,
    }
    for variant in args.only or [*VARIANTS, "hf-trainer"]:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--data", str(args.data), "--out", str(args.out)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        row = {**common, **json.loads(proc.stdout.strip().splitlines()[-1])}
        append_jsonl(args.out, row)
        print(json.dumps(row), flush=True)


def table(path: Path) -> str:
    latest = {}  # the last row of each variant wins (a variant may have been run again)
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["variant"]] = row
    rows = list(latest.values())
    trainer = latest.get("hf-trainer")
    lines = [
        "| variant | dev accuracy | trainable params | train s | train tokens/s | vs HF Trainer | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = r.get("train_tokens_per_second")
        ratio = f"{speed / trainer['train_tokens_per_second']:.2f}x" if speed and trainer else ""
        lines.append(
            f"| {r['variant']} | {r['dev_accuracy']:.4f} | {r['trainable_parameters']:,} | "
            f"{r['train_seconds']:.0f} | {f'{speed:,.0f}' if speed else '(cached features)'} | {ratio} | "
            f"{r['peak_rss_bytes'] / 2**20:,.0f} MiB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
