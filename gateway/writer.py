"""The readings-store writer: journal entries to points, written in batches, in journal order.

While the store is away the journal is the spool: the writer's position stays put and the back-off retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from gateway.clock import Clock
from gateway.contract import Kind
from gateway.device_table import DeviceTable
from gateway.errors import PointsRejected, StoreUnavailable
from gateway.journal import Entry
from gateway.logs import about
from gateway.metrics import WorkerMetrics
from gateway.stores.readings.base import ACTIVITY_FIELD, Point, ReadingStore

log = logging.getLogger(__name__)


class Backlog(Protocol):
    """Where the writer's entries come from (the journal; in cluster mode, a partition of the stream)."""

    def lag(self, consumer: str) -> int:
        """Entries ``consumer`` has still to take."""
        ...


class StoreWriter:
    name = "store"

    def __init__(self, store: ReadingStore, journal: Backlog, metrics: WorkerMetrics, clock: Clock,
                 devices: DeviceTable | None = None) -> None:
        self.store = store
        self.clock = clock
        self.journal = journal
        self.metrics = metrics
        self.devices = devices or DeviceTable()
        self._last: dict[tuple[str, str], tuple[int, int, dict]] = {}  # device -> (event ms, point ms, fields)

    def handle(self, entries: Sequence[Entry]) -> None:
        points = self.points(entries)
        started = time.perf_counter()
        try:
            self._write(points)
        except StoreUnavailable:
            self.metrics.store_up.set(0)
            raise
        m = self.metrics
        m.write_seconds.observe(time.perf_counter() - started)
        m.store_up.set(1)
        m.stored.inc(len(points))
        m.spool_depth.set(max(0, self.journal.lag(self.name) - len(entries)))
        now_ms = self.clock.now_ms()
        for p in points:
            m.event_age.observe((now_ms - p.time_ms) / 1000)

    def points(self, entries: Sequence[Entry]) -> list[Point]:
        self.devices.refresh_if_due()
        points: list[Point] = []
        for e in entries:
            if e.kind == Kind.STATE:
                assert e.home is not None and e.device is not None  # a state always has both (gateway.contract)
                if e.body:
                    time_ms = self._distinct_time(e.home, e.device, e.time_ms, e.body)
                    fields = {**e.body, ACTIVITY_FIELD: e.activity} if e.activity else e.body
                    points.append(Point("reading", self._tags_for(e.home, e.device, e.device_kind), fields, time_ms))
            elif e.kind == Kind.AVAILABILITY:
                assert e.home is not None and e.device is not None
                points.append(Point("availability", {"home": e.home, "device": e.device}, e.body, e.time_ms))
            elif e.kind == Kind.BRIDGE_STATE:
                assert e.home is not None
                points.append(Point("hub", {"home": e.home}, e.body, e.time_ms))
        return points

    def _distinct_time(self, home: str, device: str, time_ms: int, fields: dict) -> int:
        """Keep two different readings with the same ``last_seen`` as two points.

        zigbee2mqtt sends the ``occupancy: false`` it makes itself after a PIR's timeout with the ``last_seen``
        of the motion report; as one point, the ``false`` would overwrite the ``true``. A later different
        reading with the same event time moves 1 ms on; the same reading again (a redelivery) stays put.
        """
        key = (home, device)
        last = self._last.get(key)
        if last is not None and last[0] == time_ms:
            point_ms = last[1] if last[2] == fields else last[1] + 1
        else:
            point_ms = time_ms
        self._last[key] = (time_ms, point_ms, fields)
        return point_ms

    def _tags_for(self, home: str, device: str, kind: str | None) -> dict[str, str]:
        """The device's kind as ingest decided it, its room and role as the device table has them now."""
        known = self.devices.get(home, device)
        kind = kind or known.kind  # known: for entries journaled before ingest decided kinds
        tags = {"home": home, "device": device}
        if kind:
            tags["kind"] = kind
        if known.room:
            tags["room"] = known.room
        if known.role:
            tags["role"] = known.role
        return tags

    def _write(self, points: list[Point]) -> None:
        """Write; a refused batch is halved until the bad points are found, logged and skipped."""
        if not points:
            return
        try:
            self.store.write(points)
        except PointsRejected as e:
            if len(points) == 1:
                log.error("readings store refused %s: %s", points[0], e,
                          extra=about(home=points[0].tags.get("home"), device=points[0].tags.get("device")))
                self.metrics.dropped.inc()
                return
            half = len(points) // 2
            self._write(points[:half])
            self._write(points[half:])
