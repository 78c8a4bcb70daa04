"""A toy training set and model for the loop's own tests: what training.loop.fit needs, and nothing else."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class ToyData(Dataset):
    """``n`` random 4-vectors labelled 0 / 1 alternately; a batch comes from __getitems__, as the loop's does."""

    def __init__(self, n: int):
        self.x, self.y = torch.randn(n, 4, generator=torch.Generator().manual_seed(0)), torch.arange(n) % 2

    def __len__(self) -> int:
        return len(self.y)

    def __getitems__(self, rows):
        return {"inputs": {"x": self.x[rows]}, "labels": self.y[rows], "index": torch.tensor(rows)}


class ToyModel(nn.Linear):
    """A linear layer that takes the batch's inputs by name."""

    def __init__(self):
        super().__init__(4, 2)

    def forward(self, x):
        return super().forward(x)


def accuracy(outputs, labels) -> dict[str, float]:
    return {"accuracy": float((outputs.argmax(-1) == labels).mean())}
