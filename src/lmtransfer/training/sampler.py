"""The order in which training sees its examples: fresh each epoch, fixed by the seed, optionally grouped
by length, and the same for a resumed run (which skips what it already trained on)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A fresh order each epoch, fixed by (seed, epoch), optionally without its first ``skip`` items.

    With ``lengths`` and ``group``, examples of similar length share a batch: the shuffled examples
    are cut into pools of 50 batches, each pool sorted by length and cut into batches of ``group``,
    and those batches are shuffled. Each batch then pads to a length close to its members', where a
    random batch of short sentences pads to its one long outlier. The batch with the longest example
    goes first: a run that does not fit in memory fails at its first step rather than hours in, and
    a one-epoch run peaks before the optimizer's moments exist. (Trainer's ``group_by_length`` does
    both; here it is on by default and the order is also what a resumed run skips through.)

    A resumed run sees the same order and skips what it already trained on. (Deliberately no
    ``set_epoch``: accelerate would call it with its own count of finished passes, which restarts
    at zero in a resumed process.)
    """

    POOL_BATCHES = 50

    def __init__(self, size: int, seed: int, lengths: np.ndarray | None = None, group: int = 1) -> None:
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0
        self.lengths, self.group = lengths, group

    def start(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size)
        if self.lengths is None or self.group <= 1:
            return order
        pool = self.group * self.POOL_BATCHES
        pools = [order[i : i + pool] for i in range(0, self.size, pool)]
        order = np.concatenate([p[np.argsort(-self.lengths[p], kind="stable")] for p in pools])
        full = self.size // self.group * self.group  # a last, short batch stays last: batches must stay whole
        batches = order[:full].reshape(-1, self.group)[rng.permutation(full // self.group)]
        if len(batches):
            longest = int(np.argmax(self.lengths[batches].max(axis=1)))
            batches[[0, longest]] = batches[[longest, 0]]
        return np.concatenate([batches.reshape(-1), order[full:]])

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :].tolist())

    def __len__(self) -> int:
        return self.size - self.skip
