"""A login flood does not starve other requests (issue 12, finding 4): the password is hashed with no database
connection held, so on SQLite, where the API has one pooled connection, an alert list still answers at once while
logins hash. (On the old code each login held that connection through argon2: 12 logins made GET /alerts wait
about 1.5 s.)"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import PASSWORD, Clock, World, settings_for

LOGINS = 12


def test_alerts_answer_quickly_during_a_login_flood(tmp_path: Path, db_url: str, world: World,
                                                    clock: Clock) -> None:
    app = create_app(settings_for(tmp_path, db_url=db_url))  # its own engine: one pooled connection on SQLite
    app.state.now = clock
    with TestClient(app) as client:
        assert client.get("/alerts", headers=world.auth("cora")).status_code == 200  # warm up
        start = threading.Barrier(LOGINS + 1)

        def log_in(i: int) -> int:
            start.wait()
            who = ("cora", "ada", "anne", "ned")[i % 4]
            password = PASSWORD if i % 2 else "a wrong guess"
            return client.post("/auth/token", data={"username": world.emails[who], "password": password},
                               headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code

        with ThreadPoolExecutor(LOGINS) as pool:
            logins = [pool.submit(log_in, i) for i in range(LOGINS)]
            start.wait()
            time.sleep(0.02)  # the logins have their rows and are hashing
            slowest = 0.0
            for _ in range(3):
                began = time.perf_counter()
                r = client.get("/alerts", headers=world.auth("cora"))
                slowest = max(slowest, time.perf_counter() - began)
                assert r.status_code == 200
            statuses = sorted(f.result() for f in logins)
    assert statuses == [200] * (LOGINS // 2) + [401] * (LOGINS // 2)
    assert slowest < 1.0, f"GET /alerts took {slowest:.2f} s during {LOGINS} logins"
