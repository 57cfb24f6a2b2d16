"""Home descriptions: validation with clear messages; ``telecare homes import`` on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from gateway.db.models import Device, Home, Organisation
from gateway.homes import HomesFile, HomesFileError, import_homes, load_description, parse_description
from gateway.journal import Entry
from gateway.registry import DeviceRegistry
from telecare.cli_db import db_app, homes_app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "homes.md"
T0 = 1_780_000_000_000


def docs_example() -> dict[str, Any]:
    """The full example home in docs/homes.md: the docs and the code must agree."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    examples = [b for b in blocks if "acacia-12" in b]
    assert len(examples) == 1
    return yaml.safe_load(examples[0])


@pytest.fixture
def example() -> dict[str, Any]:
    return docs_example()




def do_import(sessions: sessionmaker[Session], data: dict[str, Any]):
    with sessions.begin() as s:
        return import_homes(s, parse_description(data))


def devices(sessions: sessionmaker[Session], home: str = "acacia-12") -> dict[str, Device]:
    with sessions() as s:
        return {d.name: d for d in s.scalars(select(Device).where(Device.home_id == home))}


# --- the format ---------------------------------------------------------------------------------------------


def test_the_documented_example_is_valid(example: dict[str, Any]) -> None:
    description = parse_description(example)
    home = description.homes[0]
    assert (home.id, home.name, home.timezone) == ("acacia-12", "12 Acacia Avenue", "Europe/London")
    assert home.resident is not None and home.resident.name == "Margaret"
    rooms = {d.room for d in home.devices}
    assert rooms == {"hall", "kitchen", "living room", "bedroom", "bathroom", None}
    roles = {d.role for d in home.devices}
    assert {"room", "front_door", "fridge", "bed", "chair", "kettle", "pendant"} <= roles
    assert {d.kind for d in home.devices} >= {"motion", "contact", "presence", "plug", "button", "climate"}


def test_defaults_and_normalisation() -> None:
    description = parse_description({"homes": [{"id": "h1", "name": " Flat 1 ", "devices": [
        {"name": "pir", "ieee_address": "0x00158D0001A2B3C4"}]}]})
    home = description.homes[0]
    assert (home.name, home.timezone, home.resident) == ("Flat 1", "Europe/London", None)
    assert home.devices[0].ieee_address == "0x00158d0001a2b3c4"
    assert (home.devices[0].room, home.devices[0].role, home.devices[0].kind) == (None, None, None)
    assert description.version == 1


def test_load_description_from_a_file(tmp_path: Path, example: dict[str, Any]) -> None:
    path = tmp_path / "homes.yaml"
    path.write_text(yaml.safe_dump(example), encoding="utf-8")
    assert isinstance(load_description(path), HomesFile)


def problems(data: Any) -> list[str]:
    with pytest.raises(HomesFileError) as caught:
        parse_description(data, "homes.yaml")
    assert str(caught.value).startswith("homes.yaml: ")
    return caught.value.problems


def change(example: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``example`` with one field set (``value`` ``...`` deletes it). ``path``: ``homes.0.name``."""
    data = copy.deepcopy(example)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("homes.0.devices.6.role", "fridge_door",
     "homes[0].devices[6].role (home 'acacia-12', device 'fridge_door'): unknown role 'fridge_door'; "
     "valid roles: back_door, bed, chair, fridge, front_door, kettle, pendant, room"),
    ("homes.0.devices.0.kind", "pir",
     "homes[0].devices[0].kind (home 'acacia-12', device 'hall_motion'): unknown kind 'pir'; "
     "valid kinds: button, climate, contact, leak, motion, plug, presence, vibration"),
    ("homes.0.devices.0.ieee_address", "0x1234",
     "homes[0].devices[0].ieee_address (home 'acacia-12', device 'hall_motion'): "
     "IEEE address '0x1234' must be 0x followed by 16 hex digits"),
    ("homes.0.devices.0.ieee_address", 0x00158D0001A2B301,
     "homes[0].devices[0].ieee_address (home 'acacia-12', device 'hall_motion'): "
     "YAML read the IEEE address as a number: put it in quotes"),
    ("homes.0.timezone", "London",
     "homes[0].timezone (home 'acacia-12'): unknown timezone 'London'; "
     "use an IANA name like 'Europe/London'"),
    ("homes.0.id", "acacia/12", "homes[0].id (home 'acacia/12'): home id 'acacia/12' must be 1-64 letters"),
    ("homes.0.name", ..., "homes[0].name (home 'acacia-12'): required but missing"),
    ("homes.0.devices.2.name", ..., "homes[0].devices[2].name (home 'acacia-12'): required but missing"),
    ("homes.0.devices.1.rooom", "kitchen",
     "homes[0].devices[1].rooom (home 'acacia-12', device 'kitchen_motion'): unknown field"),
    ("homes.0.devices.1.name", "hall_motion",
     "homes[0] (home 'acacia-12'): device name 'hall_motion' appears twice (devices[0] and devices[1])"),
    ("homes.0.devices.1.ieee_address", "0x00158d0001a2b301",
     "homes[0] (home 'acacia-12'): IEEE address '0x00158d0001a2b301' appears twice "
     "(devices[0] and devices[1])"),
    ("homes.0.devices.1.name", "kitchen/+",
     "homes[0].devices[1].name (home 'acacia-12', device 'kitchen/+'): "
     "device name 'kitchen/+' contains an MQTT wildcard"),
    ("homes.0.devices.1.name", "bridge", "'bridge' is the hub's own topic"),
    ("homes.0.devices.1.room", "", "homes[0].devices[1].room (home 'acacia-12', device 'kitchen_motion'): "
                                   "String should have at least 1 character"),
    ("homes.0.resident", {"name": "Margaret", "phnoe": "0"},
     "homes[0].resident.phnoe (home 'acacia-12'): unknown field"),
    ("homes", [], "homes: List should have at least 1 item"),
    ("version", 2, "version: unsupported version 2; this telecare reads version 1"),
    ("homes.0.devices", "hall_motion", "homes[0].devices (home 'acacia-12'): Input should be a valid list"),
])
def test_each_problem_is_reported_with_its_path(example: dict[str, Any], path: str, value: Any,
                                                 expected: str) -> None:
    found = problems(change(example, path, value))
    assert len(found) == 1, found
    assert expected in found[0]


def test_duplicate_home_ids(example: dict[str, Any]) -> None:
    data = copy.deepcopy(example)
    data["homes"].append(copy.deepcopy(data["homes"][0]))
    assert problems(data) == ["(file): home id 'acacia-12' appears twice (homes[0] and homes[1])"]


def test_every_problem_is_reported_at_once(example: dict[str, Any]) -> None:
    data = change(change(example, "homes.0.timezone", "Mars/Olympus"), "homes.0.devices.3.role", "sofa")
    assert [p.split(":")[0] for p in problems(data)] == [
        "homes[0].timezone (home 'acacia-12')",
        "homes[0].devices[3].role (home 'acacia-12', device 'bedroom_motion')"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "the description is empty"),
    ("homes:\n  - id: a\n    name: [unclosed\n", "invalid YAML at line 4, column 1"),
    ("- just\n- a list\n", "(file): Input should be a valid dictionary"),
])
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "homes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HomesFileError) as caught:
        load_description(path)
    assert expected in caught.value.problems[0]
    assert str(path) in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HomesFileError, match="cannot read the file"):
        load_description(tmp_path / "nowhere.yaml")


# --- importing ----------------------------------------------------------------------------------------------


def test_import_creates_homes_and_devices(sessions: sessionmaker[Session], example: dict[str, Any]) -> None:
    report = do_import(sessions, example)
    assert (report.homes_created, report.devices_created, report.warnings) == (["acacia-12"], 12, [])
    with sessions() as s:
        home = s.get(Home, "acacia-12")
        assert home is not None
        assert (home.name, home.timezone, home.organisation_id, home.first_seen) == (
            "12 Acacia Avenue", "Europe/London", None, None)
    found = devices(sessions)
    assert (found["fridge_door"].room, found["fridge_door"].role, found["fridge_door"].kind) == (
        "kitchen", "fridge", "contact")
    assert (found["pendant"].room, found["pendant"].role) == (None, "pendant")
    assert found["living_room_temperature"].role is None
    assert found["kettle_plug"].ieee_address == "0x00158d0001a2b30a"
    assert found["hall_motion"].last_seen is None


def test_importing_again_changes_nothing(sessions: sessionmaker[Session], example: dict[str, Any]) -> None:
    do_import(sessions, example)
    report = do_import(sessions, example)
    assert (report.homes_created, report.homes_updated, report.devices_created, report.devices_updated,
            report.devices_unchanged) == ([], [], 0, 0, 12)


def test_the_description_owns_names_rooms_and_roles(sessions: sessionmaker[Session],
                                                    example: dict[str, Any]) -> None:
    do_import(sessions, example)
    data = change(example, "homes.0.name", "12 Acacia Ave")
    data = change(data, "homes.0.timezone", "Europe/Dublin")
    data = change(data, "homes.0.devices.6.room", "utility room")
    data = change(data, "homes.0.devices.7.role", ...)
    report = do_import(sessions, data)
    assert (report.homes_updated, report.devices_updated) == (["acacia-12"], 2)
    with sessions() as s:
        home = s.get(Home, "acacia-12")
        assert home is not None and (home.name, home.timezone) == ("12 Acacia Ave", "Europe/Dublin")
    found = devices(sessions)
    assert found["fridge_door"].room == "utility room"
    assert found["bed_pad"].role is None


def test_import_never_overwrites_what_the_gateway_discovered(sessions: sessionmaker[Session],
                                                             example: dict[str, Any]) -> None:
    registry = DeviceRegistry(sessions)
    registry.apply([
        # As ingest journals them before the home is described: kinds as their fields reveal them.
        Entry(1, "state", "acacia-12", "hall_motion", T0, T0, True, {"occupancy": True, "battery": 77}, "motion",
              "motion"),
        Entry(2, "state", "acacia-12", "chair_pad", T0, T0, True, {"contact": True}, "contact"),  # not what it says
        Entry(3, "bridge_devices", "acacia-12", None, T0, T0, False, [
            {"friendly_name": "hall_motion", "ieee_address": "0x00158d0001a2b3ff", "model": "RTCGQ11LM",
             "vendor": "Aqara", "description": "", "power_source": "Battery", "kind": "motion"},
            {"friendly_name": "landing_motion", "ieee_address": "0x00158d0001a2b304", "model": "RTCGQ11LM",
             "vendor": "Aqara", "description": "", "power_source": "Battery", "kind": "motion"}]),
        Entry(4, "bridge_state", "acacia-12", None, T0, T0, False, {"online": True}),
    ])
    with sessions.begin() as s:  # claimed by a coordinator in the meantime
        organisation = Organisation(name="Care Co")
        s.add(organisation)
        s.flush()
        home = s.get(Home, "acacia-12")
        assert home is not None
        home.organisation_id = organisation.id
    report = do_import(sessions, example)
    assert (report.homes_created, report.devices_created) == ([], 10)
    found = devices(sessions)
    hall = found["hall_motion"]
    assert (hall.last_seen, hall.battery, hall.model, hall.kind, hall.sends_last_seen) == (
        hall.first_seen, 77.0, "RTCGQ11LM", "motion", True)
    assert hall.ieee_address == "0x00158d0001a2b3ff"  # the hub's, not the description's
    assert (hall.room, hall.role) == ("hall", "room")
    assert found["chair_pad"].kind == "contact"
    with sessions() as s:
        home = s.get(Home, "acacia-12")
        assert home is not None and home.organisation_id is not None and home.hub_online is True
    assert sorted(report.warnings) == sorted([
        "home 'acacia-12': device 'hall_motion' is described with IEEE address 0x00158d0001a2b301 but the "
        "hub reports 0x00158d0001a2b3ff; keeping the hub's",
        "home 'acacia-12': device 'chair_pad' is described as 'presence' but its payloads say 'contact'; "
        "keeping 'contact'",
        "home 'acacia-12': device 'bedroom_motion' has IEEE address 0x00158d0001a2b304, which the hub calls "
        "'landing_motion'; rename it in the description or on the hub",
        "home 'acacia-12': discovered devices not in the description (no room or role): landing_motion",
    ])


def test_a_known_kind_is_filled_in_only_when_unknown(sessions: sessionmaker[Session]) -> None:
    DeviceRegistry(sessions).apply([Entry(1, "state", "h1", "mystery", T0, T0, True, {"battery": 50})])
    do_import(sessions, {"homes": [{"id": "h1", "name": "Flat", "devices": [
        {"name": "mystery", "kind": "vibration", "ieee_address": "0x00158d0001a2b3c4"}]}]})
    d = devices(sessions, "h1")["mystery"]
    assert (d.kind, d.ieee_address, d.battery) == ("vibration", "0x00158d0001a2b3c4", 50.0)


# --- the command line ---------------------------------------------------------------------------------------


def test_cli_upgrade_import_and_list(db_url: str, tmp_path: Path, example: dict[str, Any]) -> None:
    runner = CliRunner()
    env = {"TELECARE_DB_URL": db_url}
    path = tmp_path / "homes.yaml"
    path.write_text(yaml.safe_dump(example), encoding="utf-8")

    result = runner.invoke(homes_app, ["import", str(path)], env=env)
    assert result.exit_code == 1
    assert "run `telecare db upgrade` first" in result.output

    result = runner.invoke(db_app, ["upgrade"], env=env)
    assert result.exit_code == 0, result.output

    result = runner.invoke(homes_app, ["import", "--dry-run", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "homes: 1 created" in result.output
    result = runner.invoke(homes_app, ["list"], env=env)
    assert "no homes yet" in result.output

    result = runner.invoke(homes_app, ["import", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "devices: 12 created" in result.output

    result = runner.invoke(homes_app, ["list"], env=env)
    assert result.exit_code == 0, result.output
    header, row, hint = result.output.splitlines()
    assert header.split()[:3] == ["HOME", "NAME", "ORGANISATION"]
    assert "telecare homes claim HOME --organisation NAME" in hint, "what to do with an unassigned home"
    assert row.startswith("acacia-12") and "unassigned" in row and " 12 " in row and row.endswith("never")


def test_cli_reports_an_invalid_file(db_url: str, tmp_path: Path, example: dict[str, Any]) -> None:
    path = tmp_path / "homes.yaml"
    path.write_text(yaml.safe_dump(change(example, "homes.0.devices.0.role", "hallway")), encoding="utf-8")
    result = CliRunner().invoke(homes_app, ["import", str(path)], env={"TELECARE_DB_URL": db_url})
    assert result.exit_code == 1
    expected = "homes[0].devices[0].role (home 'acacia-12', device 'hall_motion'): unknown role 'hallway'"
    assert expected in result.output
