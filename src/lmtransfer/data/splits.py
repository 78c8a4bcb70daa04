"""The one split container, and how train / dev / test are made of what was read: held out of train where
no file is given (stratified by label where every class fits on both sides), then sampled down to a fixed
random subset where the config asks for it. The same for every task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import numpy as np

from lmtransfer.config.schema import DataConfig
from lmtransfer.core.errors import DataError
from lmtransfer.data.examples import TextPair

T = TypeVar("T")


@dataclass
class Split(Generic[T]):
    """One split as read: its items (texts or ``TextPair``s, CoNLL sentences, SQuAD questions) and where
    they came from.

    ``labels`` are the label fields of text items as read (sentences and questions carry their own gold);
    ``lines`` the line each item was read from, where known, so that a later check can name it.
    ``labelled`` is False for input to predict; ``version`` is the format version a file declares (SQuAD's).
    """

    items: list[T]
    origin: str
    labels: list[str] | None = None
    lines: list[int | None] = field(default_factory=list)
    labelled: bool = True
    version: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: Sequence[int] | np.ndarray | None) -> Split[T]:
        """The items at ``indices``, in that order (all of them for None)."""
        if indices is None:
            return self
        return replace(
            self,
            items=[self.items[i] for i in indices],
            labels=None if self.labels is None else [self.labels[i] for i in indices],
            lines=[self.lines[i] for i in indices] if self.lines else [],
        )

    @property
    def texts(self) -> list[str]:
        """A split of texts: the (first) text of each item."""
        return [item.first if isinstance(item, TextPair) else item for item in self.items]

    @property
    def pairs(self) -> list[str] | None:
        """A split of sentence pairs: the second text of each item (None for single texts)."""
        if not self.items or not isinstance(self.items[0], TextPair):
            return None
        return [item.second for item in self.items]


def hold_out(split: Split, fraction: float, seed: int, name: str, stratify: bool = True) -> tuple[Split, Split]:
    """Seeded hold-out of the ``name`` set: (rest, held_out), both in file order; stratified by label where
    ``stratify`` and every class fits on both sides."""
    from sklearn.model_selection import train_test_split  # scikit-learn (with scipy) is slow to import

    held = math.ceil(fraction * len(split))  # as train_test_split counts
    if held >= len(split):
        message = f"{len(split)} examples are too few to split off a {name} set; give a {name} file or more examples"
        raise DataError(message, path=split.origin)
    strata = None
    if stratify and split.labels is not None:
        labels = np.array(split.labels)
        _, counts = np.unique(labels, return_counts=True)
        fits = min(held, len(split) - held) >= len(counts)
        strata = labels if counts.min() >= 2 and fits else None
    rest, out = train_test_split(np.arange(len(split)), test_size=fraction, random_state=seed, stratify=strata)
    return split.subset(np.sort(rest)), split.subset(np.sort(out))


def sample_indices(size: int, limit: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of ``limit`` items, or None when all are kept. Subsets of one
    seed are nested (the first ``limit`` of one seeded permutation): 100 examples are among the 300, which
    are among the 1,000, as a learning curve over training-set sizes needs."""
    if not limit or limit >= size:
        return None
    return np.sort(np.random.default_rng(seed).permutation(size)[:limit])


def make_splits(
    train: Split,
    dev: Split | None,
    test: Split | None,
    config: DataConfig,
    stratify: bool = True,
    hold_out_test: bool = True,
) -> dict[str, Split]:
    """train / dev (/ test): test, then dev, held out of train where no file gave them, then each cut to the
    config's ``max_train_examples`` / ``max_eval_examples``. Without ``hold_out_test`` a missing test set
    stays missing (QA then reports dev alone)."""
    dev_fraction = config.dev_fraction
    if test is None and hold_out_test:
        train, test = hold_out(train, config.test_fraction, config.split_seed, "test", stratify)
        dev_fraction = config.dev_fraction / (1 - config.test_fraction)  # of what is left
    if dev is None:
        train, dev = hold_out(train, dev_fraction, config.split_seed, "dev", stratify)
    splits = {"train": train, "dev": dev} | ({} if test is None else {"test": test})
    limits = {"train": config.max_train_examples}
    return {
        name: split.subset(sample_indices(len(split), limits.get(name, config.max_eval_examples), config.split_seed))
        for name, split in splits.items()
    }
