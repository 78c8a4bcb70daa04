"""The request bodies a served run takes, one per kind of input, checked by pydantic so that a bad request
is answered 422 naming the field that is wrong (``inputs.3.context``) before any model sees it. Each task
says which is its own (``Task.request_model``); ``items()`` gives a checked body's inputs as the task's
``parse`` takes them.

Bodies are read by pydantic's JSON parser, which refuses lone UTF-16 surrogates (\\ud800) as invalid JSON,
so every text that gets through can be encoded for a tokenizer.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Text = str
Word = Annotated[str, Field(min_length=1)]


def _has_words(text: str) -> str:
    if not text.split():
        raise ValueError("a text to tag needs at least one word")
    return text


WordsText = Annotated[str, AfterValidator(_has_words)]


class Body(BaseModel):
    """A request body: unknown keys refused; ``inputs`` as ``Task.parse`` takes them from ``items()``."""

    model_config = ConfigDict(extra="forbid")

    def items(self) -> list[Any]:
        return list(self.inputs)


class Pair(Body):
    text: Text
    text_pair: Text


class Question(Body):
    question: Text
    context: Text
    id: Annotated[str, Field(max_length=200)] | None = None


class TextsRequest(Body):
    inputs: list[Text] = Field(min_length=1)


class PairsRequest(Body):
    inputs: list[Pair | tuple[Text, Text]] = Field(min_length=1)

    def items(self) -> list[tuple[str, str]]:
        return [(p.text, p.text_pair) if isinstance(p, Pair) else tuple(p) for p in self.inputs]


class WordsRequest(Body):
    inputs: list[Annotated[list[Word], Field(min_length=1)] | WordsText] = Field(min_length=1)


class QARequest(Body):
    inputs: list[Question] = Field(min_length=1)

    def items(self) -> list[dict[str, str]]:
        """The questions; one without an id gets its place in the request, as ``lmtransfer predict`` gives it,
        before it is batched with other requests' questions."""
        return [q.model_dump(exclude_none=True) | {"id": q.id or str(i)} for i, q in enumerate(self.inputs)]
