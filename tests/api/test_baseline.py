"""The baseline stored as data: the gateway writes it beside the detectors' checkpoint (at most once an hour of event
time, and only when it changed); the API and the dashboard read that JSON and never unpickle; what carers'
false-alarm feedback changed is shown, or "No feedback yet"."""

from __future__ import annotations

import copy
import pickle
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import SimulatedClock
from gateway.contract import Kind
from gateway.db.models import DetectorCheckpoint, Home
from gateway.detect import DetectorConsumer
from gateway.detector_checkpoints import store_baseline
from gateway.journal import Entry
from tests.api.conftest import T0, World

HALF_HOURS = [f"{h // 2:02d}:{30 * (h % 2):02d}" for h in range(48)]
FEEDBACK = {"at": "2026-12-01T09:30:00Z", "alert_id": 17, "kind": "inactivity", "context": "up", "room": "kitchen",
            "half_hours": ["13:00", "13:30", "14:00"], "limit_before_min": 95.0, "limit_after_min": 120.0}
SAMPLE: dict[str, Any] = {
    "days_learned": 12, "half_hours": HALF_HOURS,
    "stillness": {name: {"limit_min": [90.0 + i for i in range(48)], "usual_min": [None] * 24 + [30.0] * 24}
                  for name in ("up", "bed", "chair")},
    "up_by_min": 445.0, "not_up_after_min": 600.0, "first_meal_by_min": 500.0, "no_meals_after_min": 780.0,
    "activities_per_day": 310.0, "feedback": [FEEDBACK],
}


def checkpoint(sessions: sessionmaker[Session], baseline: dict[str, Any] | None, home: str = "h1") -> None:
    """A checkpoint whose pickled state is garbage: only the JSON beside it can be shown. Learned for the home's
    current resident (its care epoch)."""
    with sessions.begin() as s:
        epoch = s.get_one(Home, home).care_epoch
        s.merge(DetectorCheckpoint(home_id=home, journal_seq=0, version=999, state=b"not a pickle at all",
                                   saved_at=T0, baseline=baseline, baseline_at=T0 - timedelta(minutes=30),
                                   care_epoch=epoch))


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the API must not unpickle a checkpoint")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(zlib, "decompress", refuse)


# --- the API --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_unpickling")
def test_the_baseline_is_read_from_the_stored_json(client: TestClient, world: World,
                                                   sessions: sessionmaker[Session]) -> None:
    checkpoint(sessions, SAMPLE)
    r = client.get(f"/residents/{world.residents['jones']}/baseline", headers=world.auth("anne"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["days_learned"], body["up_by"], body["not_up_after"], body["no_meals_after"]) == (
        12, "07:25", "10:00", "13:00")
    assert body["saved_at"] == "2026-12-01T09:00:00Z" and body["baseline_at"] == "2026-12-01T08:30:00Z"
    assert body["stillness"]["up"]["limit_min"][:2] == [90.0, 91.0] and body["stillness"]["bed"]["usual_min"][0] is None
    assert body["feedback"] == [FEEDBACK | {"at": "2026-12-01T09:30:00Z"}]


def test_no_feedback_yet_is_an_empty_list(client: TestClient, world: World, sessions: sessionmaker[Session]) -> None:
    checkpoint(sessions, {k: v for k, v in SAMPLE.items() if k != "feedback"})
    r = client.get(f"/residents/{world.residents['jones']}/baseline", headers=world.auth("cora"))
    assert r.status_code == 200 and r.json()["feedback"] == []


@pytest.mark.parametrize(("stored", "message"), [
    (None, "nothing learned yet"),
    ({"days_learned": "many", "half_hours": [], "stillness": {}}, "cannot be shown yet"),
    ({"half_hours": HALF_HOURS}, "cannot be shown yet"),
    (SAMPLE | {"feedback": [{"at": "soon"}]}, "cannot be shown yet"),
])
def test_a_baseline_that_cannot_be_shown_is_a_404_that_says_why(
        client: TestClient, world: World, sessions: sessionmaker[Session], stored: dict[str, Any] | None,
        message: str) -> None:
    checkpoint(sessions, stored)
    r = client.get(f"/residents/{world.residents['jones']}/baseline", headers=world.auth("cora"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_baseline" and message in r.json()["error"]["message"]


def test_another_organisations_baseline_is_not_found(client: TestClient, world: World,
                                                     sessions: sessionmaker[Session]) -> None:
    checkpoint(sessions, SAMPLE, home="h3")
    assert client.get(f"/residents/{world.residents['brown']}/baseline",
                      headers=world.auth("cora")).status_code == 404
    assert client.get(f"/residents/{world.residents['brown']}/baseline",
                      headers=world.auth("bea")).status_code == 200


# --- the dashboard's baseline page ----------------------------------------------------------------------------


def page(client: TestClient, world: World, path: str, who: str = "cora") -> str:
    client.cookies.set("telecare_token", world.tokens[who])
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.text


@pytest.mark.usefixtures("no_unpickling")
def test_the_baseline_page_shows_what_the_feedback_changed(client: TestClient, world: World,
                                                           sessions: sessionmaker[Session]) -> None:
    checkpoint(sessions, SAMPLE | {"feedback": [FEEDBACK, FEEDBACK | {"alert_id": None, "room": None,
                                                                      "half_hours": ["23:30"]}]})
    html = page(client, world, f"/dashboard/residents/{world.residents['jones']}/baseline")
    assert "What the feedback changed" in html and "No feedback yet" not in html
    assert "no activity (#17)" in html and "13:00–14:30" in html and "95 → 120 min" in html
    assert "23:30–00:00" in html and "<td>any</td>" in html
    assert "Learned over 12 days" in html and "07:25" in html


def test_the_baseline_page_without_feedback_or_baseline(client: TestClient, world: World,
                                                        sessions: sessionmaker[Session]) -> None:
    resident = world.residents["jones"]
    html = page(client, world, f"/dashboard/residents/{resident}/baseline")
    assert "Nothing learned yet" in html
    checkpoint(sessions, {k: v for k, v in SAMPLE.items() if k != "feedback"})
    html = page(client, world, f"/dashboard/residents/{resident}/baseline", who="anne")
    assert "No feedback yet" in html and "What the feedback changed" in html
    assert f'href="/dashboard/residents/{resident}/baseline"' in page(client, world,
                                                                     f"/dashboard/residents/{resident}", who="anne")
    assert client.get(f"/dashboard/residents/{world.residents['smith']}/baseline").status_code == 404  # not Anne's


# --- the gateway writes it ------------------------------------------------------------------------------------


class FakeDetector:
    """What store_baseline reads of a detector: its event time and its baseline (counting the calls)."""

    def __init__(self, now_ms: int | None, baseline: dict[str, Any]) -> None:
        self.now_ms = now_ms
        self.learned = baseline
        self.taken = 0

    def baseline(self) -> dict[str, Any]:
        self.taken += 1
        return copy.deepcopy(self.learned)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_the_baseline_is_taken_at_most_hourly_and_written_when_it_changed() -> None:
    row = DetectorCheckpoint(home_id="h1")
    detector = FakeDetector(ms(T0 + timedelta(minutes=5)), SAMPLE)
    store_baseline(row, detector)  # type: ignore[arg-type]
    assert row.baseline == SAMPLE and row.baseline_at == T0 + timedelta(minutes=5) and detector.taken == 1
    written = row.baseline
    detector.now_ms = ms(T0 + timedelta(minutes=59))
    store_baseline(row, detector)  # type: ignore[arg-type]
    assert detector.taken == 1, "the same hour of event time: not taken again"
    detector.now_ms = ms(T0 + timedelta(hours=1, minutes=1))
    store_baseline(row, detector)  # type: ignore[arg-type]
    assert detector.taken == 2 and row.baseline is written, "unchanged: not written again"
    assert row.baseline_at == T0 + timedelta(hours=1, minutes=1)
    detector.learned = SAMPLE | {"days_learned": 13}
    store_baseline(row, detector)  # type: ignore[arg-type]
    assert detector.taken == 2 and row.baseline["days_learned"] == 12  # type: ignore[index]
    store_baseline(row, detector, force=True)  # type: ignore[arg-type]
    assert detector.taken == 3 and row.baseline["days_learned"] == 13  # type: ignore[index]


def test_the_stored_baseline_is_plain_json_and_a_failure_keeps_the_last() -> None:
    import numpy as np

    row = DetectorCheckpoint(home_id="h1")
    odd = {"days_learned": np.int64(3), "limits": (float("inf"), float("nan"), np.float64(2.5)),
           "day": datetime(2026, 12, 1, tzinfo=UTC)}
    store_baseline(row, FakeDetector(None, odd))  # type: ignore[arg-type]
    assert row.baseline == {"days_learned": 3, "limits": [None, None, 2.5], "day": "2026-12-01T00:00:00+00:00"}
    assert type(row.baseline["days_learned"]) is int and row.baseline_at is None  # type: ignore[index]

    class Broken(FakeDetector):
        def baseline(self) -> dict[str, Any]:
            raise RuntimeError("a watcher's bug")

    store_baseline(row, Broken(ms(T0), {}), force=True)  # type: ignore[arg-type]
    assert row.baseline["days_learned"] == 3  # type: ignore[index]


def test_the_detector_consumer_stores_the_baseline_with_its_checkpoint(sessions: sessionmaker[Session],
                                                                       world: World) -> None:
    clock = SimulatedClock()
    start = ms(T0)
    clock.tick(start, 1.0)
    consumer = DetectorConsumer(sessions, clock)
    motion = [Entry(i + 1, str(Kind.STATE), "h1", "kitchen_pir", start + i * 60_000, start + i * 60_000, True,
                    {"occupancy": i % 2 == 0}) for i in range(6)]
    consumer.handle(motion)
    with sessions() as s:
        row = s.get(DetectorCheckpoint, "h1")
        assert row is not None and isinstance(row.baseline, dict)
        assert len(row.baseline["half_hours"]) == 48 and set(row.baseline["stillness"]) >= {"up"}
        assert row.baseline_at == T0 + timedelta(minutes=5)
