"""Issue 11, finding 2, end to end: real Mosquitto, the gateway's two processes, a Pushover-behaving server. One
hub floods new device names and 60 kB garbage topics; another home's pendant press is sent to its carer within
5 s, the flooding home costs a bounded number of rows and disk, and gets one hub_misbehaving alert."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from bench.pushover_server import PushoverServer
from bench.services import Mosquitto
from gateway.db.models import Alert, DeadLetter, Device
from gateway.db.session import make_engine, make_session_factory
from sensors_sim.sensors import iso_ms
from tests.e2e.helpers import gateway_settings, home_with_a_carer, publish, start_gateway, wait_for

pytest_plugins = ["tests.conftest_pushover"]

VICTIM, HOSTILE = "h1", "h666"
ANNE = "anne" + "0" * 26
NAMES, GARBAGE = 5000, 500


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_flood_from_one_hub_does_not_hold_up_another_homes_pendant(
        tmp_path: Path, mosquitto: Mosquitto, pushover: PushoverServer) -> None:
    pushover.users.add(ANNE)
    settings = gateway_settings(tmp_path, mosquitto, None, pushover_url=pushover.url, pushover_token="a" * 30)
    home_with_a_carer(settings, VICTIM, ANNE)
    sessions = make_session_factory(make_engine(settings.database_url))
    gw = start_gateway(settings)
    try:
        before = size(settings.data_dir)
        flood = [(f"telecare/{HOSTILE}/fake_{i}", b'{"temperature": 21.5}') for i in range(NAMES)]
        flood[::NAMES // GARBAGE] = [(f"telecare/{HOSTILE}/" + "x" * 60_000, b"{}")] * GARBAGE
        flooding = threading.Thread(target=publish, args=(mosquitto, flood), kwargs={"timeout_s": 120})
        flooding.start()
        time.sleep(0.5)  # into the flood
        pressed = time.monotonic()
        publish(mosquitto, [(f"telecare/{VICTIM}/pendant", orjson.dumps(
            {"action": "single", "battery": 80, "last_seen": iso_ms(int(time.time() * 1000))}))])
        wait_for(lambda: any(m["user"] == ANNE for m in pushover.messages), 30, "the pendant press to reach Anne")
        latency = time.monotonic() - pressed
        flooding.join()
        wait_for(lambda: gw.sample("telecare_messages_received_total") >= len(flood) + 1
                 and gw.journal.lag("registry") == 0 and gw.journal.lag("detect") == 0, 60, "the flood to drain")
        assert latency < 5, f"the pendant press took {latency:.1f} s to reach Pushover"
        with sessions() as s:
            devices = s.scalar(select(func.count()).select_from(Device).where(Device.home_id == HOSTILE))
            dead = s.scalar(select(func.count()).select_from(DeadLetter).where(DeadLetter.home_id == HOSTILE))
            kinds = [(a.home_id, a.kind) for a in s.scalars(select(Alert).order_by(Alert.id))]
        assert devices == 50 and dead == 100, "one hour's allowances (the cap is not reached in an hour)"
        assert kinds.count((HOSTILE, "hub_misbehaving")) == 1 and (VICTIM, "pendant") in kinds
        assert not [k for h, k in kinds if h == VICTIM and k != "pendant"]
        assert gw.sample("telecare_quota_dropped_total", {"quota": "new_devices"}) == NAMES - GARBAGE - 50
        assert gw.sample("telecare_quota_dropped_total", {"quota": "dead_letters"}) == GARBAGE - 100
        grown = size(settings.data_dir) - before
        assert grown < 60 * 1024 * 1024, f"the data directory grew by {grown / 1e6:.0f} MB"
    finally:
        gw.stop()
