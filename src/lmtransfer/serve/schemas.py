"""What the encoder routes accept, checked by pydantic, so that a bad request is answered 422 with the
field that is wrong before any model sees it: ``/v1/embeddings`` takes the OpenAI embeddings request,
``/v1/features`` texts with the layers and pooling wanted. A run's body is its task's
(``Task.request_model``, from ``lmtransfer.tasks.requests``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmtransfer.core import choices as c
from lmtransfer.tasks.requests import Text


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. ``encoding_format`` base64 is what OpenAI's Python client asks for
    unless told otherwise: little-endian float32 bytes. Token-id inputs are not taken."""

    model_config = ConfigDict(extra="forbid")

    input: Text | Annotated[list[Text], Field(min_length=1)]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class FeaturesRequest(BaseModel):
    """Raw features of an encoder: for each text, one pooled vector per chosen hidden state (0 is the
    embeddings, then one per block), not normalised."""

    model_config = ConfigDict(extra="forbid")

    input: Text | Annotated[list[Text], Field(min_length=1)]
    model: str | None = None
    layers: Literal["all", "last"] | int | Annotated[list[int], Field(min_length=1, max_length=64)] = "last"
    pooling: Literal[c.SENTENCE_POOLINGS] = "mean"  # type: ignore[valid-type]

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
