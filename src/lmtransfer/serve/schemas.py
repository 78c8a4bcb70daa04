"""What the HTTP API accepts: one request body per kind of input, checked by pydantic, so that a bad
request is answered 422 with the field that is wrong (``inputs.3.context``) before any model sees it.

The task of a run decides its body: texts; pairs (``{"text", "text_pair"}`` or a two-item list); words to
tag (a list of words, or a text split on whitespace); questions with their context. ``/v1/embeddings``
takes the OpenAI embeddings request, ``/v1/features`` texts with the layers and pooling wanted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Bodies are read by pydantic's JSON parser, which refuses lone UTF-16 surrogates (\ud800) as invalid JSON,
# so every text that gets through can be encoded for a tokenizer.
Text = str
Word = Annotated[str, Field(min_length=1)]


def _has_words(text: str) -> str:
    if not text.split():
        raise ValueError("a text to tag needs at least one word")
    return text


WordsText = Annotated[str, AfterValidator(_has_words)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pair(_Body):
    text: Text
    text_pair: Text


class Question(_Body):
    question: Text
    context: Text
    id: Annotated[str, Field(max_length=200)] | None = None


class TextsRequest(_Body):
    inputs: list[Text] = Field(min_length=1)


class PairsRequest(_Body):
    inputs: list[Pair | tuple[Text, Text]] = Field(min_length=1)

    def items(self) -> list[tuple[str, str]]:
        return [(p.text, p.text_pair) if isinstance(p, Pair) else tuple(p) for p in self.inputs]


class WordsRequest(_Body):
    inputs: list[Annotated[list[Word], Field(min_length=1)] | WordsText] = Field(min_length=1)


class QARequest(_Body):
    inputs: list[Question] = Field(min_length=1)

    def items(self) -> list[dict[str, str]]:
        return [q.model_dump(exclude_none=True) for q in self.inputs]


def request_model(task: str, pairs: bool) -> type[_Body]:
    """The body ``POST /v1/predict/{run}`` takes for a run of ``task`` (of pairs or not)."""
    if task == "qa":
        return QARequest
    if task == "tagging":
        return WordsRequest
    return PairsRequest if pairs else TextsRequest


def request_items(body: _Body) -> list[Any]:
    """The inputs of a checked body as ``lmtransfer predict`` takes them."""
    return body.items() if hasattr(body, "items") else list(body.inputs)


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
    pooling: Literal["mean", "cls", "max"] = "mean"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
