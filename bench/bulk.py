"""A caseload's history written straight into the stores, in bulk: what the API benchmark reads.

    python bench/bulk.py --db-url sqlite:///var/bench.db --readings var/readings.sqlite3 --residents 1000 --days 30

DESIGN.md: a benchmark's history is generated into the stores, not pushed through MQTT (a month of 1,000 homes
through the gateway would take hours and measure the gateway, not the API). What it writes, through Core bulk
inserts and the readings store's own writes:

* one organisation and its coordinator (a login, and a bearer token issued for it);
* ``residents`` homes, each with one resident and the simulator's default flat (17 devices, rooms and roles);
* daily summaries for ``days`` days per resident, with realistic values (a routine of the resident's own, day to
  day variation, some days out, some disturbed nights);
* alerts with their timelines, a realistic mix of kinds and lifetimes: most resolved, some open (raised,
  notified, acknowledged), at most one open per home, kind and subject (as the database requires);
* for a sample of residents (``timeline_residents``), the simulator's readings for the last ``timeline_days``
  days, as the gateway's writer would store them (zigbee2mqtt payload fields; kind, room and role tags), and a
  detector checkpoint learned from those readings (the baseline endpoint).

Values are drawn from one seeded generator per resident: the same arguments give the same history.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.alerts import DEVICE_HEALTH, HUB_SUBJECT, AlertKind, Severity
from analytics.detector import HomeDetector
from analytics.replay import feed
from api.security import TOKEN_TTL, hash_password, sha256
from gateway.contract import state_fields
from gateway.db.models import (
    Alert,
    AlertLog,
    AuthToken,
    DetectorCheckpoint,
    Device,
    Home,
    HomeClaim,
    Organisation,
    Resident,
    User,
)
from gateway.detector_checkpoints import CHECKPOINT_VERSION, dump_detector, store_baseline
from gateway.reading_facts import ReadingFacts
from gateway.stores.readings.base import ACTIVITY_FIELD, DailySummary, FieldValue, Point, ReadingStore
from sensors_sim.generate import Simulation
from sensors_sim.scenario import default_home
from sensors_sim.sensors import Radio, payload

__all__ = ["BulkHistory", "generate", "home_id"]

MINUTE_MS = 60_000
DAY_MS = 86_400_000
TIMEZONE = "Europe/London"
PASSWORD = "bench-password-1"
ROWS_PER_INSERT = 5_000
T = TypeVar("T")

# Person-safety and device-health alerts per resident-month, with (shortest, longest) minutes open. Roughly what
# bench/detection.py sees on simulated homes plus the device faults of a real fleet (batteries, a silent PIR).
ALERT_MIX: dict[AlertKind, tuple[float, int, int, Severity]] = {
    AlertKind.INACTIVITY: (0.30, 10, 90, Severity.URGENT),
    AlertKind.NOT_UP: (0.20, 10, 120, Severity.URGENT),
    AlertKind.NO_MEALS: (0.30, 20, 240, Severity.WARNING),
    AlertKind.LONG_ABSENCE: (0.20, 30, 300, Severity.WARNING),
    AlertKind.NIGHT_EXIT: (0.10, 5, 40, Severity.WARNING),
    AlertKind.ACTIVITY_DECLINE: (0.05, 1440, 7 * 1440, Severity.WARNING),
    AlertKind.COLD_HOME: (0.10, 60, 600, Severity.WARNING),
    AlertKind.PENDANT: (0.05, 5, 30, Severity.EMERGENCY),
    AlertKind.LOW_BATTERY: (0.30, 1440, 10 * 1440, Severity.LOW),
    AlertKind.SENSOR_SILENT: (0.40, 60, 3 * 1440, Severity.LOW),
    AlertKind.HUB_OFFLINE: (0.10, 10, 300, Severity.WARNING),
    AlertKind.CANT_SEE: (0.05, 30, 600, Severity.WARNING),
}
BATTERY_DEVICES = ("hall_pir", "kitchen_pir", "living_room_pir", "bedroom_pir", "bathroom_pir", "front_door",
                   "back_door", "fridge_door", "bed_pad", "chair_pad")
ROOMS = ("hall", "kitchen", "living room", "bedroom", "bathroom")
FIRST_NAMES = ("Margaret", "Joan", "Dorothy", "Eileen", "Patricia", "Jean", "Barbara", "Betty", "John", "David",
               "Peter", "Brian", "Michael", "Kenneth", "Alan", "Ronald", "Sheila", "Maureen", "Doreen", "Arthur")
LAST_NAMES = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
              "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke")


def home_id(i: int) -> str:
    return f"bulk-{i:05d}"


@dataclass
class BulkHistory:
    """What was written, and how to call the API as the coordinator."""

    organisation_id: int
    user_id: int
    email: str
    password: str
    token: str  # a bearer token for the coordinator, issued directly (no login round trip needed)
    resident_ids: list[int]
    homes: list[str]
    timeline_residents: list[int]  # residents with readings and a detector checkpoint
    first_day: date
    last_day: date
    timeline_start: datetime
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def generate(engine: Engine, store: ReadingStore, *, residents: int = 1000, days: int = 30, seed: int = 1,
             last_day: date | None = None, timeline_residents: int = 10, timeline_days: int = 2,
             organisation: str = "Bench Care") -> BulkHistory:
    """Write the history; the database must be migrated already. ``last_day`` (default yesterday, UTC) is the
    last day with a summary; alerts and readings end at its end."""
    if residents < 1 or days < 1:
        raise ValueError("residents and days must be at least 1")
    last_day = last_day or (datetime.now(UTC).date() - timedelta(days=1))
    first_day = last_day - timedelta(days=days - 1)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=days)
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    rngs = [np.random.default_rng([seed, i]) for i in range(residents)]
    homes = [home_id(i) for i in range(residents)]
    email = f"coordinator-{secrets.token_hex(3)}@bench.example"
    token = secrets.token_urlsafe(32)

    began = time.perf_counter()
    with engine.begin() as conn:
        org_id = conn.execute(insert(Organisation).returning(Organisation.id),
                              [{"name": organisation, "created_at": now}]).scalar_one()
        user_id = conn.execute(insert(User).returning(User.id), [{
            "organisation_id": org_id, "email": email, "name": "Bench Coordinator", "role": "coordinator",
            "password_hash": hash_password(PASSWORD), "active": True, "created_at": now}]).scalar_one()
        conn.execute(insert(AuthToken), [{"user_id": user_id, "token_hash": sha256(token), "created_at": now,
                                          "expires_at": now + max(TOKEN_TTL, timedelta(hours=12))}])
        conn.execute(insert(Home), [{"id": h, "name": f"Flat {i + 1}", "organisation_id": org_id,
                                     "timezone": TIMEZONE, "first_seen": start, "last_seen": end,
                                     "hub_online": True, "hub_changed_at": start} for i, h in enumerate(homes)])
        # Claimed when their history starts: an organisation reads a home's data only inside its claim periods.
        conn.execute(insert(HomeClaim), [{"home_id": h, "organisation_id": org_id, "claimed_at": start}
                                         for h in homes])
        resident_ids = list(conn.execute(
            insert(Resident).returning(Resident.id, sort_by_parameter_order=True),
            [{"home_id": h, "name": f"{FIRST_NAMES[i % 20]} {LAST_NAMES[(i // 20) % 20]}", "created_at": start}
             for i, h in enumerate(homes)]).scalars())
        template = default_home("template").devices
        device_rows = [{"home_id": h, "name": d.name, "ieee_address": f"0x{i:08x}{j:08x}", "kind": d.kind,
                        "room": d.room, "role": d.role, "battery": float(rngs[i].uniform(30, 100))
                        if d.kind not in ("plug",) else None, "linkquality": int(rngs[i].integers(40, 220)),
                        "first_seen": start, "last_seen": end, "available": True}
                       for i, h in enumerate(homes) for j, d in enumerate(template)]
        for chunk in _chunks(device_rows, ROWS_PER_INSERT):
            conn.execute(insert(Device), chunk)
        counts["devices"] = len(device_rows)
        counts["alerts"], counts["open_alerts"], counts["alert_log"] = _alerts(
            conn, homes, resident_ids, rngs, start, end, days)
    if engine.dialect.name == "postgresql":
        # Autovacuum analyses tables as they grow; right after a bulk load the planner would still think them
        # empty (a nested loop over every home per alert: 80 ms for a page of alerts instead of 2).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    seconds["database"] = time.perf_counter() - began

    began = time.perf_counter()
    summaries = [s for i, h in enumerate(homes) for s in _summaries(h, first_day, days, rngs[i])]
    for chunk in _chunks(summaries, ROWS_PER_INSERT):
        store.write_daily_summaries(chunk)
    counts["daily_summaries"] = len(summaries)
    seconds["summaries"] = time.perf_counter() - began

    began = time.perf_counter()
    sample = min(timeline_residents, residents)
    timeline_start = end - timedelta(days=timeline_days)
    counts["readings"] = _readings(engine, store, homes[:sample], timeline_start, timeline_days, seed) if sample \
        else 0
    seconds["readings"] = time.perf_counter() - began
    counts["residents"] = residents
    return BulkHistory(organisation_id=org_id, user_id=user_id, email=email, password=PASSWORD, token=token,
                       resident_ids=resident_ids, homes=homes, timeline_residents=resident_ids[:sample],
                       first_day=first_day, last_day=last_day, timeline_start=timeline_start, counts=counts,
                       seconds=seconds)


# --- daily summaries ------------------------------------------------------------------------------------------


def _summaries(home: str, first_day: date, days: int, rng: np.random.Generator) -> Iterator[DailySummary]:
    """A resident's days: their own routine (getting up, bed time, activity level), varied day to day, with
    days out and disturbed nights. Values as analytics/summary.py describes them."""
    up = rng.normal(7 * 60 + 15, 35)  # this resident's usual getting-up time, local minutes
    bed = rng.normal(22 * 60 + 30, 30)
    level = rng.uniform(150, 450)  # activity events a day
    outings = rng.uniform(0.1, 0.7)  # share of days with an outing
    bathroom = rng.uniform(4, 8)
    restless = rng.uniform(0.2, 1.5)  # night get-ups per night
    for d in range(days):
        first = max(240.0, rng.normal(up - 10, 20))
        getting_up = first + abs(rng.normal(8, 6))
        last = min(1439.0 + 90, rng.normal(bed, 25))
        out = float(rng.uniform(40, 240)) if rng.random() < outings else 0.0
        values = {
            "activities": float(max(20, round(rng.normal(level, level * 0.15)))),
            "first_activity_min": round(first),
            "up_min": round(getting_up),
            "last_activity_min": round(last),
            "bed_minutes": float(round(max(240, rng.normal(1440 - bed + up, 35)))),
            "out_minutes": round(out),
            "bathroom_visits": float(rng.poisson(bathroom)),
            "meals": float(min(5, max(0, rng.poisson(2.6)))),
            "night_getups": float(rng.poisson(restless)),
        }
        yield DailySummary(home, first_day + timedelta(days=d), values)


# --- alerts ---------------------------------------------------------------------------------------------------


def _alerts(conn: Any, homes: Sequence[str], resident_ids: Sequence[int], rngs: Sequence[np.random.Generator],
            start: datetime, end: datetime, days: int) -> tuple[int, int, int]:
    """Alerts over the period, each with its timeline; those whose lifetime runs past ``end`` are still open."""
    rows: list[dict[str, Any]] = []
    logs: list[list[tuple[datetime, str, str | None, str]]] = []
    span_min = days * 1440
    for i, (home, resident) in enumerate(zip(homes, resident_ids, strict=True)):
        rng = rngs[i]
        raised_list = []
        for kind, (per_month, shortest, longest, severity) in ALERT_MIX.items():
            for _ in range(rng.poisson(per_month * days / 30)):
                at = start + timedelta(minutes=float(rng.uniform(0, span_min)))
                lasts = timedelta(minutes=float(np.exp(rng.uniform(np.log(shortest), np.log(longest)))))
                subject = _subject(kind, rng)
                raised_list.append((at, kind, subject, severity, lasts))
        open_keys: set[tuple[str, str]] = set()
        for at, kind, subject, severity, lasts in sorted(raised_list, key=lambda r: r[0], reverse=True):
            still_open = at + lasts > end and (kind.value, subject) not in open_keys  # one open per key
            if still_open:
                open_keys.add((kind.value, subject))
            rows.append(_alert_row(home, resident, at, kind, subject, severity,
                                   min(at + lasts, end - timedelta(seconds=1)), still_open, rng))
            logs.append(_alert_log(rows[-1]))
    ids: list[int] = []
    for chunk in _chunks(rows, ROWS_PER_INSERT):
        ids += conn.execute(insert(Alert).returning(Alert.id, sort_by_parameter_order=True), chunk).scalars()
    log_rows = [{"alert_id": alert_id, "at": at, "what": what, "who": who, "detail": detail}
                for alert_id, lines in zip(ids, logs, strict=True) for at, what, who, detail in lines]
    for chunk in _chunks(log_rows, ROWS_PER_INSERT):
        conn.execute(insert(AlertLog), chunk)
    return len(rows), sum(1 for r in rows if r["state"] != "resolved"), len(log_rows)


def _subject(kind: AlertKind, rng: np.random.Generator) -> str:
    if kind in (AlertKind.HUB_OFFLINE, AlertKind.CANT_SEE):
        return HUB_SUBJECT
    if kind in DEVICE_HEALTH:
        return str(rng.choice(BATTERY_DEVICES))
    return ""


def _alert_row(home: str, resident: int, at: datetime, kind: AlertKind, subject: str, severity: Severity,
               ends: datetime, still_open: bool, rng: np.random.Generator) -> dict[str, Any]:
    room = str(rng.choice(ROOMS))
    local = at.astimezone(ZoneInfo(TIMEZONE)).strftime("%H:%M")
    messages = {
        AlertKind.INACTIVITY: f"No activity since {local}, last in the {room}. Usually there is activity within "
                              f"{int(rng.integers(1, 4))} h {int(rng.integers(0, 60))} min at this time of day.",
        AlertKind.NOT_UP: f"Not up yet at {local}: no activity outside the bedroom this morning.",
        AlertKind.NO_MEALS: f"No kitchen activity by {local}.",
        AlertKind.LONG_ABSENCE: f"Out since {local} (front door), and no activity inside since.",
        AlertKind.NIGHT_EXIT: f"Front door opened at {local}, at night.",
        AlertKind.ACTIVITY_DECLINE: "The last 7 days' activity is below half of the usual.",
        AlertKind.COLD_HOME: f"The {room} has been below 16 °C since {local}.",
        AlertKind.PENDANT: f"The pendant was pressed at {local}.",
        AlertKind.LOW_BATTERY: f"The battery of {subject} is at {int(rng.integers(5, 16))} %.",
        AlertKind.SENSOR_SILENT: f"{subject} has not reported since {local}.",
        AlertKind.HUB_OFFLINE: f"The home hub went offline at {local}.",
        AlertKind.CANT_SEE: f"No device of the home has reported since {local}.",
    }
    state = "resolved"
    acknowledged = severity >= Severity.URGENT and rng.random() < 0.8
    if still_open:
        state = str(rng.choice(["raised", "notified", "acknowledged"], p=[0.2, 0.5, 0.3]))
        acknowledged = state == "acknowledged"
    ack_at = min(at + timedelta(minutes=float(rng.uniform(2, 20))), ends) if acknowledged else None
    by_person = severity >= Severity.URGENT or kind in (AlertKind.LOW_BATTERY,)
    return {
        "home_id": home, "resident_id": resident, "kind": kind.value, "subject": subject, "severity": int(severity),
        "state": state, "message": messages[kind], "details": {"since": at.isoformat(), "room": room},
        "raised_at": at, "updated_at": (ack_at or at) if still_open else ends,
        "repeat_count": int(rng.poisson(0.3)), "acknowledged_at": ack_at,
        "acknowledged_by": "Bench Coordinator" if acknowledged else None,
        "resolved_at": None if still_open else ends,
        "resolved_by": None if still_open else ("Bench Coordinator" if by_person and rng.random() < 0.5 else "auto"),
        "resolution_note": None, "escalation_step": 1 if state != "raised" else 0, "next_escalation_at": None,
    }


def _alert_log(row: dict[str, Any]) -> list[tuple[datetime, str, str | None, str]]:
    at: datetime = row["raised_at"]
    lines: list[tuple[datetime, str, str | None, str]] = [(at, "raised", None, row["message"])]
    if row["state"] != "raised":
        lines.append((at + timedelta(seconds=3), "notified", "Bench Carer", "alert, step 1"))
    if row["acknowledged_at"] is not None:
        lines.append((row["acknowledged_at"], "acknowledged", row["acknowledged_by"], ""))
    if row["resolved_at"] is not None:
        by = row["resolved_by"]
        lines.append((row["resolved_at"], "cleared" if by == "auto" else "resolved", by, ""))
    return lines


# --- readings and detector checkpoints ------------------------------------------------------------------------


def _readings(engine: Engine, store: ReadingStore, homes: Sequence[str], start: datetime, days: int,
              seed: int) -> int:
    """The simulator's readings for ``homes`` as the gateway's writer stores them, and each home's detector
    (fed the same readings) checkpointed: the timeline and baseline endpoints then have something to show."""
    sim_homes = [default_home(h) for h in homes]
    sim = Simulation(sim_homes, int(start.timestamp() * 1000), days, seed)
    radio = {h.id: Radio(h, np.random.default_rng([seed, 7, i])) for i, h in enumerate(sim_homes)}
    detectors = {h: HomeDetector(h, ZoneInfo(TIMEZONE)) for h in homes}
    facts = ReadingFacts()  # each reading's activity, as ingest decides it
    written = 0
    batch: list[Point] = []
    for o in sim.observations():
        feed(detectors[o.home], o)
        # As the gateway's parser keeps them (a pad's boolean ``pressure`` becomes ``presence`` ...).
        fields: dict[str, FieldValue] = dict(state_fields(payload(o, *radio[o.home].report(o.device, o.kind))))
        _, change = facts.judge(o.home, o.device, fields)
        if change is not None:
            fields[ACTIVITY_FIELD] = change  # as the gateway's writer stores it
        tags = {"home": o.home, "device": o.device, "kind": o.kind}
        tags.update({k: v for k, v in (("room", o.room), ("role", o.role)) if v})
        batch.append(Point("reading", tags, fields, o.time_ms))
        if len(batch) >= ROWS_PER_INSERT:
            store.write(batch)
            written += len(batch)
            batch = []
    store.write(batch)
    written += len(batch)
    saved = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(DetectorCheckpoint), [
            {"home_id": h, "journal_seq": 0, "version": CHECKPOINT_VERSION, "state": dump_detector(d),
             "saved_at": saved, **_readable_baseline(d)} for h, d in detectors.items()])
    return written


def _readable_baseline(detector: HomeDetector) -> dict[str, Any]:
    """The baseline as the gateway stores it beside the detector's state: what the API shows."""
    row = DetectorCheckpoint(home_id=detector.home)
    store_baseline(row, detector, force=True)
    return {"baseline": row.baseline, "baseline_at": row.baseline_at}


def _chunks(rows: Sequence[T] | Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def main(argv: list[str] | None = None) -> None:
    from gateway.db.migrate import upgrade
    from gateway.db.session import make_engine
    from gateway.stores.readings.sqlite import SqliteReadingStore

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", required=True, help="the operational database (migrated here)")
    parser.add_argument("--readings", type=Path, required=True, help="the embedded readings store's file")
    parser.add_argument("--residents", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--timeline-residents", type=int, default=10)
    parser.add_argument("--timeline-days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    upgrade(args.db_url)
    engine = make_engine(args.db_url)
    store = SqliteReadingStore(args.readings)
    try:
        history = generate(engine, store, residents=args.residents, days=args.days, seed=args.seed,
                           timeline_residents=args.timeline_residents, timeline_days=args.timeline_days)
    finally:
        store.close()
        engine.dispose()
    print(f"{history.counts} in {', '.join(f'{k} {v:.1f} s' for k, v in history.seconds.items())}")
    print(f"log in as {history.email} / {history.password}, or send 'Authorization: Bearer {history.token}'")


if __name__ == "__main__":
    main()
