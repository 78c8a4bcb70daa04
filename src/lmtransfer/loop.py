"""The one training loop, outside the models: AdamW, gradient clipping, early stopping on a dev metric.

It knows nothing about tasks or strategies. A model maps ``batch["inputs"]`` to outputs; the caller
supplies the loss and the dev evaluation, and a ``BatchSource`` yields the batches (from the feature
cache for the feature-based way, from tokenised text for fine-tuning).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


class BatchSource(Protocol):
    def __len__(self) -> int: ...

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[dict[str, Any]]:
        """Yield ``{"inputs": {...}, "labels": (B,), "index": (B,)}``; shuffled when ``rng`` is given."""
        ...


@dataclass
class LoopArgs:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 3
    metric: str = "accuracy"
    max_grad_norm: float | None = 1.0
    seed: int = 13
    progress: bool = True


@dataclass
class FitResult:
    best_metric: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    examples_seen: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; biases, norms and scalar-mix weights are left alone."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for _, p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for _, p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]


def predict_outputs(model: nn.Module, source: BatchSource, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Model outputs for every example of ``source`` in order, and the labels if the batches carry them."""
    model.eval()
    outputs, labels, index = [], [], []
    with torch.inference_mode():
        for batch in source.batches(batch_size):
            outputs.append(model(**batch["inputs"]).float().numpy())
            index.append(batch["index"].numpy())
            if "labels" in batch:
                labels.append(batch["labels"].numpy())
    order = np.argsort(np.concatenate(index))  # batches may come length-sorted: restore input order
    return np.concatenate(outputs)[order], (np.concatenate(labels)[order] if labels else None)


def fit(
    model: nn.Module,
    train: BatchSource,
    dev: BatchSource,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    evaluate: Callable[[nn.Module, BatchSource], dict[str, Any]],
    args: LoopArgs,
) -> FitResult:
    """Train ``model`` in place; it ends holding the weights of its best dev epoch."""
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    optimizer = torch.optim.AdamW(_param_groups(model, args.weight_decay), lr=args.lr)
    result = FitResult(best_metric=-float("inf"), best_epoch=0)
    best_state, stale, began = None, 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, count = 0.0, 0
        steps = -(-len(train) // args.batch_size)
        with tqdm(total=steps, desc=f"epoch {epoch}", unit="batch", disable=not args.progress, leave=False) as bar:
            for batch in train.batches(args.batch_size, rng):
                loss = loss_fn(model(**batch["inputs"]), batch["labels"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if args.max_grad_norm:
                    nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                total += loss.item() * len(batch["labels"])
                count += len(batch["labels"])
                bar.update(1)
                bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
        scores = evaluate(model, dev)
        score = float(scores[args.metric])
        result.history.append({"epoch": epoch, "train_loss": total / max(count, 1), f"dev_{args.metric}": score})
        result.examples_seen += count
        if args.progress:
            tqdm.write(f"epoch {epoch}: train loss {total / max(count, 1):.4f}, dev {args.metric} {score:.4f}")
        if score > result.best_metric:
            result.best_metric, result.best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= args.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - began
    return result
