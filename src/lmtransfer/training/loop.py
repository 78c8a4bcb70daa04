"""The one training loop, outside the models, for every task and both ways.

It knows nothing of tasks or strategies: a model maps ``batch["inputs"]`` to outputs, the caller
supplies the loss, the dev metrics and the parameter groups (which decide what trains, at which
learning rate). Devices, mixed precision, gradient accumulation and several processes come from
Hugging Face ``accelerate``: the same call runs on a CPU, a GPU, or under ``accelerate launch``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from lmtransfer.core.devices import make_accelerator, release_freed_memory
from lmtransfer.training.checkpoint import Checkpoints, rng_state
from lmtransfer.training.datasets import as_is
from lmtransfer.training.optimizer import adamw, param_groups, seed_everything
from lmtransfer.training.predict import eval_loader, predict_outputs
from lmtransfer.training.sampler import EpochSampler

RECENT = 50  # training losses kept in FitResult.recent_losses
AfterEpoch = Callable[[int, float], bool]  # (epoch, its dev score) -> stop training here


@dataclass
class LoopArgs:
    epochs: int = 20
    max_steps: int | None = None  # optimizer steps to run instead of ``epochs`` (as many passes as they take)
    batch_size: int = 64  # examples per optimizer step, over all processes and accumulation steps
    lr: float = 1e-3  # used when no parameter groups are given
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    grad_accum: int = 1
    group_by_length: bool = True  # batches of similar length, where the training set knows its lengths
    patience: int = 3
    metric: str = "accuracy"
    max_grad_norm: float | None = 1.0
    seed: int = 13
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 0  # optimizer steps; 0 = at epoch ends only
    keep_checkpoints: int = 2
    logging_steps: int = 10  # optimizer steps between two logs of loss and lr to the accelerator's trackers
    resume: bool = False
    progress: bool = True


@dataclass
class FitResult:
    best_metric: float = -float("inf")
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0  # optimizer steps only, dev evaluation excluded
    seconds: float = 0.0  # the whole fit, dev evaluation included
    examples: int = 0
    tokens: int = 0  # real (unpadded) tokens that went through a live encoder
    steps: int = 0
    recent_losses: list[float] = field(default_factory=list)  # of the last RECENT micro-batches
    pruned_epoch: int | None = None  # the epoch after which ``after_epoch`` stopped training (a search's pruner)


@dataclass
class _State:
    epoch: int = 1  # the epoch in progress
    batches_done: int = 0  # micro-batches of that epoch already trained
    step: int = 0  # optimizer steps so far
    stale: int = 0  # epochs since the dev metric last improved
    loss_sum: float = 0.0  # this epoch's training loss so far (this process)
    loss_count: int = 0
    logged_sum: float = 0.0  # the training loss since the trackers last got it
    logged_count: int = 0
    result: FitResult = field(default_factory=FitResult)


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
    after_epoch: AfterEpoch | None = None,
) -> FitResult:
    """Train ``model`` in place.

    With a ``dev`` set, ``evaluate(outputs, labels)`` turns its outputs into metrics after each epoch;
    ``args.metric`` picks the one that early stopping and the best checkpoint watch, and the model ends
    holding the weights of its best dev epoch. Without one (masked-LM pretraining) every epoch, or
    ``args.max_steps`` optimizer steps, runs and the model keeps its last weights. ``after_epoch(epoch,
    dev score)``, where given, is asked after each epoch with a dev score that more epochs would follow; True
    stops training there (what a search's pruner says of a trial falling behind), recorded as ``pruned_epoch``.
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
    epochs = args.epochs if args.max_steps is None else -(-args.max_steps // steps_per_epoch)
    total = steps_per_epoch * epochs if args.max_steps is None else args.max_steps
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total)
    ckpt = Checkpoints(args.checkpoint_dir, args.keep_checkpoints) if args.checkpoint_dir else None
    parts = _Parts(model, optimizer, scheduler, acc, args, ckpt)
    state, best = _start(parts)
    show = args.progress and acc.is_main_process
    began = time.perf_counter() - state.result.seconds
    while state.epoch <= epochs and state.stale < args.patience:
        sampler.start(state.epoch, skip=state.batches_done * micro * acc.num_processes)
        _train_epoch(parts, train_loader, loss_fn, state, began)
        scores = None
        if dev_loader:
            outputs, labels = predict_outputs(model, dev_loader[0], accelerator=acc, progress=show)
            scores = evaluate(outputs, labels)
        best = _end_epoch(parts, state, scores) or best
        state.result.seconds = time.perf_counter() - began
        if parts.ckpt is not None:
            _checkpoint(parts, state)
        going_on = state.epoch <= epochs and state.stale < args.patience
        if going_on and scores is not None and after_epoch and after_epoch(state.epoch - 1, float(scores[args.metric])):
            state.result.pruned_epoch = state.epoch - 1
            break
    if best is not None:
        acc.unwrap_model(model).load_state_dict(best)
    state.result.seconds = time.perf_counter() - began
    return state.result


@dataclass
class _Parts:
    """What one fit works with (the prepared model, optimizer, scheduler), passed around as one."""

    model: nn.Module
    optimizer: Any
    scheduler: Any
    acc: Accelerator
    args: LoopArgs
    ckpt: Checkpoints | None = None


def _start(parts: _Parts) -> tuple[_State, dict[str, Tensor] | None]:
    """A fresh state, or the one of the latest checkpoint when resuming (with the best weights so far)."""
    ckpt = parts.ckpt
    if ckpt is not None and parts.args.resume and ckpt.latest() is not None:
        return _resume(ckpt, parts)
    if ckpt is not None and parts.acc.is_main_process:
        ckpt.clear()  # a fresh run: old checkpoints must not be mistaken for this run's
    return _State(), None


def _end_epoch(parts: _Parts, state: _State, scores: dict[str, Any] | None) -> dict[str, Tensor] | None:
    """Record the epoch (and its dev metrics, when there is a dev set; the trackers get them all); return
    a copy of the weights when the watched metric is the best so far."""
    args, result = parts.args, state.result
    train_loss = state.loss_sum / max(state.loss_count, 1)
    entry, line = {"epoch": state.epoch, "train_loss": train_loss}, f"epoch {state.epoch}: train loss {train_loss:.4f}"
    score = None if scores is None else float(scores[args.metric])
    if score is not None:
        entry[f"dev_{args.metric}"] = score
        line += f", dev {args.metric} {score:.4f}"
    result.history.append(entry)
    if parts.acc.is_main_process and args.progress:
        tqdm.write(line)
    dev = {f"dev/{k}": v for k, v in (scores or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}
    parts.acc.log({"train/epoch_loss": train_loss, "train/epoch": state.epoch, **dev}, step=state.step)
    best = None if score is None else _keep_best(parts, state, score)
    state.epoch, state.batches_done, state.loss_sum, state.loss_count = state.epoch + 1, 0, 0.0, 0
    release_freed_memory()  # the epoch's freed batches, so that the next one's longest fits in them
    return best


def _keep_best(parts: _Parts, state: _State, score: float) -> dict[str, Tensor] | None:
    """A copy of the weights (also saved as the best checkpoint) when ``score`` beats every earlier epoch's;
    else None, and one more epoch without improvement."""
    result = state.result
    if score <= result.best_metric:
        state.stale += 1
        return None
    result.best_metric, result.best_epoch, state.stale = score, state.epoch, 0
    best = {k: v.detach().cpu().clone() for k, v in parts.acc.unwrap_model(parts.model).state_dict().items()}
    if parts.ckpt is not None and parts.acc.is_main_process:
        parts.ckpt.save_best(best, {"epoch": state.epoch, parts.args.metric: score})
    return best


def _train_epoch(parts: _Parts, loader: DataLoader, loss_fn, state: _State, began: float) -> None:
    model, optimizer, acc, args = parts.model, parts.optimizer, parts.acc, parts.args
    model.train()
    result = state.result
    show = args.progress and acc.is_main_process
    with tqdm(
        total=state.batches_done + len(loader),
        initial=state.batches_done,
        desc=f"epoch {state.epoch}",
        unit="batch",
        disable=not show,
        leave=False,
        dynamic_ncols=True,
    ) as bar:
        last = time.perf_counter()  # training time counts batch preparation too, not checkpoint writing
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
            last = now
            bar.update(1)
            bar.set_postfix(loss=f"{state.loss_sum / state.loss_count:.4f}", refresh=False)
            if parts.ckpt is not None and stepped and args.checkpoint_every and state.step % args.checkpoint_every == 0:
                result.seconds = time.perf_counter() - began
                _checkpoint(parts, state)
                last = time.perf_counter()
            if stepped and args.max_steps is not None and state.step >= args.max_steps:
                break


def _log_step(parts: _Parts, state: _State) -> None:
    """The trackers get the mean training loss since their last log, and the learning rate."""
    loss = state.logged_sum / max(state.logged_count, 1)
    parts.acc.log({"train/loss": loss, "train/learning_rate": parts.scheduler.get_last_lr()[0]}, step=state.step)
    state.logged_sum, state.logged_count = 0.0, 0


def _count(state: _State, batch: dict[str, Any], loss: Tensor, processes: int) -> None:
    n, value = len(batch["labels"]), loss.item()
    state.result.recent_losses = [*state.result.recent_losses[-(RECENT - 1) :], value]
    state.loss_sum, state.loss_count = state.loss_sum + value * n, state.loss_count + n
    state.logged_sum, state.logged_count = state.logged_sum + value * n, state.logged_count + n
    state.batches_done += 1
    state.result.examples += n * processes
    mask = batch["inputs"].get("attention_mask")
    state.result.tokens += 0 if mask is None else int(mask.sum()) * processes
    state.result.steps = state.step


def _checkpoint(parts: _Parts, state: _State) -> None:
    """Save where the loop is; every process takes part (their RNG states are gathered), one writes."""
    acc = parts.acc
    rngs = gather_object([rng_state()]) if acc.num_processes > 1 else [rng_state()]
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


def _resume(ckpt: Checkpoints, parts: _Parts) -> tuple[_State, dict | None]:
    acc, path = parts.acc, ckpt.latest()
    saved = Checkpoints.load(path, acc.unwrap_model(parts.model), parts.optimizer, parts.scheduler, acc.process_index)
    result = FitResult(**saved.pop("result"))
    state = _State(**saved, result=result)
    if acc.is_main_process:
        tqdm.write(f"resuming from {path} (epoch {state.epoch}, {state.batches_done} batches into it)")
    return state, ckpt.best_state()
