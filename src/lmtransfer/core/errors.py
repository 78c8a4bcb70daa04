"""lmtransfer's own error type: one line that says where the problem is and what it is."""

from __future__ import annotations

from pathlib import Path


def shown(text: str) -> str:
    """``text`` fit for a one-line message: line breaks, control characters and lone surrogates escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


class LmtError(Exception):
    """A user-facing error. ``str(err)`` is one line: ``file: line N: field 'f': message``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)


class DataError(LmtError):
    """Bad input data: a missing column, an empty text, an unknown label, undecodable bytes."""


class ConfigError(LmtError):
    """A config value that does not validate."""


class ModelError(LmtError):
    """A model that cannot be found or loaded as asked."""


class CacheError(LmtError):
    """A feature cache that is missing, incomplete or corrupt."""
