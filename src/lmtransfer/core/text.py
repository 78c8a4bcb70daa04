"""Small text helpers every reader shares: UTF-8 decoding that names the line, lone surrogates, line ends,
and byte counts for people."""

from __future__ import annotations

import re
from pathlib import Path

from lmtransfer.core.errors import DataError, LmtError

# The line ends of text files: CR LF, CR or LF. (``str.splitlines`` also breaks at U+2028 and others,
# which JSON strings and corpus lines may hold.)
LINE_END = re.compile(r"\r\n|\r|\n")


def read_bytes(path: Path, error: type[LmtError] = DataError, what: str = "file") -> bytes:
    """The bytes of ``path``; a missing or unreadable one (a directory, no permission) is an ``error``."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found", path=path) from None
    except OSError as exc:
        raise error(f"cannot read ({exc.strerror or exc})", path=path) from None


def decode_utf8(raw: bytes, path: str | Path) -> str:
    """``raw`` as UTF-8 text, a leading byte-order mark dropped; bad bytes raise a DataError with their line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"bytes that are not UTF-8 (0x{raw[exc.start]:02x} at column {column})", path=path, line=line
        ) from None


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text``, or None. Only an escape (JSON's ``\\ud800``) can make one, and
    it is not valid text: encoding it (tokenizer, data fingerprint) would fail."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start]
    return None


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (binary units)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
