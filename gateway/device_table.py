"""The devices' kinds, rooms and roles, one copy in a process.

The readings-store writer tags each point with its device's kind, room and role, and the detectors read each
reading in the light of them. Both read the same table from the operational database (the registry and the
coordinators write it), and both take it from here: the worker holds one :class:`DeviceTable` for the two.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.models import Device

log = logging.getLogger(__name__)


class DeviceInfo(NamedTuple):
    kind: str | None
    room: str | None
    role: str | None


UNKNOWN = DeviceInfo(None, None, None)


class DeviceTable:
    """Devices by (home, name), read again every ``refresh_s`` of wall time by :meth:`refresh_if_due`, or in a
    caller's transaction by :meth:`read` (the detectors do, for a device they have not seen)."""

    def __init__(self, sessions: sessionmaker[Session] | None = None, *, refresh_s: float = 30.0,
                 devices: dict[tuple[str, str], DeviceInfo] | None = None) -> None:
        self.sessions = sessions
        self.refresh_s = refresh_s
        self._devices: dict[tuple[str, str], DeviceInfo] = dict(devices or {})
        self._read_at = -1e9 if sessions is not None else time.monotonic()

    def get(self, home: str, name: str) -> DeviceInfo:
        return self._devices.get((home, name), UNKNOWN)

    def kind(self, key: tuple[str, str]) -> str | None:
        """The kind of the device (home, name), None when not known: ingest asks it for every reading."""
        known = self._devices.get(key)
        return known.kind if known is not None else None

    def knows(self, home: str, name: str) -> bool:
        return (home, name) in self._devices

    def read(self, session: Session) -> None:
        """Read the table in the caller's transaction; the new copy replaces the old at once (threads share it)."""
        rows = session.execute(select(Device.home_id, Device.name, Device.kind, Device.room, Device.role))
        self._devices = {(h, n): DeviceInfo(k, r, ro) for h, n, k, r, ro in rows}
        self._read_at = time.monotonic()  # about the machine's work, not the data: wall time

    def refresh_if_due(self) -> None:
        """Read the table again if ``refresh_s`` has passed. The database away keeps the last copy (the readings
        path does not depend on it) and tries again at the next refresh."""
        if self.sessions is None or time.monotonic() - self._read_at < self.refresh_s:
            return
        try:
            with self.sessions() as session:
                self.read(session)
        except Exception as e:
            log.warning("could not read the device table again: %s", e)
            self._read_at = time.monotonic()
