"""Peak memory of fine-tuning (issue 19): lmtransfer against the HF Trainer at the same batch size and length.

    python benchmarks/memory.py              # appends rows to benchmarks/results/memory.jsonl (~15 min on 2 cores)
    python benchmarks/memory.py --table
    python benchmarks/memory.py --only rte:lmtransfer rte:hf-trainer --repeats 5  # median and range of 5 runs each
    python benchmarks/memory.py --table --pool-day   # every run of that day on that machine, pooled

Each measurement runs in its own process, so its peak RSS (VmHWM) is that tool's alone:

- SQuAD v1.1, windows of 384 tokens (stride 128), batch 32, MiniLM, one epoch on 128 train questions
  (lmtransfer: its seeded subset; the Trainer: the first 128), about 4 optimizer steps (the peak comes
  with the first), 32 dev questions: lmtransfer's
  configs/squad.yaml in float32, with train.gradient_checkpointing, with bf16 autocast, and with
  finetune.attention_dropout 0 (which lets torch's fused CPU attention run in training); the HF
  Trainer (AutoModelForQuestionAnswering) on the windows its own QA recipe makes (padded to 384, as
  transformers' run_qa example does), float32.
- RTE, pairs cut at 256 tokens, batch 32, one epoch on the same 256 pairs for both (the first 256 of
  train, written to results/memory-rte/train.tsv): lmtransfer's configs/rte.yaml float32, and the
  Trainer (sequence classification) with dynamic padding, and with every pair padded to 256. (Until
  2026-12-02 lmtransfer trained on its own seeded subset of 256 pairs and the Trainer on the first 256:
  a different longest pair, so a different longest batch, made part of the gap between them.) lmtransfer
  puts its longest batch first (since 2026-12-02; the Trainer's random first batch of these pairs
  happens to hold the longest pair too), so a one-epoch run peaks before the optimizer's moments
  exist; a second epoch meets that batch again once they do: the -2-epochs rows measure that.

Peak RSS includes reading the data (all of SQuAD train is parsed before the subset is taken, by both).
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path

import numpy as np

from _bench import cpu, handled, parser, run_steps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
OUT = HERE / "results" / "memory.jsonl"
QUESTIONS, PAIRS, BATCH, SEED = 128, 256, 32, 13

STEPS = {
    "squad:lmtransfer": ("squad", ["train.mixed_precision=no"]),
    "squad:lmtransfer-checkpointing": ("squad", ["train.mixed_precision=no", "train.gradient_checkpointing=true"]),
    "squad:lmtransfer-bf16": ("squad", ["train.mixed_precision=bf16"]),
    "squad:lmtransfer-no-attention-dropout": ("squad", ["train.mixed_precision=no", "finetune.attention_dropout=0"]),
    "squad:hf-trainer": ("squad", []),
    "rte:lmtransfer": ("rte", ["train.mixed_precision=no"]),
    "rte:hf-trainer": ("rte", []),
    "rte:hf-trainer-padded": ("rte", []),
    "rte:lmtransfer-2-epochs": ("rte", ["train.mixed_precision=no", "train.epochs=2"]),
    "rte:hf-trainer-2-epochs": ("rte", []),
}


def lmtransfer_row(task: str, extra: list[str], data: Path) -> dict:
    from lmtransfer import load_config, train

    config = ROOT / "configs" / f"{task}.yaml"
    sizes = [f"data.max_train_examples={QUESTIONS}", "data.max_eval_examples=32"] if task == "squad" else []
    files = {
        "squad": [f"data.train={data / 'squad_v1.1' / 'train-v1.1.reconstructed.json.gz'}"],
        "rte": [f"data.train={_rte_pairs(data)}", f"data.dev={data / 'rte' / 'dev.tsv'}"],
    }[task]
    if task == "squad":
        files.append(f"data.dev={data / 'squad_v1.1' / 'dev-v1.1.json'}")
    # extra last: it may set the epochs
    overrides = [*files, *sizes, "train.epochs=1", f"train.batch_size={BATCH}", f"train.seed={SEED}", *extra]
    overrides.append(f"output_dir={HERE / 'results' / 'memory-run'}")
    result = train(load_config(str(config), overrides), progress=False)
    c = result.costs
    return {"peak_rss": c.peak_rss_bytes, "train_seconds": c.train_seconds, "steps": c.loop.optimizer_steps}


def _rte_pairs(data: Path) -> Path:
    """The first PAIRS pairs of RTE train, header included, as a file both tools read."""
    target = HERE / "results" / "memory-rte" / "train.tsv"
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = (data / "rte" / "train.tsv").read_text(encoding="utf-8").splitlines()[: PAIRS + 1]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def _squad_windows(tokenizer, data: Path) -> list[dict]:
    """The first QUESTIONS train questions as the Trainer's QA recipe windows them: question first, context
    cut into windows of 384 with 128 shared, padded to 384; an answer outside a window points at [CLS]."""
    import gzip

    with gzip.open(data / "squad_v1.1" / "train-v1.1.reconstructed.json.gz", "rt", encoding="utf-8") as handle:
        articles = json.load(handle)["data"]
    items = [(qa, p["context"]) for a in articles for p in a["paragraphs"] for qa in p["qas"]][:QUESTIONS]
    enc = tokenizer(
        [qa["question"] for qa, _ in items],
        [context for _, context in items],
        truncation="only_second",
        max_length=384,
        stride=128,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    rows = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        qa, _ = items[enc["overflow_to_sample_mapping"][i]]
        answer = qa["answers"][0]
        start_char, end_char = answer["answer_start"], answer["answer_start"] + len(answer["text"])
        sequence = enc.sequence_ids(i)
        inside = [t for t, s in enumerate(sequence) if s == 1]
        start = end = 0
        if offsets[inside[0]][0] <= start_char and offsets[inside[-1]][1] >= end_char:
            start = next(t for t in inside if offsets[t][1] > start_char)
            end = next(t for t in reversed(inside) if offsets[t][0] < end_char)
        row = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        rows.append(row | {"start_positions": start, "end_positions": end})
    return rows


def trainer_row(task: str, data: Path, padded: bool = False, epochs: int = 1) -> dict:
    import torch
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from lmtransfer.core.devices import peak_rss_bytes
    from lmtransfer.encoders.loading import resolve_model

    path = resolve_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(SEED)
    if task == "squad":
        rows = _squad_windows(tokenizer, data)
        model = AutoModelForQuestionAnswering.from_pretrained(path)
        collator = default_data_collator
    else:
        lines = _rte_pairs(data).read_text(encoding="utf-8").splitlines()[1:]
        fields = [line.split("\t") for line in lines]
        labels = {"entailment": 0, "not_entailment": 1}
        padding = "max_length" if padded else False
        enc = tokenizer(
            [f[1] for f in fields], [f[2] for f in fields], truncation=True, max_length=256, padding=padding
        )
        rows = [{**{k: enc[k][i] for k in enc}, "labels": labels[f[3]]} for i, f in enumerate(fields)]
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
        collator = DataCollatorWithPadding(tokenizer)
    args = TrainingArguments(
        output_dir=str(HERE / "results" / "memory-trainer"),
        per_device_train_batch_size=BATCH,
        num_train_epochs=epochs,
        learning_rate=5e-5,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        seed=SEED,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    out = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator).train()
    steps = -(-len(rows) // BATCH) * epochs
    return {"peak_rss": peak_rss_bytes(), "train_seconds": out.metrics["train_runtime"], "steps": steps}


def child(step: str, data: Path) -> dict:
    task, extra = STEPS[step]
    if "hf-trainer" in step:
        row = trainer_row(task, data, padded=step.endswith("-padded"), epochs=2 if step.endswith("-2-epochs") else 1)
    else:
        row = lmtransfer_row(task, extra, data)
    return {"step": step, "task": task, "batch": BATCH, **row}


def _spread(values: list[float]) -> str:
    """Median, with the range where there are several runs, in MiB."""
    mib = sorted(v / 2**20 for v in values)
    middle = float(np.median(mib))
    if len(mib) == 1:
        return f"{middle:,.0f} MiB"
    return f"{middle:,.0f} MiB ({mib[0]:,.0f}-{mib[-1]:,.0f}, {len(mib)} runs)"


def difference(ours: list[float], theirs: list[float]) -> str:
    """lmtransfer's peak minus the Trainer's: the difference of medians with a 95% bootstrap interval (over
    runs, each tool resampled apart) where both have 3 runs or more; "equal" when the interval holds 0."""
    a, b = np.array(ours) / 2**20, np.array(theirs) / 2**20
    gap = float(np.median(a) - np.median(b))
    if min(len(a), len(b)) < 3:
        return f"{gap:+,.0f} MiB (under 3 runs each: no interval; one command's peak varied by 410 MiB, 2026-12-06)"
    from scipy.stats import bootstrap

    found = bootstrap(
        (a, b),
        lambda x, y, axis: np.median(x, axis=axis) - np.median(y, axis=axis),
        n_resamples=10_000,
        vectorized=True,
        method="percentile",
        rng=np.random.default_rng(SEED),
    ).confidence_interval
    low, high = found.low, found.high
    verdict = "equal within the spread" if low <= 0 <= high else ("above" if low > 0 else "below")
    return f"{gap:+,.0f} MiB ({low:+,.0f} to {high:+,.0f}): {verdict}"


def table(path: Path, pool_day: bool = False) -> str:
    """The last run's rows, or with ``pool_day`` every run of the last row's day on its machine."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    last = rows[-1]
    latest: dict[str, list[dict]] = {}
    for r in rows:
        if pool_day:
            same = (r.get("date"), r.get("cpu"), r.get("isa")) == (last.get("date"), last.get("cpu"), last.get("isa"))
        else:
            same = r.get("run") == last.get("run")
        if same and "error" not in r:
            latest.setdefault(r["step"], []).append(r)
    out = [f"{rows[-1]['date']}, {rows[-1]['cpu']} ({', '.join(rows[-1]['isa'])})", ""]
    out += ["| step | peak RSS | train s | optimizer steps |", "|---|---:|---:|---:|"]
    for step, found in latest.items():
        seconds = float(np.median([r["train_seconds"] for r in found]))
        out.append(f"| {step} | {_spread([r['peak_rss'] for r in found])} | {seconds:.1f} | {found[0]['steps']} |")
    for ours, theirs in [
        ("squad:lmtransfer", "squad:hf-trainer"),
        ("rte:lmtransfer", "rte:hf-trainer"),
        ("rte:lmtransfer-2-epochs", "rte:hf-trainer-2-epochs"),
    ]:
        if ours in latest and theirs in latest:
            peaks = [[r["peak_rss"] for r in latest[step]] for step in (ours, theirs)]
            ratio = np.median(peaks[0]) / np.median(peaks[1])
            out.append(f"{ours} minus {theirs}: {difference(*peaks)}; {ratio:.2f}x")
    gc = latest.get("squad:lmtransfer-checkpointing")
    if gc:
        worst = max(r["peak_rss"] for r in gc)
        out.append(f"squad with gradient checkpointing: {worst / 2**30:.2f} GiB at most (target < 4 GB)")
    return "\n".join(out)


def main() -> None:
    cli = parser(__doc__, DATA, OUT, "run just these steps")
    cli.add_argument(
        "--repeats", type=int, default=1, help="run the steps this many times, in rounds (peak RSS varies between runs)"
    )
    cli.add_argument(
        "--pool-day", action="store_true", help="with --table: pool the runs of the last row's day on its machine"
    )
    args = cli.parse_args()
    tables = functools.partial(table, pool_day=args.pool_day)
    if handled(args, lambda: child(args.child, args.data), tables, ("squad_v1.1/dev-v1.1.json", "rte/train.tsv")):
        return
    common = {"benchmark": "memory", "run": datetime.datetime.now().isoformat(timespec="seconds")}
    common |= {"date": datetime.date.today().isoformat(), **cpu()}
    run_steps(__file__, (args.only or list(STEPS)) * args.repeats, args.data, args.out, common)
    print(tables(args.out))


if __name__ == "__main__":
    main()
