"""Progress bars that suit where they are shown: tqdm's bar on a terminal (or in a notebook), and where
stderr is a log file or a pipe, the same line written whole every ``LOG_SECONDS`` seconds and at the end,
with no carriage-return frames to scroll through. Every bar of lmtransfer is this one."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm

LOG_SECONDS = 30.0  # between two lines of a bar written to a log


class _Lines:
    """A stream that takes tqdm's writes as whole lines: carriage returns and bare line ends are dropped."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def plain(stream: Any = None) -> bool:
    """Whether bars on ``stream`` (stderr) are written as lines: it is no terminal, and this is no notebook."""
    stream = stream if stream is not None else sys.stderr
    notebook = "notebook" in getattr(tqdm, "__module__", "")
    return not notebook and not (hasattr(stream, "isatty") and stream.isatty())


class Progress(tqdm):
    """``tqdm`` (same arguments), written as periodic lines where ``plain()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._plain = not kwargs.get("disable") and plain(kwargs.get("file"))
        if self._plain:
            kwargs["file"] = _Lines(kwargs.get("file") or sys.stderr)
            kwargs["mininterval"] = max(kwargs.get("mininterval", 0.0), LOG_SECONDS)
            kwargs["dynamic_ncols"] = False
            kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self._plain and msg is None and self.n == self.initial:  # a log needs no line before any progress
            return True
        return super().display(msg, pos)


def hide_library_bars() -> None:
    """Leave out the bars of huggingface_hub and transformers (downloads, "Writing model shards"); set before
    those libraries are imported."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def quiet_libraries_when_logged() -> None:
    """Where stderr is a log, the libraries' bars are left out: they would write carriage-return frames."""
    if plain():
        hide_library_bars()
