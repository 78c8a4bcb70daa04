"""The base of every config section: a frozen pydantic model that refuses unknown keys; and fields whose
allowed names are read when a config is checked (``registered``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def registered(names: Callable[[], Iterable[str]]) -> Any:
    """A name field whose allowed values ``names()`` gives when a config is validated, not when the schema
    is built: a task, head, way or backend registered after import (a plug-in, a test's toy) is taken as
    the built-in ones are. A ``Literal`` is fixed at import. The error reads as pydantic's for a Literal."""

    def check(value: str) -> str:
        allowed = tuple(names())
        if value not in allowed:
            quoted = [f"'{name}'" for name in allowed]
            expected = " or ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    check.names = names  # what the field takes, for a reader of the schema (the CLI's choices, a test)
    return Annotated[str, AfterValidator(check)]
