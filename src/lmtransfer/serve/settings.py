"""The server's settings and their defaults, which the serve command's options show and pass on.

Kept apart from the app so that the command line can read the defaults without importing FastAPI.
"""

from __future__ import annotations

from dataclasses import dataclass

ENCODER_MAX_LENGTH = 256  # tokens of a text an encoder reads; longer texts are cut


@dataclass(frozen=True)
class Settings:
    """How the server batches and what it accepts (the serve command's options)."""

    max_batch_tokens: int = 16384
    max_wait_ms: float = 5.0
    max_queue: int = 1024  # inputs waiting, over all models; more is refused with 503
    max_inputs: int = 256  # inputs in one request; more is 413
    max_body_bytes: int = 4 * 1024 * 1024
    api_key: str | None = None
    batching: bool = True
