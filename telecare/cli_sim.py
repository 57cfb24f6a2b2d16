"""``telecare sim``: publish simulated homes, export them to the neutral CSV, replay real recordings."""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
import yaml

from gateway.config import ConfigError, load_settings
from sensors_sim.events import Observation
from sensors_sim.faults import parse_faults
from sensors_sim.generate import DAY_MS, Simulation, homes_for, reported, start_of
from sensors_sim.incidents import GroundTruth, parse_incidents, write_truth_jsonl
from sensors_sim.publish import MqttPublisher, device_messages, hub_messages, play, with_clock
from sensors_sim.recordings import read_csv, read_recording, write_csv
from sensors_sim.scenario import Scenario, SimHome, load_scenario, to_home_description
from sensors_sim.sensors import Radio

sim_app = typer.Typer(help="The simulator: homes, routines and incidents over MQTT, and replay of recordings.",
                      no_args_is_help=True)

Speed = Annotated[float, typer.Option(help="simulated seconds per second: 1 real time, 600 ten minutes a "
                                           "second, 0 as fast as possible")]
MqttUrl = Annotated[str | None, typer.Option(help="broker (default TELECARE_MQTT_URL)")]
Truth = Annotated[Path | None, typer.Option(help="write the incidents' ground truth here (JSON Lines)")]


class Format(StrEnum):
    KASTEREN = "kasteren"
    ORDONEZ = "ordonez"
    CSV = "csv"


def _mqtt_url(url: str | None) -> str:
    if url:
        return url
    try:
        return load_settings().mqtt_url
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


def _scenario(path: Path | None) -> Scenario | None:
    if path is None:
        return None
    try:
        return load_scenario(path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        typer.echo(f"{path}: {e}", err=True)
        raise typer.Exit(2) from None


def _publish(stream: Iterable[Observation], url: str, speed: float, seed: int, sim: Simulation | None = None
             ) -> None:
    devices = device_messages(stream, Radio(None, np.random.default_rng(seed)),
                              battery_cap=sim.battery_cap if sim else None)
    if sim is not None:
        devices = heapq.merge(devices, hub_messages(sim.hub_events()), key=lambda m: m.time_ms)
    publisher = MqttPublisher(url)
    try:
        messages = with_clock(devices, speed or None)
        stats = play(messages, publisher.send, speed=speed or None, progress=lambda st: typer.echo(st.summary()))
    finally:
        publisher.close()
    typer.echo(stats.summary())


def _simulation(scenario: Scenario | None, homes: list[SimHome], start_ms: int, days: int, seed: int
                ) -> Simulation:
    try:
        return Simulation(homes, start_ms, days, seed, parse_incidents(scenario.incidents) if scenario else (),
                          parse_faults(scenario.faults) if scenario else ())
    except ValueError as e:  # an incident or fault outside the simulated days, or naming an unknown device
        typer.echo(f"scenario: {e}", err=True)
        raise typer.Exit(2) from None


def _write_truth(path: Path | None, found: list[GroundTruth]) -> None:
    if path is not None:
        write_truth_jsonl(found, path)
        typer.echo(f"ground truth of {len(found)} incident(s) written to {path}")


def _write_homes(path: Path | None, homes: list[dict]) -> None:
    """One description file (docs/homes.md) for all the homes."""
    if path is not None:
        path.write_text(yaml.safe_dump({"version": 1, "homes": homes}, sort_keys=False), encoding="utf-8")
        typer.echo(f"home descriptions written to {path} (load them with: telecare homes import {path})")


@sim_app.command()
def run(homes: Annotated[int | None, typer.Option(help="how many homes (default: the scenario's, or 1)")] = None,
        speed: Speed = 600.0, seed: int = 0,
        days: Annotated[int | None, typer.Option(help="simulated days (default: the scenario's, or 7)")] = None,
        start: Annotated[str | None, typer.Option(
            help="first simulated day, YYYY-MM-DD (default: today; at --speed 1, from now on the wall clock)")] = None,
        scenario: Annotated[Path | None, typer.Option(help="scenario YAML (docs/simulator.md)")] = None,
        homes_out: Annotated[Path | None, typer.Option(help="also write the homes' description YAML")] = None,
        truth: Truth = None, mqtt_url: MqttUrl = None) -> None:
    """Publish simulated homes over MQTT, as their zigbee2mqtt hubs would."""
    chosen = _scenario(scenario)
    all_homes = homes_for(homes, chosen)
    first = date.fromisoformat(start) if start else datetime.now(UTC).date()
    span = days or (chosen.days if chosen else 7)
    _write_homes(homes_out, [to_home_description(h)["homes"][0] for h in all_homes])
    sim = _simulation(chosen, all_homes, start_of(first), span, seed)
    stream = sim.observations()
    if speed == 1 and start is None:  # real time on the wall clock: today so far is history, not news
        now_ms = time.time_ns() // 1_000_000
        stream = (o for o in stream if o.time_ms >= now_ms)
    try:
        _publish(stream, _mqtt_url(mqtt_url), speed, seed, sim)
    finally:
        _write_truth(truth, sim.truth)


@sim_app.command()
def export(out: Annotated[Path, typer.Option(help="the neutral CSV to write")],
           homes: Annotated[int | None, typer.Option(help="how many homes")] = None,
           days: Annotated[int, typer.Option(help="simulated days")] = 28, seed: int = 0,
           start: Annotated[str, typer.Option(help="first simulated day, YYYY-MM-DD")] = "2026-01-05",
           scenario: Annotated[Path | None, typer.Option(help="scenario YAML")] = None,
           homes_out: Annotated[Path | None, typer.Option(help="also write the homes' description YAML")] = None,
           truth: Truth = None) -> None:
    """Write simulated homes to the neutral CSV (docs/neutral-csv.md), without MQTT: every report `telecare sim
    run` would publish with the same options, with its battery, light level and link quality."""
    chosen = _scenario(scenario)
    all_homes = homes_for(homes, chosen)
    _write_homes(homes_out, [to_home_description(h)["homes"][0] for h in all_homes])
    sim = _simulation(chosen, all_homes, start_of(date.fromisoformat(start)), days, seed)
    # The radio as `sim run` builds it (_publish): the same seed gives the same batteries and link qualities.
    rows = write_csv(reported(sim.observations(), Radio(None, np.random.default_rng(seed)), sim.battery_cap), out)
    _write_truth(truth, sim.truth)
    typer.echo(f"{rows:,} observations of {len(all_homes):,} homes over {days} days written to {out}")


@sim_app.command()
def replay(path: Path, format: Annotated[Format, typer.Option("--format", help="the recording's format")],
           speed: Speed = 0.0, seed: int = 0,
           homes_out: Annotated[Path | None, typer.Option(help="also write the home description YAML")] = None,
           mqtt_url: MqttUrl = None) -> None:
    """Play a real recording through MQTT, its sensors mapped onto contract devices (docs/recordings.md)."""
    try:
        if format is Format.CSV:
            stream: list[Observation] = list(read_csv(path))
        else:
            recording = read_recording(path)
            stream = recording.observations
            _write_homes(homes_out, [recording.home_description()])
    except (OSError, ValueError) as e:
        typer.echo(f"{path}: {e}", err=True)
        raise typer.Exit(2) from None
    if stream:
        days = (stream[-1].time_ms - stream[0].time_ms) / DAY_MS
        typer.echo(f"replaying {len(stream):,} observations over {days:,.1f} days")
    _publish(stream, _mqtt_url(mqtt_url), speed, seed)
