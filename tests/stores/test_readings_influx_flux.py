"""The InfluxDB adapter against a real InfluxDB 2.x: the shared contract, Flux reads included.

Runs only when ``TELECARE_TEST_INFLUX_URL`` is set, with ``TELECARE_TEST_INFLUX_TOKEN``,
``TELECARE_TEST_INFLUX_ORG`` and ``TELECARE_TEST_INFLUX_BUCKET`` (a token that may write and read that
bucket).
The tests write to homes of their own (random names) and leave the points behind; use a scratch bucket with
a short retention period, e.g.::

    influx bucket create --name telecare-test --retention 7d
    TELECARE_TEST_INFLUX_URL=http://127.0.0.1:8086 TELECARE_TEST_INFLUX_TOKEN=... \\
    TELECARE_TEST_INFLUX_ORG=... TELECARE_TEST_INFLUX_BUCKET=telecare-test .venv/bin/pytest tests/stores
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from gateway.errors import StoreUnavailable
from gateway.stores.readings.base import ReadingStore
from tests.stores.contract import T0, ReadingStoreContract, new_home

URL = os.environ.get("TELECARE_TEST_INFLUX_URL", "")
SETTINGS = {name: os.environ.get(f"TELECARE_TEST_INFLUX_{name.upper()}", "")
            for name in ("token", "org", "bucket")}

pytestmark = pytest.mark.skipif(not URL, reason="TELECARE_TEST_INFLUX_URL is not set (no InfluxDB 2.x here)")


def make_store(**overrides: str) -> ReadingStore:
    from gateway.stores.readings.influx import InfluxReadingStore

    missing = [f"TELECARE_TEST_INFLUX_{k.upper()}" for k, v in SETTINGS.items() if not v]
    if missing:
        pytest.fail(f"TELECARE_TEST_INFLUX_URL is set but {', '.join(missing)} is not")
    settings = {**SETTINGS, **overrides}
    return InfluxReadingStore(URL, settings["token"], settings["org"], settings["bucket"], timeout_s=10.0)


class TestInfluxContract(ReadingStoreContract):
    @pytest.fixture
    def store_factory(self) -> Callable[[], ReadingStore]:
        return make_store


def test_a_bad_token_is_unavailable_not_rejected() -> None:
    """401 is for an operator to fix; the readings must stay in the journal, not be dropped."""
    store = make_store(token="not-a-token")
    try:
        with pytest.raises(StoreUnavailable, match="401"):
            store.timeline(new_home(), T0, T0 + 1)
    finally:
        store.close()
