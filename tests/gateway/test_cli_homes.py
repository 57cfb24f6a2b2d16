"""``telecare homes list`` says how many devices of each home still need setting up, and names a button not set up
(issue 11, finding 5)."""

from __future__ import annotations

from typer.testing import CliRunner

from gateway.db.migrate import upgrade
from gateway.db.models import Device, Home
from gateway.db.session import make_engine, make_session_factory
from telecare.cli_db import homes_app


def seed(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine).begin() as s:
            s.add_all([Home(id="described", name="12 Acacia Avenue"), Home(id="discovered"),
                       Home(id="half-done", name="3 Elm Road")])
            s.flush()
            s.add_all([Device(home_id="described", name="pendant", kind="button", role="pendant"),
                       Device(home_id="described", name="lounge_climate", kind="climate", room="living room"),
                       Device(home_id="discovered", name="0x00158d0001a2b3c4", kind="button"),
                       Device(home_id="discovered", name="0x00158d0001a2b3c5", kind="motion"),
                       Device(home_id="half-done", name="hall_pir", kind="motion"),
                       Device(home_id="half-done", name="kitchen_pir", kind="motion", room="kitchen")])
    finally:
        engine.dispose()


def test_homes_list_counts_devices_not_set_up_and_names_the_buttons(db_url: str) -> None:
    seed(db_url)
    result = CliRunner().invoke(homes_app, ["list"], env={"TELECARE_DB_URL": db_url})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()][-3:] == ["DEVICES", "NOT SET UP", "LAST SEEN (UTC)"]
    column = lines[0].index("NOT SET UP")
    rows = {line.split()[0]: line[column:].split("  ")[0].strip() for line in lines[1:4]}
    assert rows == {"described": "0", "discovered": "2 (1 button)", "half-done": "1"}
    assert lines[4].startswith("discovered: button(s) not set up: 0x00158d0001a2b3c4. Each press is raised as a "
                               "possible pendant press (an emergency)")
    assert lines[5].startswith("unassigned homes are not in the API or dashboard: telecare homes claim HOME")
    assert lines[6].startswith("NOT SET UP: devices with no room or role")
    assert len(lines) == 7, "no note for a home whose devices need no button set up"
