"""Scenarios: the built-in default, YAML files, and the home description the gateway imports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from analytics.devices import KINDS_BY_KEY, ROLES
from gateway.homes import load_description, parse_description
from sensors_sim.scenario import (
    ROOMS,
    default_home,
    default_scenario,
    load_scenario,
    parse_scenario,
    to_home_description,
)


def test_default_home_has_the_usual_kit() -> None:
    home = default_home()
    roles = {d.role for d in home.devices}
    assert {"front_door", "back_door", "fridge", "bed", "chair", "kettle", "pendant", "room"} <= roles
    assert {d.room for d in home.devices if d.kind == "motion"} == set(ROOMS)
    assert {d.room for d in home.devices if d.kind == "climate"} == set(ROOMS)
    assert all(d.kind in KINDS_BY_KEY and (d.role is None or d.role in ROLES) for d in home.devices)
    assert [d.name for d in default_home(climate="one").devices if d.kind == "climate"] == ["living_room_climate"]


def test_the_home_description_is_what_the_gateway_imports(tmp_path: Path) -> None:
    home = default_home("flat-12")
    parsed = parse_description(to_home_description(home))
    (spec,) = parsed.homes
    assert spec.id == "flat-12" and spec.timezone == home.timezone
    assert {(d.name, d.room, d.role, d.kind, d.ieee_address) for d in spec.devices} == {
        (d.name, d.room, d.role, d.kind, d.ieee_address) for d in home.devices}
    path = tmp_path / "homes.yaml"
    path.write_text(yaml.safe_dump(to_home_description(home), sort_keys=False), encoding="utf-8")
    assert load_description(path) == parsed


def test_ieee_addresses_are_stable_and_differ_between_homes() -> None:
    a, b = default_home("a"), default_home("b")
    assert [d.ieee_address for d in a.devices] == [d.ieee_address for d in default_home("a").devices]
    assert not {d.ieee_address for d in a.devices} & {d.ieee_address for d in b.devices}


def test_a_scenario_file_overrides_only_what_it_says(tmp_path: Path) -> None:
    data = default_scenario().model_dump(mode="json")
    data["seed"] = 7
    data["homes"][0]["routine"] = {"sleep": {"wake_weekday": {"mean": 480, "sd": 10}}, "outings": {"days_per_week": 0}}
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    scenario = load_scenario(path)
    routine = scenario.homes[0].routine
    assert scenario.seed == 7
    assert routine.sleep.wake_weekday.mean == 480 and routine.outings.days_per_week == 0
    assert routine.sleep.wake_weekend == default_scenario().homes[0].routine.sleep.wake_weekend


@pytest.mark.parametrize("change, problem", [
    (lambda h: h["routine"].update(bathroom={"day_rte": 3}), "day_rte"),
    (lambda h: h["routine"].update(naps={"window": {"start": 900, "end": 800}}), "window end"),
    (lambda h: h["devices"][0].update(room="garage"), "unknown room"),
    (lambda h: h["devices"][0].update(role="toaster"), "unknown role"),
    (lambda h: h["devices"][1].update(name=h["devices"][0]["name"]), "appear twice"),
])
def test_bad_scenarios_are_refused(change, problem: str) -> None:
    data = default_scenario().model_dump(mode="json")
    change(data["homes"][0])
    with pytest.raises(ValidationError, match=problem):
        parse_scenario(data)
