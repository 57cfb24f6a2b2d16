"""The dashboard's charts (api/dashboard/charts.py): axes with values, every value in a <title>, days without a
summary marked "no data", and the time-zone and plural helpers the pages use."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from api.dashboard.charts import Mark, daily_bars, day_timeline, nice_ceiling
from api.dashboard.common import plural, when

DAYS = [date(2026, 11, 4) + timedelta(days=i) for i in range(28)]


def test_daily_bars_have_axes_values_and_no_data_marked() -> None:
    values: list[float | None] = [None] * 3 + [float(i) for i in range(3, 28)]
    values[10] = None
    svg = daily_bars(DAYS, values, label="Time in bed", unit=" h")
    ElementTree.fromstring(svg)  # well-formed
    assert re.findall(r'class="axis" text-anchor="end">([^<]+)</text>', svg) == ["0 h", "15 h", "30 h"]
    assert re.findall(r'text-anchor="middle">(\d\d \w\w\w)</text>', svg) == ["04 Nov", "11 Nov", "18 Nov", "25 Nov"]
    assert "<title>Sat 14 Nov: no data</title>" in svg and svg.count(": no data</title>") == 4
    assert "<title>Mon 30 Nov: 26 h</title>" in svg
    assert "no data (4 of 28 days)" in svg
    today = daily_bars(DAYS, [*values[:-1], None], label="Time in bed", today=DAYS[-1])
    assert "<title>Tue 01 Dec: no data yet (today: the day's figures come at midnight)</title>" in today
    assert 'viewBox="0 0 360 ' in svg, "drawn at a phone's width"


def test_daily_bars_without_any_figure_say_so() -> None:
    svg = daily_bars(DAYS, [None] * 28, label="Activities a day")
    assert svg.count('class="nodata"') == 29 and "no data (28 of 28 days)" in svg and ">0</text>" in svg


@pytest.mark.parametrize(("peak", "top"),
                         [(0, 1), (0.3, 0.3), (1, 1), (7, 8), (12, 15), (27, 30), (220, 250), (480, 500)])
def test_the_value_axis_ends_on_a_round_number(peak: float, top: float) -> None:
    assert nice_ceiling(peak) == pytest.approx(top)


def test_the_days_timeline_gives_each_activity_its_time_and_says_when_there_is_none() -> None:
    svg = day_timeline([Mark(65, "kitchen", "motion (kitchen_pir)")], ["kitchen"], now_minute=600, zone="GMT")
    assert "<title>01:05 motion (kitchen_pir)</title>" in svg and "<title>now, 10:00</title>" in svg
    assert 'aria-label="Activity by room over the day (GMT)"' in svg
    assert "no activity recorded today" in day_timeline([], [], now_minute=5)


def test_times_are_local_and_labelled_and_plurals_agree() -> None:
    london, at = ZoneInfo("Europe/London"), datetime(2026, 7, 2, 12, 0, tzinfo=UTC)
    assert when(datetime(2026, 7, 2, 9, 5, tzinfo=UTC), london, at) == "10:05 BST"
    assert when(datetime(2026, 7, 1, 22, 30, tzinfo=UTC), london, at) == "yesterday 23:30 BST"
    assert when(datetime(2026, 1, 3, 9, 0, tzinfo=UTC), london, at) == "03 Jan 09:00 GMT"
    assert when(datetime(2025, 12, 3, 9, 0, tzinfo=UTC), london, at) == "03 Dec 2025 09:00 GMT"
    assert when(at, ZoneInfo("America/Sao_Paulo"), at) == "09:00 (America/Sao_Paulo)"
    assert [plural(n, "open alert") for n in (0, 1, 2)] == ["0 open alerts", "1 open alert", "2 open alerts"]
    assert plural(1, "home that can't be seen", "homes that can't be seen") == "1 home that can't be seen"
