"""Outputs of a model for every example of a dataset, in input order: batches in the dataset's evaluation
order (longest first, so that they pad little), gathered over processes under ``accelerate``."""

from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lmtransfer.core.progress import Progress
from lmtransfer.training.datasets import as_is


def eval_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    order = dataset.eval_order() if hasattr(dataset, "eval_order") else range(len(dataset))
    return DataLoader(
        dataset, batch_size=batch_size, sampler=list(order), collate_fn=as_is, generator=torch.Generator()
    )


def predict_outputs(
    model: nn.Module,
    loader: DataLoader | Dataset,
    batch_size: int = 64,
    accelerator: Accelerator | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Outputs for every example in input order (gathered over processes), and labels if there are any."""
    if not isinstance(loader, DataLoader):
        loader = eval_loader(loader, batch_size)
        if accelerator is not None:
            loader = accelerator.prepare(loader)
    model.eval()
    outputs, labels, index = [], [], []
    with torch.inference_mode():
        for batch in Progress(
            loader, desc="predict", unit="batch", disable=not progress, leave=False, dynamic_ncols=True
        ):
            out, idx = model(**batch["inputs"]).float(), batch["index"]
            lab = batch.get("labels", torch.zeros_like(idx))
            if accelerator is not None:
                if out.ndim > 2:  # per word or token: processes' batches differ in length
                    out = accelerator.pad_across_processes(out, dim=1)
                if lab.ndim > 1:
                    lab = accelerator.pad_across_processes(lab, dim=1, pad_index=-100)
                out, idx, lab = accelerator.gather_for_metrics((out, idx, lab))
            outputs.append(out.cpu().numpy())
            index.append(idx.cpu().numpy())
            labels.append(lab.cpu().numpy())
    order = np.argsort(np.concatenate(index))
    has_labels = "labels" in batch
    return _stack(outputs, 0.0)[order], (_stack(labels, -100)[order] if has_labels else None)


def _stack(parts: list[np.ndarray], fill: float) -> np.ndarray:
    """Concatenate batches along axis 0, padding axis 1 (words, tokens) to the longest with ``fill``."""
    if not parts or parts[0].ndim < 2 or len({p.shape[1] for p in parts}) == 1:
        return np.concatenate(parts)
    width = max(p.shape[1] for p in parts)
    out = np.full((sum(len(p) for p in parts), width, *parts[0].shape[2:]), fill, dtype=parts[0].dtype)
    row = 0
    for p in parts:
        out[row : row + len(p), : p.shape[1]] = p
        row += len(p)
    return out
