"""Issue 11, finding 4, end to end: a pendant press from a hub whose clock runs 6 minutes fast was dead-lettered as
``future_timestamp`` and raised no alert. Real Mosquitto, the gateway on the wall clock, a Pushover-behaving server.
"""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.pushover_server import PushoverServer
from bench.services import Mosquitto
from gateway.db.models import Alert, DeadLetter
from gateway.db.session import make_engine, make_session_factory
from sensors_sim.sensors import iso_ms
from tests.e2e.helpers import gateway_settings, home_with_a_carer, publish, start_gateway, wait_for

pytest_plugins = ["tests.conftest_pushover"]

HOME = "h1"
ANNE = "anne" + "0" * 26
SIX_MIN_MS = 6 * 60_000


def test_a_pendant_press_from_a_hub_six_minutes_fast_reaches_a_person(
        tmp_path: Path, mosquitto: Mosquitto, pushover: PushoverServer) -> None:
    pushover.users |= {ANNE}
    settings = gateway_settings(tmp_path, mosquitto, None, pushover_url=pushover.url, pushover_token="a" * 30)
    home_with_a_carer(settings, HOME, ANNE)
    sessions = make_session_factory(make_engine(settings.database_url))
    gw = start_gateway(settings)
    try:
        pressed_ms = int(time.time() * 1000)
        publish(mosquitto, [(f"telecare/{HOME}/pendant", orjson.dumps(
            {"action": "single", "battery": 80, "last_seen": iso_ms(pressed_ms + SIX_MIN_MS)}))])
        wait_for(lambda: any("Pendant pressed" in m["message"] for m in pushover.messages if m["user"] == ANNE),
                 30, "Anne alerted")
        with sessions() as s:
            by_kind = {a.kind: a for a in s.scalars(select(Alert))}
            assert s.scalars(select(DeadLetter)).all() == []
        raised_at = by_kind["pendant"].raised_at  # stored as naive UTC
        raised_ms = raised_at.replace(tzinfo=raised_at.tzinfo or UTC).timestamp() * 1000
        assert abs(raised_ms - pressed_ms) < 60_000, "stamped at receipt, not 6 minutes ahead"
        wait_for(lambda: _kinds(sessions) >= {"pendant", "hub_misbehaving"}, 30, "the hub flagged")
        with sessions() as s:
            [flag] = s.scalars(select(Alert).where(Alert.kind == "hub_misbehaving")).all()
            assert flag.subject == "hub" and "its clock runs 6 min ahead" in flag.message
        assert gw.sample("telecare_readings_retimed_total", {"reason": "future_timestamp"}) == 1
        assert gw.sample("telecare_hub_clock_skew_seconds", {"home": HOME}) > 350
    finally:
        gw.stop()


def _kinds(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as s:
        return {a.kind for a in s.scalars(select(Alert))}
