"""What a reading means, decided once, at ingest: its device's kind and the activity it shows.

Ingest journals both with the reading (``Entry.device_kind``, ``Entry.activity``). The readings-store writer tags
the point with the kind and stores the activity beside the fields (:data:`gateway.stores.readings.base.
ACTIVITY_FIELD`); the registry records the kind; the detectors take the activity as decided here; the API and the
dashboard show the stored activity. None of them infers a kind or replays activity again, so none can disagree.

The kind: the device's as described or discovered (the device table), else the one its fields reveal, kept once
seen (a battery-only report keeps its device's kind). The activity is a change (:func:`analytics.activity.
activity_change`), so it depends on each device's last state. That state is committed in the journal's file with
each batch (:meth:`gateway.journal.Journal.append`): after a restart the next reading is decided as it would have
been without one, and a batch that failed to commit is decided again from the state before it. The states are the
resident's, so a home's go when the person cared for changes or is erased (:meth:`ReadingFacts.forget`): its next
readings are judged afresh, as a new home's are.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from analytics.activity import Change, Value, activity_change, activity_value
from analytics.devices import infer_kind
from gateway.device_table import DeviceTable

DeviceKey = tuple[str, str]  # (home, device)
DeviceState = tuple[str | None, Value | None]  # (kind, last activity value)
_NOTHING_YET: DeviceState = (None, None)


class ReadingFacts:
    def __init__(self, devices: DeviceTable | None = None, states: Mapping[DeviceKey, DeviceState] | None = None
                 ) -> None:
        self.devices = devices or DeviceTable()
        self._committed: dict[DeviceKey, DeviceState] = dict(states or {})
        self._pending: dict[DeviceKey, DeviceState] = {}  # decided in the batch being built, not yet committed

    def judge(self, home: str, device: str, fields: Mapping[str, object]) -> tuple[str | None, Change | None]:
        """The device's kind (None while nothing reveals it) and what this reading changed (None: no activity)."""
        key = (home, device)
        last = self._pending.get(key) or self._committed.get(key)
        kind_before, before = last if last is not None else _NOTHING_YET
        kind = self.devices.kind(key) or kind_before or infer_kind(fields)
        if kind is None:
            return None, None
        value = activity_value(kind, fields)
        if value is None:
            if kind != kind_before:
                self._pending[key] = (kind, before)
            return kind, None
        if kind != kind_before or value != before:
            self._pending[key] = (kind, value)
        return kind, activity_change(kind, before, value)

    def committed_state(self, home: str, device: str) -> DeviceState | None:
        """The device's state as last committed (None: none, or forgotten)."""
        return self._committed.get((home, device))

    def restore(self, states: Mapping[DeviceKey, DeviceState]) -> None:
        """Devices' states as committed elsewhere (cluster mode: by the partition's previous owner)."""
        self._committed.update(states)

    def pending(self) -> dict[DeviceKey, DeviceState]:
        """The devices' states the batch being built changed: committed with it."""
        return self._pending

    def committed(self) -> None:
        self._committed.update(self._pending)
        self._pending = {}

    def rolled_back(self) -> None:
        """The batch was not committed: its readings will be decided again from the state before it."""
        self._pending = {}

    def forget(self, homes: Collection[str]) -> None:
        """Drop every state of these homes, committed or pending: their next readings are judged afresh."""
        for states in (self._committed, self._pending):
            for key in [key for key in states if key[0] in homes]:
                del states[key]
