"""Detectors that have lived through three simulated weeks, shared by the detector tests."""

from __future__ import annotations

import pickle

import pytest

from analytics.detector import HomeDetector
from analytics.localtime import DAY_MS, HOUR_MS
from analytics.replay import feed
from tests.analytics.test_detector import HISTORY_DAYS, LONDON, START, simulate

SNAPSHOT_HOURS = (2, 10, 11, 14, 23)


@pytest.fixture(scope="session")
def snapshots() -> dict[int, bytes]:
    """Detectors that have lived through three simulated weeks, checkpointed (pickled) at a few local hours of
    the next day: each test takes one up and tells it what happens next."""
    observations, _ = simulate(HISTORY_DAYS + 1)
    detector = HomeDetector("h1", LONDON)
    day = START + HISTORY_DAYS * DAY_MS
    wanted = [(detector.local.utc_ms(detector.local.local_ms(day) + h * HOUR_MS), h) for h in SNAPSHOT_HOURS]
    taken: dict[int, bytes] = {}
    for o in observations:
        while wanted and o.time_ms >= wanted[0][0]:
            detector.advance(wanted[0][0])
            taken[wanted.pop(0)[1]] = pickle.dumps(detector)
        feed(detector, o)
    return taken
