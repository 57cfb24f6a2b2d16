"""Keeps heartbeat reports away from the operational database.

Most device reports change nothing the registry keeps but ``last_seen``; writing a row for each would make the
operational database the bottleneck of ingest. A report passes when it brings something new (a device not
seen since start, a kind, a battery level, a change in whether it carries ``last_seen``) or when the device's
``last_seen`` in the database is more than ``step_ms`` (5 minutes) old. Device-health detection works on the
journal stream itself, so a ``last_seen`` column a few minutes behind costs nothing in safety.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.contract import Kind
from gateway.journal import Entry

Known = tuple[int, Any, str | None, bool]  # (last_seen written, battery, kind, timed)


class HeartbeatFilter:
    def __init__(self, step_ms: int = 300_000) -> None:
        self.step_ms = step_ms
        self._known: dict[tuple[str | None, str | None], Known] = {}

    def select(self, entries: Sequence[Entry]) -> tuple[list[Entry], dict]:
        """The entries worth writing, and what to remember once they are written (see :meth:`written`)."""
        passed: list[Entry] = []
        seen: dict[tuple[str | None, str | None], Known] = {}
        for e in entries:
            if e.kind != Kind.STATE:
                passed.append(e)
                continue
            key = (e.home, e.device)
            body = e.body
            battery = body.get("battery")
            kind = e.device_kind  # as ingest decided it (gateway.reading_facts)
            last = seen.get(key) or self._known.get(key)
            if (last is None or e.time_ms - last[0] >= self.step_ms or (battery is not None and battery != last[1])
                    or (kind is not None and kind != last[2]) or e.timed != last[3]):
                passed.append(e)
                seen[key] = (e.time_ms, battery if battery is not None else (last[1] if last else None),
                             kind or (last[2] if last else None), e.timed)
        return passed, seen

    def written(self, seen: dict) -> None:
        """Remember only what was committed: a failed batch is retried whole."""
        self._known.update(seen)
