"""The one training loop, outside the models, for every task and both ways.

It knows nothing of tasks or strategies: a model maps ``batch["inputs"]`` to outputs, the caller
supplies the loss, the dev metrics and the parameter groups (which decide what trains, at which
learning rate). Devices, mixed precision, gradient accumulation and several processes come from
Hugging Face ``accelerate``: the same call runs on a CPU, a GPU, or under ``accelerate launch``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from transformers import get_linear_schedule_with_warmup

from lmtransfer.core.choices import oriented
from lmtransfer.core.devices import make_accelerator, release_freed_memory
from lmtransfer.core.progress import Progress
from lmtransfer.training.checkpoint import Checkpoints, rng_state
from lmtransfer.training.convergence import eval_interval, planned_epochs
from lmtransfer.training.datasets import as_is
from lmtransfer.training.loop_state import RECENT, AfterEvaluation, FitResult, LoopArgs, LoopState
from lmtransfer.training.optimizer import adamw, param_groups, seed_everything
from lmtransfer.training.predict import eval_loader, predict_outputs
from lmtransfer.training.sampler import EpochSampler

# with dev, a run checkpoints after about this many of its evaluations (a fine-tuned model's checkpoint is its
# weights and the optimizer's moments: ~270 MB for MiniLM, a second or so each)
CHECKPOINTS = 4


def fit(
    model: nn.Module,
    train: Dataset,
    dev: Dataset | None = None,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    evaluate: Callable[[np.ndarray, np.ndarray], dict[str, Any]] | None = None,
    args: LoopArgs,
    groups: list[dict[str, Any]] | None = None,
    accelerator: Accelerator | None = None,
    after_evaluation: AfterEvaluation | None = None,
) -> FitResult:
    """Train ``model`` in place.

    With a ``dev`` set, ``evaluate(outputs, labels)`` turns its outputs into metrics every ``eval_steps``
    optimizer steps and after the last one (``training.convergence``); ``args.metric`` picks the one that
    early stopping (``patience`` evaluations without improvement, never before ``min_steps``) and the best
    checkpoint watch, and the model ends holding the weights of its best evaluation. Without one (masked-LM
    pretraining) every epoch, or ``args.max_steps`` optimizer steps, runs and the model keeps its last
    weights. ``after_evaluation(step, dev score)``, where given, is asked after each evaluation that more
    training would follow; True stops training there (what a search's pruner says of a trial falling
    behind), recorded as ``pruned_step``.
    """
    acc = accelerator or make_accelerator("no", args.grad_accum)
    seed_everything(args.seed)
    micro = max(1, args.batch_size // (acc.num_processes * args.grad_accum))  # per process, per micro-batch
    lengths = getattr(train, "lengths", None) if args.group_by_length else None
    sampler = EpochSampler(len(train), args.seed, lengths, micro * acc.num_processes)
    # the loaders get their own generator: creating an iterator must not draw from the global RNG,
    # or a resumed run would see other dropout masks than an uninterrupted one
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train, batch_size=micro, sampler=sampler, collate_fn=as_is, generator=generator)
    optimizer = adamw(groups or param_groups(model, args.lr, args.weight_decay))
    loaders = [train_loader] if dev is None else [train_loader, eval_loader(dev, micro)]
    model, optimizer, train_loader, *dev_loader = acc.prepare(model, optimizer, *loaders)
    steps_per_epoch = -(-len(train_loader) // args.grad_accum)
    epochs = planned_epochs(args.epochs, args.min_steps, steps_per_epoch)
    if args.max_steps is not None:
        epochs = -(-args.max_steps // steps_per_epoch)
    total = steps_per_epoch * epochs if args.max_steps is None else args.max_steps
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total)
    ckpt = Checkpoints(args.checkpoint_dir, args.keep_checkpoints) if args.checkpoint_dir else None
    scorer = None
    if dev_loader and evaluate is not None:
        every = eval_interval(steps_per_epoch, total, args.eval_steps)
        scorer = _Scorer(dev_loader[0], evaluate, every, after_evaluation, max(1, -(-(total // every) // CHECKPOINTS)))
    parts = _Parts(model, optimizer, scheduler, acc, args, ckpt, scorer, total)
    state, parts.best = _start(parts)
    state.result.budget_steps, state.result.eval_steps = total, scorer.every if scorer else 0
    began = time.perf_counter() - state.result.seconds
    if scorer is not None and state.step == 0 and not state.result.history:  # the untrained model's dev score
        _evaluate(parts, state)
    show = parts.args.progress and acc.is_main_process
    with Progress(
        total=total, initial=state.step, desc="train", unit="step", disable=not show, dynamic_ncols=True
    ) as bar:
        while state.epoch <= epochs and not state.done:
            sampler.start(state.epoch, skip=state.batches_done * micro * acc.num_processes)
            _train_epoch(parts, train_loader, loss_fn, state, began, bar)
            if scorer is None:
                _record(parts, state, None)
            state.epoch, state.batches_done = state.epoch + 1, 0
            release_freed_memory()  # the epoch's freed batches, so that the next one's longest fits in them
            state.result.seconds = time.perf_counter() - began
            if parts.ckpt is not None and scorer is None:  # with dev, checkpoints follow its evaluations
                _checkpoint(parts, state)
    if scorer is not None and state.evaluated_step != state.step:  # the last step's weights are scored too
        _evaluate(parts, state, last=True)
    if parts.ckpt is not None and parts.checkpointed != state.step:  # where the run ended, for --resume
        _checkpoint(parts, state)
    if parts.best is not None:
        acc.unwrap_model(model).load_state_dict(parts.best)
    state.result.seconds = time.perf_counter() - began
    return state.result


@dataclass
class _Scorer:
    """Dev evaluation: the loader, the metrics, every how many steps, and the pruner that may stop a trial."""

    loader: DataLoader
    evaluate: Callable[[np.ndarray, np.ndarray], dict[str, Any]]
    every: int
    after: AfterEvaluation | None = None
    checkpoint_every: int = 1  # evaluations between two checkpoints


@dataclass
class _Parts:
    """What one fit works with (the prepared model, optimizer, scheduler), passed around as one."""

    model: nn.Module
    optimizer: Any
    scheduler: Any
    acc: Accelerator
    args: LoopArgs
    ckpt: Checkpoints | None = None
    scorer: _Scorer | None = None
    total: int = 0  # optimizer steps the budget allows
    best: dict[str, Tensor] | None = None  # a copy of the weights of the best dev evaluation so far
    best_info: dict[str, Any] | None = None  # where they were found; None once the checkpoints hold them
    checkpointed: int = -1  # the step of the latest checkpoint


def _start(parts: _Parts) -> tuple[LoopState, dict[str, Tensor] | None]:
    """A fresh state, or the one of the latest checkpoint when resuming (with the best weights so far)."""
    ckpt = parts.ckpt
    if ckpt is not None and parts.args.resume and ckpt.latest() is not None:
        return _resume(ckpt, parts)
    if ckpt is not None and parts.acc.is_main_process:
        ckpt.clear()  # a fresh run: old checkpoints must not be mistaken for this run's
    return LoopState(), None


def _evaluate(parts: _Parts, state: LoopState, last: bool = False) -> None:
    """Score dev, record it, keep the weights when they are the best so far; then decide whether training
    stops here: patience spent (once ``min_steps`` are done), or the pruner says so."""
    scorer, args, acc = parts.scorer, parts.args, parts.acc
    assert scorer is not None
    outputs, labels = predict_outputs(parts.model, scorer.loader, accelerator=acc, progress=False)
    scores = scorer.evaluate(outputs, labels)
    parts.model.train()
    state.evaluated_step = state.step
    score = oriented(args.metric, float(scores[args.metric]))  # higher is better, whichever the metric
    _record(parts, state, scores)
    if state.step == 0:  # the untrained model's score: on the curve, never the weights kept
        return
    _keep_best(parts, state, score)
    if last or state.step >= parts.total:  # no more training follows: nothing to decide
        return
    if state.stale >= args.patience and state.step >= args.min_steps:
        state.done = state.result.stopped_early = True
    elif scorer.after is not None and scorer.after(state.step, score):
        state.done, state.result.pruned_step, state.result.pruned_epoch = True, state.step, state.epoch


def _record(parts: _Parts, state: LoopState, scores: dict[str, Any] | None) -> None:
    """A history entry (the training loss since the last one, the dev metric where scored), printed and
    logged to the trackers (every dev metric)."""
    args, result = parts.args, state.result
    entry: dict[str, Any] = {"epoch": state.epoch, "step": state.step}
    logged: dict[str, Any] = {"train/epoch": state.epoch}
    line = f"step {state.step} (epoch {state.epoch}):" if state.step else "before training:"
    if state.loss_count:  # (none before the first step)
        entry["train_loss"] = logged["train/epoch_loss"] = state.loss_sum / state.loss_count
        line += f" train loss {entry['train_loss']:.4f}"
    if scores is not None:
        entry[f"dev_{args.metric}"] = float(scores[args.metric])
        line += f"{',' if state.loss_count else ''} dev {args.metric} {scores[args.metric]:.4f}"
    result.history.append(entry)
    if parts.acc.is_main_process and args.progress:
        Progress.write(line)
    dev = {f"dev/{k}": v for k, v in (scores or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}
    parts.acc.log(logged | dev, step=state.step)
    state.loss_sum, state.loss_count = 0.0, 0


def _keep_best(parts: _Parts, state: LoopState, score: float) -> None:
    """Keep a copy of the weights (saved as the best checkpoint with the next checkpoint) when ``score`` beats
    every earlier evaluation's; else one more evaluation without improvement."""
    result = state.result
    if score <= result.best_metric:
        state.stale += 1
        return
    result.best_metric, result.best_epoch, result.best_step, state.stale = score, state.epoch, state.step, 0
    parts.best = {k: v.detach().cpu().clone() for k, v in parts.acc.unwrap_model(parts.model).state_dict().items()}
    parts.best_info = {"epoch": state.epoch, "step": state.step, parts.args.metric: score}  # saved with a checkpoint


def _train_epoch(parts: _Parts, loader: DataLoader, loss_fn, state: LoopState, began: float, bar: Progress) -> None:
    model, optimizer, acc, args, scorer = parts.model, parts.optimizer, parts.acc, parts.args, parts.scorer
    model.train()
    result = state.result
    last = time.perf_counter()  # training time counts batch preparation too, not checkpoints or dev
    for batch in loader:
        with acc.accumulate(model):
            with acc.autocast():
                outputs = model(**batch["inputs"])
            loss = loss_fn(outputs.float(), batch["labels"])
            acc.backward(loss)
            if acc.sync_gradients and args.max_grad_norm:
                acc.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        stepped = acc.sync_gradients
        if stepped:
            parts.scheduler.step()
            state.step += 1
        _count(state, batch, loss, acc.num_processes)
        if stepped and state.step % args.logging_steps == 0:
            _log_step(parts, state)
        now = time.perf_counter()
        result.train_seconds += now - last
        if stepped:
            bar.update(1)
            bar.set_postfix(epoch=state.epoch, loss=f"{state.loss_sum / max(state.loss_count, 1):.4f}", refresh=False)
        evaluated = stepped and scorer is not None and state.step % scorer.every == 0
        if evaluated:
            _evaluate(parts, state)
        if stepped and args.max_steps is not None and state.step >= args.max_steps:
            state.done = True
        periodic = stepped and args.checkpoint_every and state.step % args.checkpoint_every == 0
        after = evaluated and (state.step // scorer.every) % scorer.checkpoint_every == 0
        if parts.ckpt is not None and (after or periodic or state.done):  # where a resumed run takes up the path
            result.seconds = time.perf_counter() - began
            _checkpoint(parts, state)
        if state.done:
            break
        last = time.perf_counter()


def _log_step(parts: _Parts, state: LoopState) -> None:
    """The trackers get the mean training loss since their last log, and the learning rate."""
    loss = state.logged_sum / max(state.logged_count, 1)
    parts.acc.log({"train/loss": loss, "train/learning_rate": parts.scheduler.get_last_lr()[0]}, step=state.step)
    state.logged_sum, state.logged_count = 0.0, 0


def _count(state: LoopState, batch: dict[str, Any], loss: Tensor, processes: int) -> None:
    n, value = len(batch["labels"]), loss.item()
    state.result.recent_losses = [*state.result.recent_losses[-(RECENT - 1) :], value]
    state.loss_sum, state.loss_count = state.loss_sum + value * n, state.loss_count + n
    state.logged_sum, state.logged_count = state.logged_sum + value * n, state.logged_count + n
    state.batches_done += 1
    state.result.examples += n * processes
    mask = batch["inputs"].get("attention_mask")
    state.result.tokens += 0 if mask is None else int(mask.sum()) * processes
    state.result.steps = state.step


def _checkpoint(parts: _Parts, state: LoopState) -> None:
    """Save where the loop is; every process takes part (their RNG states are gathered), one writes."""
    acc = parts.acc
    parts.checkpointed = state.step
    rngs = gather_object([rng_state()]) if acc.num_processes > 1 else [rng_state()]
    if acc.is_main_process and parts.best is not None and parts.best_info is not None:  # the best so far, with it
        parts.ckpt.save_best(parts.best, parts.best_info)
        parts.best_info = None
    if acc.is_main_process:
        loop_state = {k: v for k, v in asdict(state).items() if k != "result"}
        loop_state["result"] = asdict(state.result)
        parts.ckpt.save(
            state.step,
            acc.unwrap_model(parts.model),
            parts.optimizer,
            parts.scheduler,
            loop_state,
            dict(enumerate(rngs)),
        )
    acc.wait_for_everyone()


def _resume(ckpt: Checkpoints, parts: _Parts) -> tuple[LoopState, dict | None]:
    acc, path = parts.acc, ckpt.latest()
    saved = Checkpoints.load(path, acc.unwrap_model(parts.model), parts.optimizer, parts.scheduler, acc.process_index)
    result = FitResult(**saved.pop("result"))
    state = LoopState(**saved, result=result)
    if acc.is_main_process:
        Progress.write(f"resuming from {path} (epoch {state.epoch}, {state.batches_done} batches into it)")
    return state, ckpt.best_state()
