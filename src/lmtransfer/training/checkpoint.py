"""Training checkpoints: periodic ones (keep the last N) and the best on dev, each written atomically.

A checkpoint is a folder: ``model.safetensors`` (every weight of the unwrapped model),
``optimizer.pt`` and ``scheduler.pt`` (read back with ``torch.load(weights_only=True)``: plain
tensors and numbers, no pickled code), ``rng-<rank>.pt`` (each process's torch RNG, so that dropout
continues as it would have), and ``state.json`` (where the loop was: epoch, batches done, best score,
history). It is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lmtransfer.core.atomic import existing_dir, remove_dir, settle_dir, write_dir


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class Checkpoints:
    """The checkpoint folder of one run: ``step-NNNNNNN/`` periodic ones and ``best/``."""

    def __init__(self, root: str | Path, keep: int = 2) -> None:
        self.root = Path(root)
        self.keep = keep

    def clear(self) -> None:
        remove_dir(self.root)

    def periodic(self) -> list[Path]:
        return sorted(p for p in self.root.glob("step-*") if (p / "state.json").is_file())

    def latest(self) -> Path | None:
        found = self.periodic()
        return found[-1] if found else None

    def _write(self, name: str, files: dict[str, Any]) -> Path:
        """Write ``files`` (name -> writer callable) into ``root/name`` atomically."""

        def fill(folder: Path) -> None:
            for file_name, write in files.items():
                write(folder / file_name)

        return write_dir(self.root / name, fill)

    def _tidy(self) -> None:
        """Keep the last ``keep`` periodic checkpoints and the best; drop older ones and killed writes' debris."""
        settle_dir(self.root / "best")
        kept = {p.name for p in self.periodic()[-self.keep :]} | {"best"}
        for path in self.root.iterdir():
            ours = path.name.startswith("step-") or path.name.endswith((".tmp", ".old", ".removing"))
            if ours and path.name not in kept:
                shutil.rmtree(path, ignore_errors=True)

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer,
        scheduler,
        state: dict[str, Any],
        rng: dict[int, dict[str, torch.Tensor]],
    ) -> Path:
        files = {
            "model.safetensors": lambda p: save_file(_cpu_state(model), p),
            "optimizer.pt": lambda p: torch.save(optimizer.state_dict(), p),
            "scheduler.pt": lambda p: torch.save(scheduler.state_dict(), p),
            "state.json": lambda p: p.write_text(json.dumps(state, indent=2), encoding="utf-8"),
        }
        for rank, states in rng.items():
            files[f"rng-{rank}.pt"] = lambda p, s=states: torch.save(s, p)
        path = self._write(f"step-{step:07d}", files)
        self._tidy()
        return path

    def save_best(self, model_state: dict[str, torch.Tensor], state: dict[str, Any]) -> Path:
        return self._write(
            "best",
            {
                "model.safetensors": lambda p: save_file(model_state, p),
                "state.json": lambda p: p.write_text(json.dumps(state, indent=2), encoding="utf-8"),
            },
        )

    def best_state(self) -> dict[str, torch.Tensor] | None:
        path = existing_dir(self.root / "best") / "model.safetensors"
        return load_file(path) if path.is_file() else None

    @staticmethod
    def load(path: Path, model: torch.nn.Module, optimizer, scheduler, rank: int) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and this rank's RNG; return the loop state."""
        model.load_state_dict(load_file(path / "model.safetensors"))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rng_file = path / f"rng-{rank}.pt"
        if rng_file.is_file():
            set_rng_state(torch.load(rng_file, weights_only=True))
        return json.loads((path / "state.json").read_text(encoding="utf-8"))
