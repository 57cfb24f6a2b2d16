"""Per-home quotas (issue 11, finding 2), as pure logic: the cap, the hourly allowances, one report an hour, and
bounded state of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.db.migrate import upgrade
from gateway.quotas import HOUR_MS, HomeQuotas, Quota, QuotaLimits, Refused, stored_quotas

T0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS  # the start of an hour
SMALL = QuotaLimits(devices_per_home=10, new_devices_per_hour=4, dead_letters_per_hour=3)


def admit_many(quotas: HomeQuotas, home: str, names: list[str], at: int) -> list[Refused | None]:
    return [quotas.admit_device(home, name, at) for name in names]


def test_new_device_names_past_the_hourly_allowance_are_refused_known_ones_never() -> None:
    quotas = HomeQuotas(SMALL)
    results = admit_many(quotas, "h1", [f"d{i}" for i in range(6)], T0)
    assert results[:4] == [None] * 4
    assert [r.quota if r else None for r in results[4:]] == [Quota.NEW_DEVICES] * 2
    assert admit_many(quotas, "h1", ["d0", "d3", "d0"], T0 + 1) == [None] * 3, "known devices keep working"
    assert quotas.admit_device("h2", "d5", T0) is None, "another home has its own allowance"
    assert quotas.admit_device("h1", "d5", T0 + HOUR_MS) is None, "a new hour, a new allowance"


def test_the_device_cap_refuses_new_names_for_good_but_known_devices_keep_working() -> None:
    quotas = HomeQuotas(SMALL)
    hour = 0
    admitted: list[str] = []
    for i in range(40):  # four an hour would pass, but the cap of 10 stops it
        if i % 4 == 0:
            hour += 1
        if quotas.admit_device("h1", f"d{i}", T0 + hour * HOUR_MS) is None:
            admitted.append(f"d{i}")
    assert len(admitted) == 10 and quotas.known_devices("h1") == 10
    refused = quotas.admit_device("h1", "another", T0 + 99 * HOUR_MS)
    assert refused is not None and refused.quota is Quota.DEVICES
    assert all(quotas.admit_device("h1", d, T0 + 99 * HOUR_MS) is None for d in admitted)


def test_the_first_refusal_of_a_home_in_an_hour_carries_the_one_report() -> None:
    quotas = HomeQuotas(SMALL)
    results = admit_many(quotas, "h1", [f"d{i}" for i in range(100)], T0)
    reports = [r for r in results if r is not None and r.report is not None]
    assert len(reports) == 1
    assert "more than 4 new device names within an hour" in (reports[0].report or "")
    # Dead letters in the same hour: refused, reported with the rest (the home was told this hour already).
    dead = [quotas.admit_dead_letter("h1", T0 + 10) for _ in range(10)]
    assert dead[:3] == [None] * 3 and all(r is not None and r.report is None for r in dead[3:])
    later = quotas.admit_device("h1", "late", T0 + HOUR_MS + 5)  # still refusing an hour after the report
    assert later is None, "the new hour's allowance"
    again = admit_many(quotas, "h1", [f"e{i}" for i in range(10)], T0 + HOUR_MS + 6)
    [report] = [r for r in again if r is not None and r.report is not None]
    assert report.earlier == 95 + 7, "what was refused since the last report is told with the next"


def test_dead_letters_are_bounded_per_home_and_those_naming_no_home_share_one_bucket() -> None:
    quotas = HomeQuotas(SMALL)
    assert [quotas.admit_dead_letter("h1", T0) is None for _ in range(5)] == [True] * 3 + [False] * 2
    assert quotas.admit_dead_letter("h2", T0) is None
    nameless = [quotas.admit_dead_letter(None, T0) for _ in range(5)]
    assert [r is None for r in nameless] == [True] * 3 + [False] * 2
    assert all(r is None or r.report is None for r in nameless), "no home to tell"
    assert quotas.admit_dead_letter("h1", T0 + HOUR_MS) is None


def test_seeded_devices_are_known_and_count_against_the_cap() -> None:
    quotas = HomeQuotas(SMALL)
    quotas.seed("h1", [f"d{i}" for i in range(9)])
    assert quotas.admit_device("h1", "d3", T0) is None
    assert quotas.admit_device("h1", "new1", T0) is None
    refused = quotas.admit_device("h1", "new2", T0)
    assert refused is not None and refused.quota is Quota.DEVICES


def test_its_own_state_is_bounded_and_an_evicted_home_reads_its_devices_back() -> None:
    stored = {"h0": [f"d{i}" for i in range(8)]}
    loads: list[str] = []

    def load_known(home: str) -> list[str]:
        loads.append(home)
        return stored.get(home, [])

    quotas = HomeQuotas(SMALL, max_homes=100, load_known=load_known)
    quotas.seed("h0", stored["h0"])
    for i in range(1, 150):  # new home ids: none of them costs a lookup
        quotas.admit_device(f"x{i}", "d", T0)
    assert quotas.homes() == 100 and loads == []
    # h0 was pushed out; when it returns its eight devices are read back: known, and none counts as new.
    assert all(quotas.admit_device("h0", f"d{i}", T0) is None for i in range(8))
    assert loads == ["h0"] and quotas.known_devices("h0") == 8
    for i in range(1000, 5000):  # a flood of home ids: what is kept of them stays bounded
        quotas.admit_device(f"x{i}", "d", T0)
    assert quotas.homes() == 100 and len(quotas._evicted) == 100 and loads == ["h0"]


def test_a_home_whose_devices_cannot_be_read_is_let_through_until_they_can(caplog: pytest.LogCaptureFixture) -> None:
    failing = True

    def load_known(home: str) -> list[str]:
        if failing:
            raise OSError("database is locked")
        return ["d0"]

    quotas = HomeQuotas(SMALL, max_homes=1, load_known=load_known)
    quotas.admit_device("h0", "d0", T0)
    quotas.admit_device("h1", "d0", T0)  # pushes h0 out
    assert all(quotas.admit_device("h0", f"n{i}", T0) is None for i in range(20)), "never refuse blind"
    assert "could not be read" in caplog.text
    failing = False
    quotas.admit_device("h0", "d0", T0 + 61_000)  # retried a minute later
    assert [quotas.admit_device("h0", f"m{i}", T0 + 61_000) is None for i in range(6)] == [True] * 4 + [False] * 2


def test_the_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TELECARE_QUOTA_DEVICES_PER_HOME", "12")
    monkeypatch.setenv("TELECARE_QUOTA_NEW_DEVICES_PER_HOUR", "5")
    monkeypatch.setenv("TELECARE_QUOTA_DEAD_LETTERS_PER_HOUR", "7")
    settings = load_settings(data_dir=tmp_path)
    upgrade(settings.database_url)
    assert stored_quotas(settings).limits == QuotaLimits(12, 5, 7)
    assert load_settings(data_dir=tmp_path, quota_devices_per_home=200).quota_devices_per_home == 200
    monkeypatch.setenv("TELECARE_QUOTA_DEVICES_PER_HOME", "0")
    with pytest.raises(ConfigError, match="TELECARE_QUOTA_DEVICES_PER_HOME"):
        load_settings(data_dir=tmp_path)
