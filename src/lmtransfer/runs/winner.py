"""A comparison folder as a run: its ``best.json`` names the run its verdict chose, so that ``predict``,
``evaluate``, ``serve``, ``export`` and ``push`` take the folder itself and use that run (and say which).
``compare`` writes the file (``lmtransfer.compare.winner``); this module only reads it, below compare."""

from __future__ import annotations

import json
from pathlib import Path

from lmtransfer.core.errors import LmtError

WINNER_FILE = "best.json"


def winner_of(folder: str | Path) -> tuple[Path, str] | None:
    """(the run, a line that says which and why) where ``folder`` is a comparison folder with a winner; None
    for any other folder (a run folder is taken as it is)."""
    folder = Path(folder)
    path = folder / WINNER_FILE
    if not path.is_file():
        return None
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        run = folder / best["run_dir"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise LmtError("not a comparison's winner (run_dir missing)", path=path) from None
    if not run.is_dir():
        raise LmtError(f"its winner {best['run_dir']} is not in the folder (moved or removed?)", path=path)
    return run, f"{folder}: the comparison's winner, {best.get('why', best['run_dir'])} ({run})"


def run_folder(folder: str | Path) -> Path:
    """``folder``, or the run its ``best.json`` names where it is a comparison folder."""
    found = winner_of(folder)
    return Path(folder) if found is None else found[0]
