"""Atomic writes: a file or a whole directory is written beside its target, fsynced, then renamed over it.

A reader sees either the old file (directory) or the whole new one, never a half-written one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def commit_file(tmp: Path, target: Path) -> None:
    """fsync a finished temporary file and rename it to ``target``."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def replace_dir(new: Path, target: Path) -> None:
    """Rename directory ``new`` to ``target``, replacing the directory there.

    It takes two renames (the old one aside, the new one in). A kill between them leaves no ``target``
    but the old directory, whole, at ``.<name>.old``: readers find it with ``existing_dir``, and the
    next writer puts it back first with ``settle_dir``. Nobody ever sees half a directory.
    """
    settle_dir(target)
    old = _old(target)
    if target.exists():
        target.rename(old)
    new.rename(target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def settle_dir(target: Path) -> None:
    """Finish a ``replace_dir`` that a kill cut short: the old directory back, or its leftover gone."""
    old = _old(target)
    if not old.exists():
        return
    if target.exists():  # killed after the new one was in place
        shutil.rmtree(old, ignore_errors=True)
    else:  # killed between the two renames
        old.rename(target)
        fsync_dir(target.parent)


def existing_dir(target: Path) -> Path:
    """``target``, or the old directory that a cut-short ``replace_dir`` left beside it (for readers)."""
    old = _old(target)
    return old if not target.exists() and old.is_dir() else target


def write_dir(target: str | os.PathLike[str], fill: Callable[[Path], None], keep: Sequence[str] = ()) -> Path:
    """Write directory ``target`` whole: ``fill(folder)`` writes into a temporary sibling, every file in it is
    fsynced, the entries named in ``keep`` are carried over from the old ``target`` (hard links where the
    file system has them, so the old directory keeps its own until the swap), and it replaces ``target``
    (``replace_dir``). A kill at any moment leaves the old directory or the new one whole; the temporary
    folders of killed writes are removed by the next write.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    settle_dir(target)  # a replacement that a kill cut short: the old directory back in place first
    for debris in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        shutil.rmtree(debris, ignore_errors=True)
    tmp = _filled(target, fill)
    try:
        for name in keep:
            if (target / name).is_dir():
                shutil.copytree(target / name, tmp / name, copy_function=_link_or_copy)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_dir_once(target: str | os.PathLike[str], fill: Callable[[Path], None]) -> Path:
    """Write directory ``target`` whole unless someone else already has: ``fill(folder)`` writes a temporary
    sibling, which is renamed to ``target``; where another process got there first (two workers filling one
    cache entry), the rename onto its folder fails and the first stays, so a reader never sees it replaced
    (``write_dir`` would swap it). A killed write's temporary folder is removed by a later one after an hour
    (a younger one may be another process's, still being written)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for debris in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        if time.time() - debris.stat().st_mtime > 3600:
            shutil.rmtree(debris, ignore_errors=True)
    tmp = _filled(target, fill)
    try:
        os.rename(tmp, target)
        fsync_dir(target.parent)
    except OSError:
        if not target.is_dir() or not any(target.iterdir()):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _filled(target: Path, fill: Callable[[Path], None]) -> Path:
    """A temporary sibling of ``target`` that ``fill`` wrote, every file in it fsynced (removed if ``fill`` fails)."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


def remove_dir(path: Path) -> None:
    """Delete a directory so that a kill midway never leaves a part of it under its name."""
    doomed = path.with_name(f".{path.name}.removing")
    shutil.rmtree(doomed, ignore_errors=True)
    try:
        path.rename(doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def append_jsonl(path: str | os.PathLike[str], row: Any) -> None:
    """Append one JSON row: the file is rewritten whole and renamed, so a kill never leaves half a row.

    Fine for the small result files it serves (one row per benchmark or compare variant). Writers take
    a lock beside the file first, so that two processes appending to one file (two comparisons sharing
    an output folder) cannot both read the old rows and each drop the other's.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        atomic_write_text(target, old + json.dumps(row) + "\n")
