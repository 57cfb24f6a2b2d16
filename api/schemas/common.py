"""Field types shared by the schemas: bounded, printable text and aware UTC times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["INT32_MAX", "DbId", "In", "Name", "Note", "Out", "UtcDatetime", "no_control", "text"]

# NUL and lone surrogates cannot be stored (PostgreSQL refuses NUL; UTF-8 has no surrogates).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
INT32_MAX = 2**31 - 1


def no_control(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


def text(max_length: int, min_length: int = 1) -> object:
    """A stripped string of ``min_length`` to ``max_length`` characters, storable on every backend."""
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
                     AfterValidator(no_control)]


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


# Times sent to the API must say their offset ("2026-12-01T09:00:00Z" or "+01:00"): a naive time would be a guess.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
# Database ids are 32-bit on PostgreSQL; larger numbers cannot name anything.
DbId = Annotated[int, Field(ge=1, le=INT32_MAX)]


class In(BaseModel):
    """A request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """A response body, built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


Name = text(200)
Note = text(2000)
