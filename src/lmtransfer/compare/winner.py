"""Which run a comparison's verdict chose: the best variant on dev at the largest training size (any kind,
baselines included, and the ways that train nothing, which stand beside every size; never an under-trained
one), and of its seeds the one best on dev. Written as the
folder's ``best.json`` (``runs.winner`` reads it), with the run's path relative to the folder, so that the
folder can be moved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmtransfer.compare.results import Summary, latest
from lmtransfer.compare.row import Row
from lmtransfer.compare.verdict import train_sizes
from lmtransfer.core.atomic import atomic_write_json
from lmtransfer.core.choices import METRICS, oriented
from lmtransfer.runs.winner import WINNER_FILE


def winner(rows: list[Row], summaries: list[Summary], directory: Path) -> dict[str, Any] | None:
    """``best.json``'s content: the chosen run and why; None where no run finished."""
    sizes = train_sizes(summaries)
    here = [s for s in summaries if not sizes or s.train_size in (sizes[-1], None)]
    ranked = [s for s in here if s.dev is not None and not s.under_trained]
    if not ranked:
        return None
    best = max(ranked, key=lambda s: oriented(s.metric, s.dev.mean))
    seeds = [
        r
        for r in latest([r for r in rows if not r.is_trial])
        if (r.variant, r.encoder, r.train_size) == (best.variant, best.encoder, best.train_size)
        and r.status == "ok"
        and r.run_dir
        and r.dev
    ]
    if not seeds:
        return None
    chosen = max(seeds, key=lambda r: oriented(best.metric, r.dev[best.metric]))
    inside = _within(Path(chosen.run_dir), directory)
    name = METRICS[best.metric].name
    at = f" at {best.train_examples:,} training examples" if best.train_examples else ""
    return {
        "run_dir": inside,
        "variant": best.variant,
        "encoder": best.encoder,
        "kind": best.kind,
        "train_size": best.train_size,
        "seed": chosen.seed,
        "metric": best.metric,
        "dev": chosen.dev[best.metric],
        "why": f"{best.variant} ({best.kind}), best dev {name}{at}, seed {chosen.seed}",
    }


def _within(run: Path, directory: Path) -> str:
    """``run``'s path from ``directory`` where it lies in it, whatever folder compare ran from (a row's run_dir
    is the comparison's output_dir as written, then runs/...); else its absolute path."""
    for start in range(len(run.parts)):
        tail = Path(*run.parts[start:])
        if not tail.is_absolute() and (directory / tail).is_dir():
            return tail.as_posix()
    return str(run.resolve())


def write_winner(rows: list[Row], summaries: list[Summary], directory: Path) -> dict[str, Any] | None:
    """Write (or remove, where no run finished) the folder's ``best.json``."""
    found = winner(rows, summaries, directory)
    path = directory / WINNER_FILE
    if found is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_json(path, found)
    return found
