"""What the training loop (``training.loop.fit``) is told, where it is while it runs, and what it returns.

``LoopState`` is what a checkpoint saves beside the weights, so a resumed fit goes on at the same step,
with the same patience count and dev history; ``FitResult.convergence`` reads that history by the rule
of ``training.convergence``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lmtransfer.core.choices import oriented
from lmtransfer.training.convergence import Convergence, judge

RECENT = 50  # training losses kept in FitResult.recent_losses
AfterEvaluation = Callable[[int, float], bool]  # (optimizer step, its dev score, higher is better) -> stop here


@dataclass
class LoopArgs:
    epochs: int = 20
    max_steps: int | None = None  # optimizer steps to run instead of ``epochs`` (as many passes as they take)
    min_steps: int = 0  # the budget is at least this many optimizer steps (more epochs); no early stop before
    eval_steps: int | None = None  # optimizer steps between dev evaluations (None: training.convergence's rule)
    batch_size: int = 64  # examples per optimizer step, over all processes and accumulation steps
    lr: float = 1e-3  # used when no parameter groups are given
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    grad_accum: int = 1
    group_by_length: bool = True  # batches of similar length, where the training set knows its lengths
    patience: int = 3  # dev evaluations without improvement before stopping
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
    best_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per dev evaluation (or epoch)
    train_seconds: float = 0.0  # optimizer steps only, dev evaluation excluded
    seconds: float = 0.0  # the whole fit, dev evaluation included
    examples: int = 0
    tokens: int = 0  # real (unpadded) tokens that went through a live encoder
    steps: int = 0
    budget_steps: int = 0  # optimizer steps the budget allowed
    eval_steps: int = 0  # optimizer steps between two dev evaluations
    stopped_early: bool = False  # patience ended training before the budget
    recent_losses: list[float] = field(default_factory=list)  # of the last RECENT micro-batches
    pruned_step: int | None = None  # the step after whose evaluation ``after_evaluation`` stopped training
    pruned_epoch: int | None = None  # the epoch that step fell in

    def convergence(self, metric: str, patience: int) -> Convergence:
        """What the dev curve says of the training length (``training.convergence.judge``)."""
        scored = [e for e in self.history if e.get(f"dev_{metric}") is not None]
        scores = [oriented(metric, float(e[f"dev_{metric}"])) for e in scored]
        untrained = bool(scored) and scored[0].get("step") == 0
        converged, reason = judge(scores, patience, pruned=self.pruned_step is not None, untrained=untrained)
        best = self.best_step if scores else None
        return Convergence(
            converged,
            reason,
            self.steps,
            self.budget_steps,
            best,
            len(scores),
            self.eval_steps,
            patience,
            self.stopped_early,
        )


@dataclass
class LoopState:
    """Where a fit is: what a checkpoint saves and a resumed fit starts from."""

    epoch: int = 1  # the epoch in progress
    batches_done: int = 0  # micro-batches of that epoch already trained
    step: int = 0  # optimizer steps so far
    stale: int = 0  # dev evaluations since the dev metric last improved
    evaluated_step: int = -1  # the step of the last dev evaluation
    loss_sum: float = 0.0  # the training loss since the last history entry (this process)
    loss_count: int = 0
    logged_sum: float = 0.0  # the training loss since the trackers last got it
    logged_count: int = 0
    done: bool = False  # early stopping, a pruner or max_steps ended training
    result: FitResult = field(default_factory=FitResult)
