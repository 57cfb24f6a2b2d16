"""Field types shared by the schemas: bounded, printable text and aware UTC times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["INT32_MAX", "ClaimCode", "DbId", "HomeId", "In", "Name", "Note", "Notes", "Out", "UtcDatetime", "Word",
           "no_control", "printable"]

# NUL and lone surrogates cannot be stored (PostgreSQL refuses NUL; UTF-8 has no surrogates).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
INT32_MAX = 2**31 - 1


def no_control(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


# What people type into names and notes never needs these, and they do harm where the text is shown: ESC starts a
# terminal escape sequence (the CLI, the logs), BEL rings, C1 controls are escapes too, and the bidi overrides and
# isolates (U+202A-U+202E, U+2066-U+2069) make text read differently from what it holds ("Trojan Source").
_BIDI_AND_C1 = "\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL_IN_LINE = re.compile(f"[\x00-\x1f{_BIDI_AND_C1}]")
_CONTROL_IN_PROSE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_BIDI_AND_C1}]")  # tab, LF, CR allowed


def printable(value: str, *, multiline: bool = False) -> str:
    """``value`` if it holds no control character (a note may hold tabs and line breaks), else a ValueError that
    the 422 names the field with."""
    no_control(value)
    found = (_CONTROL_IN_PROSE if multiline else _CONTROL_IN_LINE).search(value)
    if found:
        refused = ("only tabs and line breaks are allowed, not escapes, bells or text-direction overrides"
                   if multiline else "no tabs, line breaks, escapes, bells or text-direction overrides")
        raise ValueError(f"must not contain control characters (found U+{ord(found.group()):04X}): {refused}")
    return value


def _single_line(value: str) -> str:
    return printable(value)


def _multiline(value: str) -> str:
    return printable(value, multiline=True)


def _stripped(max_length: int, min_length: int = 1) -> StringConstraints:
    """Surrounding spaces removed, then ``min_length`` to ``max_length`` characters."""
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


# One line of text, checked after stripping: no control characters. Every bounded text field is one of the aliases
# below, written out as Annotated (not built by a function) so that type checkers see a plain str.
_LINE = AfterValidator(_single_line)
_PROSE = AfterValidator(_multiline)  # tabs and line breaks allowed, for notes

Name = Annotated[str, _stripped(200), _LINE]
Note = Annotated[str, _stripped(2000), _PROSE]
HomeId = Annotated[str, _stripped(64), _LINE]  # also a room's name
ClaimCode = Annotated[str, _stripped(128), _LINE]
Word = Annotated[str, _stripped(32), _LINE]  # a filter on a short code: an audit action, a dead letter's reason
Notes = Annotated[str, _stripped(10_000, min_length=0), _PROSE]  # a person's notes may be emptied


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

