"""How long a standard comparison will take on this machine, before it starts, and the plan that fits a time
budget (``lmtransfer compare DATA --budget MINUTES``).

The encoder is timed on the user's own texts for a few seconds (a batch through the frozen encoder; a
fine-tuning step forward and backward), and every job of the plan is priced from those two figures and
its size: extraction reads each text once; a fine-tuning run takes its optimizer steps and scores dev at
each evaluation; feature heads and the TF-IDF baseline cost little beyond their process. The constants
below were fitted to the demo's rows (docs/benchmarks.md); the estimate is a guide, shown as such.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from lmtransfer.compare.standard import FINETUNE, PROMPT_SHOTS, SPACES, Plan, middle

BATCH, EPOCHS = FINETUNE["train.batch_size"], FINETUNE["train.epochs"]  # the standard fine-tuning run's
# fitted to the rows of a 2,000-sentence SST-2 comparison on a 2-core Zen 4 (docs/benchmarks.md): what a
# row costs besides its steps and its passes over dev
PROCESS_SECONDS = 16.0  # a fine-tuning row's process: imports, the encoder loaded, test scored, the run saved
LIGHT_PROCESS_SECONDS = 7.0  # a feature head's or a baseline's process
FEATURE_HEAD_SECONDS = 2.0  # a scalar mix and linear head trained on cached features
STEP_OVERHEAD = 1.5  # a training step over the bare forward and backward: AdamW, the scheduler, data loading
EVAL_OVERHEAD = 2.0  # a dev pass of a fine-tuning run over the bare forward: batching, the metric
INFERENCE_EXAMPLES = 100  # compare.inference_examples of the standard plan
EXTENSION_RISK = 1.15  # a share of fine-tuning rows runs again with twice the steps
MAX_EVALUATIONS = 20  # training.convergence: at most this many dev evaluations, plus before and after
# --prompt: a prompt row loads its causal LM twice (to label dev and test, then from its folder to time
# inference; a GGUF file from its float32 copy, after the first time) and labels dev, test and the timed
# inference examples, each text in batches of 16 after its demonstrations' prefix. Fitted to SmolLM2's rows
# on 300 SST-2 reviews (docs/benchmarks.md): a prompted text took about 5 bare forward passes, and 4 chat
# demonstrations added 24% (on the SST-2 comparison, with longer demonstrations, up to 60%)
PROMPT_PROCESS_SECONDS = 8.0
PROMPT_OVERHEAD = 5.0  # a prompted text over the bare forward pass of the LM's base model
PROMPT_PER_SHOT = 0.1  # and for each demonstration in its prompt


@dataclass(frozen=True)
class Speeds:
    """What the encoder takes on this machine, on these texts at ``max_length``."""

    forward: float  # seconds per text through the frozen encoder (batches of 64)
    step: float  # seconds per fine-tuning step (a batch of BATCH forward and backward, with STEP_OVERHEAD)
    max_length: int  # tokens: the 95th percentile of the sample's lengths, within 32..256


@dataclass(frozen=True)
class Estimate:
    seconds: float
    parts: dict[str, float]  # seconds per part: extraction, feature-based, fine-tuning, baseline
    reserve: float = 0.0  # a rerun of the largest fine-tuning row with twice the steps, should it not converge

    def minutes(self) -> str:
        return f"about {max(1, round(self.seconds / 60))} min"


def measure(model: str, texts: list[Any], max_length: int | None = None, step: bool = True) -> Speeds:
    """Time ``model`` on ``texts`` (strings or pairs): its length at the 95th percentile (unless given), a
    frozen forward pass and (unless ``step`` is False: a model only prompted) a fine-tuning step. Takes a few
    seconds."""
    import torch

    from lmtransfer.core.devices import auto_mixed_precision, pick_device
    from lmtransfer.encoders.loading import load_encoder

    encoder = load_encoder(model)
    tokenizer = encoder.tokenizer
    firsts = [t[0] if isinstance(t, tuple) else t for t in texts]
    seconds = [t[1] for t in texts if isinstance(t, tuple)] or None
    lengths = [len(ids) for ids in tokenizer(firsts, seconds, truncation=False)["input_ids"]]
    if max_length is None:
        wanted = sorted(lengths)[min(len(lengths) - 1, int(0.95 * len(lengths)))]
        max_length = min(256, max(32, 16 * math.ceil(wanted / 16)))
    # extraction and fine-tuning both batch texts of similar lengths: time batches of the median ones
    order = sorted(range(len(firsts)), key=lengths.__getitem__)
    middle = [order[(len(order) // 2 + k) % len(order)] for k in range(-32, 32)]
    batch = [firsts[i] for i in middle]
    pairs = [seconds[i] for i in middle] if seconds else None
    inputs = tokenizer(batch, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    small = {k: v[24 : 24 + BATCH] for k, v in inputs.items()}
    model_ = encoder.model.to(pick_device())
    # the arithmetic the runs will use: bfloat16 autocast where the hardware has it (features.compute and
    # train.mixed_precision: auto), so the timing is of what runs
    bf16 = auto_mixed_precision() == "bf16"
    device = pick_device().type
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        forward = _fastest(lambda: model_(**inputs), 3) / len(batch)
    if not step:
        return Speeds(forward, 0.0, max_length)
    model_.train()

    def train_step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = model_(**small).last_hidden_state.float().mean()
        loss.backward()

    step_seconds = _fastest(train_step, 4)
    model_.zero_grad(set_to_none=True)
    return Speeds(forward, step_seconds * STEP_OVERHEAD, max_length)


def _fastest(work, times: int) -> float:
    """The fastest of ``times`` runs of ``work`` after one to warm up (the first allocates and plans)."""
    work()
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def estimate(plan: Plan, speeds: Speeds, prompt_speeds: Speeds | None = None) -> Estimate:
    """The plan's seconds on this machine, by part; ``prompt_speeds``: ``plan.prompt``'s LM timed (where the
    plan prompts one)."""
    _, dev, test = plan.counts
    sizes = plan.size_numbers()
    searches = plan.trials if plan.trials > 1 else 0
    live = (test + INFERENCE_EXAMPLES) * speeds.forward  # a row's test scoring and timed inference
    extraction = (sum(sizes) + dev + test) * speeds.forward
    feature = len(sizes) * (searches + 1) * (LIGHT_PROCESS_SECONDS + FEATURE_HEAD_SECONDS) + len(sizes) * live
    finetune = 0.0
    for size in sizes:
        run = _finetune_run(size, dev, speeds)
        finetune += (max(1, searches) * run + (PROCESS_SECONDS + live if searches else live)) * EXTENSION_RISK
    baseline = len(sizes) * (LIGHT_PROCESS_SECONDS + 2.0)  # TF-IDF and a linear model
    parts = {"extraction": extraction, "feature-based": feature, "fine-tuning": finetune, "baseline": baseline}
    if plan.prompt is not None:
        labelled = dev + test + INFERENCE_EXAMPLES  # each untrained row labels these, once
        parts["zero-shot"] = 0.0 if plan.facts.text_pair_column else LIGHT_PROCESS_SECONDS + labelled * speeds.forward
        if prompt_speeds is None:
            raise ValueError("a plan that prompts is estimated with its LM's speeds")
        parts["prompting"] = sum(
            PROMPT_PROCESS_SECONDS + labelled * prompt_speeds.forward * PROMPT_OVERHEAD * (1 + PROMPT_PER_SHOT * k)
            for k in PROMPT_SHOTS
        )
    return Estimate(sum(parts.values()), parts, _finetune_run(max(sizes), dev, speeds, doubled=True))


def _finetune_run(size: int, dev: int, speeds: Speeds, doubled: bool = False) -> float:
    """One fine-tuning run of ``size`` training examples: its process, its steps and its dev evaluations."""
    epoch = math.ceil(size / BATCH)
    steps = max(middle(**SPACES["finetune"]["train.min_steps"]), EPOCHS * epoch) * (2 if doubled else 1)
    evaluations = min(MAX_EVALUATIONS, steps // max(10, epoch // 2)) + 2
    return PROCESS_SECONDS + steps * speeds.step + evaluations * dev * speeds.forward * EVAL_OVERHEAD


def fit(plan: Plan, speeds: Speeds, minutes: float, prompt_speeds: Speeds | None = None) -> tuple[Plan, list[str]]:
    """The plan cut down until its estimate, with the reserve for one rerun of its largest fine-tuning row,
    fits ``minutes``, and what was cut: first the search's trials (down to one, which runs each way at the
    middle of its space), then the training sizes between the smallest and the largest, then the largest
    (down to the largest one that fits). A budgeted plan reruns a row at most once (``config_data``). The
    untrained rows of ``--prompt`` cost the same at any size: they are never cut."""
    cuts: list[str] = []
    budget = minutes * 60
    while (found := estimate(plan, speeds, prompt_speeds)).seconds + found.reserve > budget:
        if plan.trials > 1:
            plan = plan.with_(trials=plan.trials - 1)
            cuts.append(f"trials per search: {plan.trials}")
        elif len(plan.sizes) > 2:
            middle = plan.sizes[len(plan.sizes) // 2] if len(plan.sizes) > 2 else plan.sizes[-1]
            plan = plan.with_(sizes=tuple(s for s in plan.sizes if s != middle))
            cuts.append(f"training size {middle} dropped")
        elif len(plan.sizes) == 2 and _smaller(plan) is not None:
            plan = plan.with_(sizes=(plan.sizes[0], _smaller(plan)))
            cuts.append(f"largest training size now {plan.sizes[-1]}")
        else:
            cuts.append("the smallest plan is still over the budget")
            break
    return plan, cuts


def _smaller(plan: Plan) -> int | None:
    """A largest training size a third below the plan's largest, above its smallest; None if none is."""
    largest = plan.size_numbers()[-1]
    smaller = int(largest / 1.5 // 10 * 10)
    return smaller if smaller > plan.size_numbers()[0] else None
