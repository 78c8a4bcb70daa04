"""How long a run trains, when dev is evaluated, and whether it converged: the budget counted in optimizer
steps, so that a small training set gets as many updates as a large one, and one stated rule for
"converged" that the loop records and compare reads.

- **Budget**: a run takes ``epochs`` passes over its training set, raised to as many as ``min_steps``
  optimizer steps need (at 50 examples and batch 16, one epoch is 4 steps: 3 epochs are 12 updates, far
  too few for fine-tuning to converge). Early stopping never ends a run before ``min_steps``.
- **Evaluations**: dev is scored before the first step, every ``eval_steps`` optimizer steps (by default
  twice an epoch, but never closer than ``EVAL_GAP`` steps nor more than ``MAX_EVALUATIONS`` times), and
  after the last step; patience counts these
  evaluations, so "3 without improvement" always means three evaluations with real updates between them.
- **Converged**: the run beat the dev score it had before training (one that never did learned nothing:
  a learning rate too small, say), and its best dev evaluation is followed by ``patience`` evaluations
  without improvement (what early stopping waits for), or the last third of the evaluations gains at most
  ``CONVERGED_DELTA`` over the best of the two thirds before it. A third, not the last ``patience``
  evaluations: the learning rate decays to zero at the end of the budget, which flattens any curve's last
  few points. A run that ended at
  its budget while still improving did not converge; nor did one with too few evaluations to tell
  (``MIN_EVALUATIONS``), or one a search's pruner stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EVAL_GAP = 10  # fewest optimizer steps between two automatic dev evaluations
EVALS_PER_EPOCH = 2  # automatic evaluations per epoch where an epoch is long enough
MAX_EVALUATIONS = 20  # automatic evaluations in a budget, at most
CONVERGED_DELTA = 0.005  # half a point of accuracy or F1: smaller late gains are within dev noise
MIN_EVALUATIONS = 6  # fewer cannot show a plateau
RULE = (
    "converged: the run beat its dev score before training, and its best dev evaluation is followed by `patience` "
    f"evaluations without improvement, or the last third of at least {MIN_EVALUATIONS} evaluations gains at most "
    f"{CONVERGED_DELTA} over the best before it"
)


def planned_epochs(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """Epochs a run takes: ``epochs``, or more where they hold fewer than ``min_steps`` optimizer steps."""
    return max(epochs, -(-min_steps // max(steps_per_epoch, 1)))


def eval_interval(steps_per_epoch: int, budget: int, eval_steps: int | None = None) -> int:
    """Optimizer steps between two dev evaluations: ``eval_steps`` when given, else ``EVALS_PER_EPOCH`` an
    epoch, but at least ``EVAL_GAP`` steps apart and at most ``MAX_EVALUATIONS`` in the budget (a dev set
    many times the training set's size would otherwise cost more than the training)."""
    if eval_steps:
        return eval_steps
    return max(EVAL_GAP, -(-steps_per_epoch // EVALS_PER_EPOCH), -(-budget // MAX_EVALUATIONS))


@dataclass(frozen=True)
class Convergence:
    """What a run's dev curve says of its training length (``metrics.json``'s ``convergence``)."""

    converged: bool | None  # None: no dev set, nothing to judge by
    reason: str  # one line: why (or why not)
    steps: int  # optimizer steps taken
    budget_steps: int  # optimizer steps the budget allowed
    best_step: int | None  # the step of the best dev evaluation
    evaluations: int
    eval_steps: int  # optimizer steps between two evaluations
    patience: int
    stopped_early: bool  # patience ended the run before its budget

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"rule": RULE}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Convergence | None:
        if not data:
            return None
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def judge(scores: list[float], patience: int, pruned: bool = False, untrained: bool = False) -> tuple[bool | None, str]:
    """Whether a dev curve (one score per evaluation, higher is better) converged, by ``RULE``, and why.
    ``untrained``: the first score is the model's before any step."""
    if not scores:
        return None, "no dev evaluations"
    if pruned:
        return False, "stopped by a search's pruner"
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # the first of equal bests
    if untrained and best == 0:
        return False, "never beat its dev score before training (learning rate too small?)"
    after = len(scores) - 1 - best
    if after >= patience:
        return True, f"best dev at evaluation {best + 1} of {len(scores)}, then {after} without improvement"
    if len(scores) < MIN_EVALUATIONS:
        return False, f"{len(scores)} dev evaluations, too few to tell"
    late = len(scores) - len(scores) // 3  # the first evaluation of the last third
    gain = max(scores[late:]) - max(scores[:late])
    if gain <= CONVERGED_DELTA + 1e-9:  # (a gain of exactly the delta, in floating point)
        return True, f"the last third of the evaluations gained {gain:+.4f} over the earlier best"
    return False, f"still improving: the last third of the evaluations gained {gain:+.4f} over the earlier best"
