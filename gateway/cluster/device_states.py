"""A partition's devices' states in PostgreSQL (``cluster_device_states``), each under its home's care epoch.

On one machine ingest keeps each device's last state (what a reading's activity change is decided from:
:mod:`gateway.reading_facts`) in its journal's file; in cluster mode they are rows, so that they move with a
partition from one worker to its next owner. They are the resident's data (docs/production.md, "Retention and
privacy"): when the person cared for changes or is erased, the home's care epoch (``homes.care_epoch``) moves on,
the housekeeping worker deletes the rows of other epochs (:func:`gateway.cluster.housekeeping.forget_past_care_states`)
and the partition's loop, which follows its homes' epochs here, drops them from memory within
:data:`FOLLOW_EPOCHS_S`; the next report of each device is judged as a new home's first ones are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from gateway.db.cluster import ClusterDeviceState
from gateway.db.models import Device, Home
from gateway.reading_facts import DeviceKey, DeviceState

__all__ = ["FOLLOW_EPOCHS_S", "DeviceStates", "Learned"]

FOLLOW_EPOCHS_S = 10.0  # wall seconds between looks at whether a learned home's care epoch moved on


@dataclass(frozen=True, slots=True)
class Learned:
    """What the database holds for homes newly seen: their devices' states (of the current care only) and the
    names of their known devices (for the quotas)."""

    states: dict[DeviceKey, DeviceState]
    known: dict[str, list[str]]


class DeviceStates:
    """The care epochs of the homes a partition loop has learned, and their states' reads and writes."""

    def __init__(self, sessions: sessionmaker[Session], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sessions = sessions
        self._monotonic = monotonic
        self.epochs: dict[str, int] = {}  # home -> the care epoch its states in memory were learned under
        self._followed_at = monotonic()

    def learn(self, homes: Collection[str]) -> Learned:
        """The committed states and known devices of ``homes`` not learned yet (a home the database does not know
        is a new one: epoch 0); states learned under another care than the home's now are left out."""
        new = sorted(set(homes) - self.epochs.keys())
        if not new:
            return Learned({}, {})
        with self._sessions() as session:
            epochs = dict.fromkeys(new, 0) | dict(session.execute(
                select(Home.id, Home.care_epoch).where(Home.id.in_(new))).all())
            rows = session.execute(select(ClusterDeviceState.home_id, ClusterDeviceState.device,
                                          ClusterDeviceState.kind, ClusterDeviceState.value,
                                          ClusterDeviceState.care_epoch)
                                   .where(ClusterDeviceState.home_id.in_(new)))
            states = {(home, device): (kind, value) for home, device, kind, value, epoch in rows
                      if epoch == epochs[home]}
            known: dict[str, list[str]] = {}
            for home, name in session.execute(select(Device.home_id, Device.name).where(Device.home_id.in_(new))):
                known.setdefault(home, []).append(name)
        self.epochs.update(epochs)
        return Learned(states, known)

    def save(self, session: Session, changed: Mapping[DeviceKey, DeviceState]) -> None:
        """Upsert the states a batch changed, each under the epoch its home was learned under, in the caller's
        (fenced) transaction. A row written late under a care that has ended is deleted by the housekeeping."""
        if not changed:
            return
        statement = insert(ClusterDeviceState).values(
            [{"home_id": home, "device": device, "kind": kind, "value": value,
              "care_epoch": self.epochs.get(home, 0)}
             for (home, device), (kind, value) in changed.items()])
        session.execute(statement.on_conflict_do_update(
            index_elements=[ClusterDeviceState.home_id, ClusterDeviceState.device],
            set_={"kind": statement.excluded.kind, "value": statement.excluded.value,
                  "care_epoch": statement.excluded.care_epoch}))

    def moved_on(self, force: bool = False) -> set[str]:
        """The learned homes whose care epoch moved on since (at most every :data:`FOLLOW_EPOCHS_S`, unless
        ``force``): forgotten here, so the caller drops their states from memory and learns them again."""
        now = self._monotonic()
        if not self.epochs or (not force and now - self._followed_at < FOLLOW_EPOCHS_S):
            return set()
        self._followed_at = now
        with self._sessions() as session:
            current = dict(session.execute(
                select(Home.id, Home.care_epoch).where(Home.id.in_(sorted(self.epochs)))).all())
        changed = {home for home, epoch in self.epochs.items() if current.get(home, 0) != epoch}
        for home in changed:
            del self.epochs[home]
        return changed
