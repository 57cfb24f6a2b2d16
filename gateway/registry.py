"""The device registry: keeps homes, devices and dead letters in the operational database up to date from the
gateway's journal.

A batch of journal entries is folded in Python first (one row write per home and per device, however many
entries mention it), then written in one transaction. Applying the same batch twice gives the same result:
times only move forward, on/off states keep the moment they last changed, and a dead letter is keyed by its
journal entry.

What each entry kind does:

* ``state``: the device's ``last_seen`` (forward only) and ``first_seen``; battery and link quality from the
  last report carrying them (journal order); its kind when the payload reveals one (a battery-only report
  keeps the kind known); whether its payloads carry ``last_seen`` (``sends_last_seen``).
* ``availability``: ``available`` and the moment it last changed.
* ``bridge_state``: the hub's ``hub_online`` and the moment it last changed.
* ``bridge_devices``: each listed device's IEEE address, model, vendor, description, power source and kind.
  Devices missing from the list are kept. A device renamed on the hub keeps its row (and history): the row
  holding its IEEE address takes the new name.
* ``dead``: a row in ``dead_letters``.

Every entry but a dead letter also creates its home if new and moves its ``first_seen``/``last_seen``.

Within a batch, reports and availability are written before the hub's device lists, so reports that arrived
under a new name before the list announcing it are folded into the renamed device. One case replay cannot
undo: a batch holding reports under a device's *old* name and then the list renaming it, applied again after
it was committed, brings the old name back as a device of its own (it never reports again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract import Kind
from gateway.db.models import (
    DESCRIPTION_LEN,
    DEVICE_NAME_LEN,
    HOME_ID_LEN,
    IEEE_LEN,
    MODEL_LEN,
    SHORT_LEN,
    DeadLetter,
    Device,
    Home,
)
from gateway.db.upserts import ensure_homes, insert_ignore
from gateway.journal import Entry
from gateway.logs import about

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
CHUNK = 500  # rows per statement: well under SQLite's bound-parameter limit


def to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def to_ms(when: datetime) -> int:
    return (when - EPOCH) // ONE_MS


# ------------------------------------------------------------------------------------------------------------
# Folding a batch


@dataclass(slots=True)
class Flips:
    """An online/offline flag seen through a batch, in journal order."""

    value: bool
    first_ms: int  # when the flag's final value began in this batch
    last_ms: int  # the newest message's time
    changed: bool = False  # whether the value changed within the batch

    def see(self, value: bool, ms: int) -> None:
        if value != self.value:
            self.value, self.first_ms, self.changed = value, ms, True
        self.last_ms = max(self.last_ms, ms)

    def merged(self, stored: bool | None, stored_at: datetime | None) -> tuple[bool | None, datetime | None]:
        """The flag and the moment it last changed, given what the database holds."""
        if stored_at is not None and self.last_ms < to_ms(stored_at):
            return stored, stored_at  # older news than what we have
        if not self.changed and stored == self.value and stored_at is not None:
            return stored, stored_at  # no change: keep the moment it last changed
        return self.value, to_datetime(self.first_ms)


@dataclass(slots=True)
class HomeFold:
    first_ms: int
    last_ms: int
    hub: Flips | None = None


@dataclass(slots=True)
class DeviceFold:
    first_ms: int | None = None  # of the device's own reports (state)
    last_ms: int | None = None
    kind: str | None = None
    battery: float | None = None
    linkquality: int | None = None
    timed: bool | None = None  # whether the last report carried last_seen
    availability: Flips | None = None

    def see_state(self, body: dict[str, Any], ms: int, timed: bool, kind: str | None) -> None:
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)
        self.kind = kind or self.kind  # as ingest decided it (gateway.reading_facts)
        battery = body.get("battery")
        if isinstance(battery, int | float) and not isinstance(battery, bool):
            self.battery = float(battery)
        linkquality = body.get("linkquality")
        if isinstance(linkquality, int | float) and not isinstance(linkquality, bool):
            self.linkquality = round(linkquality)
        self.timed = timed


@dataclass(slots=True)
class Batch:
    homes: dict[str, HomeFold] = field(default_factory=dict)
    devices: dict[tuple[str, str], DeviceFold] = field(default_factory=dict)
    bridge_lists: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # journal order
    dead: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def fold(cls, entries: Iterable[Entry]) -> Batch:
        batch = cls()
        for e in entries:
            try:
                batch._see(e)
            except (KeyError, TypeError, ValueError) as error:
                # A malformed entry is a bug upstream; retrying its batch forever would stall the journal.
                log.error("journal entry %d (%s) skipped: %s", e.seq, e.kind, error,
                          extra=about(home=e.home, device=e.device))
        return batch

    def _see(self, e: Entry) -> None:
        kind = e.kind
        if kind == Kind.DEAD:
            self.dead.append(_dead_letter(e))
            return
        if kind not in _FOR_THE_REGISTRY:
            log.debug("journal entry %d: kind %r is not for the registry", e.seq, kind)
            return
        if e.home is None:
            raise ValueError("no home")
        # Check the body before folding anything in, so a malformed entry leaves no trace.
        online: bool | None = None
        if kind == Kind.STATE:
            if not isinstance(e.body, dict):
                raise TypeError("a state's body must be an object")
        elif kind == Kind.BRIDGE_DEVICES:
            if not isinstance(e.body, list) or not all(isinstance(item, dict) for item in e.body):
                raise TypeError("a device list must be a list of objects")
        else:
            online = e.body["online"]
            if not isinstance(online, bool):
                raise TypeError("'online' must be true or false")
        if kind in (Kind.STATE, Kind.AVAILABILITY) and (not e.device or len(e.device) > DEVICE_NAME_LEN):
            raise ValueError(f"device name missing or longer than {DEVICE_NAME_LEN} characters")

        home = self.homes.get(e.home)
        if home is None:
            self.homes[e.home] = home = HomeFold(e.time_ms, e.time_ms)
        else:
            home.first_ms = min(home.first_ms, e.time_ms)
            home.last_ms = max(home.last_ms, e.time_ms)
        if kind == Kind.BRIDGE_DEVICES:
            self.bridge_lists.append((e.home, e.body))
        elif kind == Kind.BRIDGE_STATE:
            assert online is not None
            if home.hub is None:
                home.hub = Flips(online, e.time_ms, e.time_ms)
            else:
                home.hub.see(online, e.time_ms)
        else:
            assert e.device is not None
            key = (e.home, e.device)
            device = self.devices.get(key)
            if device is None:
                self.devices[key] = device = DeviceFold()
            if kind == Kind.STATE:
                device.see_state(e.body, e.time_ms, e.timed, e.device_kind)
            else:
                assert online is not None
                if device.availability is None:
                    device.availability = Flips(online, e.time_ms, e.time_ms)
                else:
                    device.availability.see(online, e.time_ms)


_FOR_THE_REGISTRY = frozenset({Kind.STATE, Kind.AVAILABILITY, Kind.BRIDGE_STATE, Kind.BRIDGE_DEVICES})


def _dead_letter(e: Entry) -> dict[str, Any]:
    body = e.body if isinstance(e.body, dict) else {}
    return {
        "journal_seq": e.seq,
        "received_at": to_datetime(e.received_ms),
        "home_id": _clip(e.home, HOME_ID_LEN),
        "device": _clip(e.device, DEVICE_NAME_LEN),
        "topic": str(body.get("topic", "")),
        "reason": _clip(str(body.get("reason", "unknown")), SHORT_LEN),
        "detail": str(body.get("detail", "")),
        "payload": str(body.get("payload", "")),
    }


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


# ------------------------------------------------------------------------------------------------------------
# Writing a batch


class DeviceRegistry:
    """Applies journal batches to the operational database (the journal consumer named ``registry``)."""

    name = "registry"

    def __init__(self, session_factory: sessionmaker[Session] | Callable[[], Session]) -> None:
        self._sessions = session_factory

    def apply(self, entries: Sequence[Entry]) -> None:
        """Apply a batch of journal entries in one transaction; applying it again changes nothing."""
        if not entries:
            return
        batch = Batch.fold(entries)
        with self._sessions() as session, session.begin():
            _write_homes(session, batch.homes)
            _write_devices(session, batch.devices)
            for home_id, listed in batch.bridge_lists:
                _apply_bridge_list(session, home_id, listed)
            if batch.dead:
                insert_ignore(session, DeadLetter.__table__, batch.dead, ["journal_seq", "received_at"])

    handle = apply  # the journal consumer protocol (gateway.consumers.Consumer)


def _update_by_key(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """One Core UPDATE ... WHERE id = ? run as executemany: far cheaper per row than the ORM's bulk update."""
    assert isinstance(table, Table)
    params = [{**{k: v for k, v in row.items() if k != "id"}, "_key": row["id"]} for row in rows]
    session.execute(table.update().where(table.c.id == bindparam("_key")), params)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def _write_homes(session: Session, homes: dict[str, HomeFold]) -> None:
    if not homes:
        return
    ids = sorted(homes)
    # Taking the write lock first (SQLite) means the reads below see what this transaction will update.
    ensure_homes(session, ids)
    params = []
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Home.id, Home.first_seen, Home.last_seen, Home.hub_online, Home.hub_changed_at)
            .where(Home.id.in_(chunk)))
        for home_id, first_seen, last_seen, hub_online, hub_changed_at in rows:
            fold = homes[home_id]
            row = {
                "id": home_id,
                "first_seen": _earliest(first_seen, fold.first_ms),
                "last_seen": _latest(last_seen, fold.last_ms),
                "hub_online": hub_online,
                "hub_changed_at": hub_changed_at,
            }
            if fold.hub is not None:
                row["hub_online"], row["hub_changed_at"] = fold.hub.merged(hub_online, hub_changed_at)
            params.append(row)
    if params:
        _update_by_key(session, Home.__table__, params)


def _write_devices(session: Session, devices: dict[tuple[str, str], DeviceFold]) -> None:
    if not devices:
        return
    keys = sorted(devices)
    insert_ignore(session, Device.__table__, [{"home_id": h, "name": n} for h, n in keys],
                   ["home_id", "name"])
    homes = sorted({h for h, _ in keys})
    params = []
    for chunk in _chunks(homes):
        rows = session.execute(
            select(Device.id, Device.home_id, Device.name, Device.kind, Device.battery, Device.linkquality,
                   Device.first_seen, Device.last_seen, Device.available, Device.availability_changed_at,
                   Device.sends_last_seen)
            .where(Device.home_id.in_(chunk)))
        for (device_id, home_id, name, kind, battery, linkquality, first_seen, last_seen, available,
             available_at, sends_last_seen) in rows:
            fold = devices.get((home_id, name))
            if fold is None:
                continue  # a device of the same home this batch does not mention
            row = {
                "id": device_id,
                "kind": fold.kind or kind,
                "battery": fold.battery if fold.battery is not None else battery,
                "linkquality": fold.linkquality if fold.linkquality is not None else linkquality,
                "first_seen": _earliest(first_seen, fold.first_ms),
                "last_seen": _latest(last_seen, fold.last_ms),
                "available": available,
                "availability_changed_at": available_at,
                "sends_last_seen": fold.timed if fold.timed is not None else sends_last_seen,
            }
            if fold.availability is not None:
                row["available"], row["availability_changed_at"] = fold.availability.merged(available,
                                                                                            available_at)
            params.append(row)
    if params:
        _update_by_key(session, Device.__table__, params)


def _earliest(stored: datetime | None, ms: int | None) -> datetime | None:
    if ms is None:
        return stored
    if stored is None or ms < to_ms(stored):
        return to_datetime(ms)
    return stored


def _latest(stored: datetime | None, ms: int | None) -> datetime | None:
    if ms is None:
        return stored
    if stored is None or ms > to_ms(stored):
        return to_datetime(ms)
    return stored


# ------------------------------------------------------------------------------------------------------------
# The hub's device list: renames and static facts


def _apply_bridge_list(session: Session, home_id: str, listed: list[dict[str, Any]]) -> None:
    rows = list(session.scalars(select(Device).where(Device.home_id == home_id)))
    by_ieee = {d.ieee_address: d for d in rows if d.ieee_address}
    listed = [item for item in listed if item.get("friendly_name")
              and len(item["friendly_name"]) <= DEVICE_NAME_LEN]
    renames = [(by_ieee[item["ieee_address"]], item["friendly_name"]) for item in listed
               if item.get("ieee_address") in by_ieee
               and by_ieee[item["ieee_address"]].name != item["friendly_name"]]
    if renames:
        _rename(session, home_id, rows, renames)
    by_name = {d.name: d for d in session.scalars(select(Device).where(Device.home_id == home_id))}
    for item in listed:
        device = by_name.get(item["friendly_name"])
        if device is None:
            device = Device(home_id=home_id, name=item["friendly_name"])
            session.add(device)
            by_name[device.name] = device
        for attribute, length in (("ieee_address", IEEE_LEN), ("model", MODEL_LEN), ("vendor", MODEL_LEN),
                                  ("description", DESCRIPTION_LEN), ("power_source", SHORT_LEN),
                                  ("kind", SHORT_LEN)):
            value = item.get(attribute)
            if value:  # the hub says nothing about it (an unsupported device): keep what we know
                setattr(device, attribute, str(value)[:length])
    session.flush()


def _rename(session: Session, home_id: str, rows: list[Device], renames: list[tuple[Device, str]]) -> None:
    """Give devices their new names.

    A row already holding a new name is folded into the renamed device when it has no IEEE address (its
    reports arrived under the new name before the hub's list did); a row of another device is moved aside to
    its IEEE address, the hub's default name.
    """
    moving = {id(row) for row, _ in renames}
    by_name = {d.name: d for d in rows}
    new_names = {new for _, new in renames}
    aside: list[Device] = []
    for row, new in renames:
        occupant = by_name.get(new)
        if occupant is None or id(occupant) in moving:
            continue
        if occupant.ieee_address and occupant.ieee_address != row.ieee_address:
            aside.append(occupant)
        else:
            _fold_into(row, occupant)
            session.delete(occupant)
            log.info("home %s: %r folded into the renamed device %r", home_id, occupant.name, row.name,
                     extra=about(home=home_id, device=row.name))
    session.flush()
    # Two steps, so names can swap without tripping the unique (home, name) constraint.
    for row, _ in renames:
        row.name = f"~renaming~{row.id}"
    session.flush()
    taken = {d.name for d in rows if id(d) not in moving and d not in aside} | new_names
    for occupant in aside:
        assert occupant.ieee_address is not None
        name = occupant.ieee_address
        if name in taken:
            name = f"{name}~{occupant.id}"
        log.info("home %s: %r (%s) moved aside to %r: the hub gave its name to another device",
                 home_id, occupant.name, occupant.ieee_address, name, extra=about(home=home_id, device=name))
        occupant.name = name
        taken.add(name)
    session.flush()
    for row, new in renames:
        log.info("home %s: device %s renamed to %r", home_id, row.ieee_address, new,
                 extra=about(home=home_id, device=new))
        row.name = new
    session.flush()


def _fold_into(row: Device, other: Device) -> None:
    """Merge ``other`` (the same physical device under its new name) into ``row``, which keeps its id."""
    other_newer = other.last_seen is not None and (row.last_seen is None or other.last_seen > row.last_seen)
    for attribute in ("kind", "battery", "linkquality", "sends_last_seen", "model", "vendor", "description",
                      "power_source"):
        mine, theirs = getattr(row, attribute), getattr(other, attribute)
        if theirs is not None and (mine is None or other_newer):
            setattr(row, attribute, theirs)
    # Room and role described under the new name win: that is the description the installer keeps now.
    row.room = other.room or row.room
    row.role = other.role or row.role
    if other.first_seen is not None and (row.first_seen is None or other.first_seen < row.first_seen):
        row.first_seen = other.first_seen
    if other_newer:
        row.last_seen = other.last_seen
    other_at, row_at = other.availability_changed_at, row.availability_changed_at
    if other_at is not None and (row_at is None or other_at > row_at):
        row.available, row.availability_changed_at = other.available, other.availability_changed_at
