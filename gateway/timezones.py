"""Time zones by IANA name: the one place that knows how ``zoneinfo`` says no, and which zone a home without a
usable one gets.

``ZoneInfo`` refuses a name in four ways: ``ZoneInfoNotFoundError`` (a ``KeyError``) for an unknown name,
``ValueError`` for an empty or path-like one, ``IsADirectoryError`` for a region ("Europe"), and ``OSError`` for
one too long for the file system. Every caller used to catch its own subset of them.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from zoneinfo import ZoneInfo

from gateway.db.models import DEFAULT_TIMEZONE

log = logging.getLogger(__name__)

#: The sentence a person sees for a name that is not a time zone (the API's 422, the CLI's refusal).
UNKNOWN_ZONE = "unknown time zone {name!r}: use an IANA name such as Europe/London"


def find_zone(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or ``None`` if there is none by that name."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return None


def zone(name: str | None, *, of: str = "") -> ZoneInfo:
    """The zone called ``name``; the default zone (``DEFAULT_TIMEZONE``) when there is no name, and with a warning
    (once per name and ``of``, e.g. ``"home h1"``) when the name is not a zone: times are still shown and days still
    close, an hour or so off, rather than failing."""
    return _zone(name or DEFAULT_TIMEZONE, of)


@lru_cache(maxsize=1024)  # bounded; also makes the warning once per name, not once per request or batch
def _zone(name: str, of: str) -> ZoneInfo:
    found = find_zone(name)
    if found is None:
        log.warning("%sunknown time zone %r; using %s", f"{of}: " if of else "", name, DEFAULT_TIMEZONE)
        return ZoneInfo(DEFAULT_TIMEZONE)
    return found


def zone_name(value: str) -> str:
    """A validator (pydantic ``AfterValidator``, a CLI option): ``value`` if it names a zone, else ``ValueError``
    with a sentence saying what to give instead."""
    if find_zone(value) is None:
        raise ValueError(UNKNOWN_ZONE.format(name=value))
    return value
