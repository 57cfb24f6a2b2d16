"""The one time-zone helper: every way zoneinfo says no is a "no", and a home without a usable zone gets the
default with one warning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import pytest
from pydantic import AfterValidator, TypeAdapter, ValidationError
from typer.testing import CliRunner

from gateway import timezones
from gateway.db.models import DEFAULT_TIMEZONE
from gateway.homes import HomeSpec
from telecare.cli import app

# An unknown name, an empty one, a path, a region (a directory: IsADirectoryError) and one too long for a file name.
NOT_ZONES = ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "Europe", "x" * 300]


@pytest.mark.parametrize("name", NOT_ZONES)
def test_every_refusal_of_zoneinfo_is_no_zone(name: str) -> None:
    assert timezones.find_zone(name) is None


def test_a_zone_is_found_by_its_name() -> None:
    assert timezones.find_zone("America/New_York") == ZoneInfo("America/New_York")
    assert timezones.zone("Asia/Tokyo") == ZoneInfo("Asia/Tokyo")


def test_no_name_is_the_default_zone_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gateway.timezones"):
        assert timezones.zone(None) == ZoneInfo(DEFAULT_TIMEZONE)
        assert timezones.zone("") == ZoneInfo(DEFAULT_TIMEZONE)
    assert caplog.records == []


def test_an_unknown_name_is_the_default_zone_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gateway.timezones"):
        for _ in range(3):  # a dashboard asks on every page: the operator is told once
            assert timezones.zone("Europe", of="home test-tz-1") == ZoneInfo(DEFAULT_TIMEZONE)
    [record] = caplog.records
    assert record.getMessage() == f"home test-tz-1: unknown time zone 'Europe'; using {DEFAULT_TIMEZONE}"


def test_the_validator_passes_a_zone_and_refuses_the_rest_with_a_sentence() -> None:
    assert timezones.zone_name("Europe/Dublin") == "Europe/Dublin"
    with pytest.raises(ValueError, match=r"unknown time zone 'Europe': use an IANA name such as Europe/London"):
        timezones.zone_name("Europe")


def test_the_validator_in_a_schema_is_a_validation_error_not_a_crash() -> None:
    adapter = TypeAdapter(Annotated[str, AfterValidator(timezones.zone_name)])
    assert adapter.validate_python("UTC") == "UTC"
    for name in NOT_ZONES:
        with pytest.raises(ValidationError, match="unknown time zone"):
            adapter.validate_python(name)


@pytest.mark.parametrize("name", ["Europe", "x" * 300])
def test_a_homes_file_naming_a_region_is_refused_with_its_sentence(name: str) -> None:
    # Before the helper the homes file caught only two of zoneinfo's refusals: a region was a traceback.
    with pytest.raises(ValidationError, match=r"unknown timezone '.*'; use an IANA name like 'Europe/London'"):
        HomeSpec(id="h1", name="Home", timezone=name)


def test_analyse_refuses_a_region_for_tz_with_a_sentence(tmp_path: Path) -> None:
    csv = tmp_path / "events.csv"
    csv.write_text("time,home,device,kind,value\n2024-03-01T07:02:11Z,h,d,motion,1\n")
    result = CliRunner().invoke(app, ["analyse", str(csv), "--tz", "Europe"])
    assert result.exit_code == 2 and "--tz: unknown time zone 'Europe'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
