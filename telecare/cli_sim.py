"""``telecare sim``: publish simulated homes, export them to the neutral CSV, replay real recordings.

Every mistake on the command line (a negative speed, no homes, a date that is not one) and a broker that cannot be
reached are one sentence on standard error and a non-zero exit, never a traceback. Long work shows a bar on a
terminal (telecare/progress.py) and ends with a summary line.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
import yaml

from gateway.config import ConfigError, load_settings
from gateway.mqtt_input import network_failure
from sensors_sim.events import Observation
from sensors_sim.faults import parse_faults
from sensors_sim.generate import DAY_MS, Simulation, homes_for, reported, start_of
from sensors_sim.incidents import GroundTruth, parse_incidents, write_truth_jsonl
from sensors_sim.publish import MqttPublisher, Outgoing, device_messages, hub_messages, play, with_clock
from sensors_sim.recordings import read_csv, read_recording, write_csv
from sensors_sim.scenario import Scenario, SimHome, load_scenario, to_home_description
from sensors_sim.sensors import Radio
from telecare.cli_common import fail
from telecare.progress import plural, progress_bar, simulated

sim_app = typer.Typer(help="The simulator: homes, routines and incidents over MQTT, and replay of recordings.",
                      no_args_is_help=True)

Speed = Annotated[float, typer.Option(help="simulated seconds per second: 1 real time, 600 ten minutes a "
                                           "second, 0 as fast as possible")]
Seed = Annotated[int, typer.Option(help="the random seed (0 or more): the same seed, the same homes")]
MqttUrl = Annotated[str | None, typer.Option(help="broker (default TELECARE_MQTT_URL)")]
Truth = Annotated[Path | None, typer.Option(help="write the incidents' ground truth here (JSON Lines)")]
EXIT_UNREACHABLE = 1  # the command was right, the broker was not there: try again once it is
CONNECT_WAIT_S = 10.0  # for the broker's answer to CONNECT, once TCP is up
PROGRESS_LINE_EVERY_S = 60.0  # without a terminal: one line of figures a minute (a log, not a screen)


class Format(StrEnum):
    KASTEREN = "kasteren"
    ORDONEZ = "ordonez"
    CSV = "csv"


# --- Checking what was asked ------------------------------------------------------------------------------------


def check_count(option: str, value: int | None, what: str) -> None:
    if value is not None and value < 1:
        raise fail(f"{option} {value}: give 1 or more {what}")


def check_speed(speed: float) -> None:
    if not math.isfinite(speed) or speed < 0:
        raise fail(f"--speed {speed:g}: give simulated seconds per second, 0 or more (0 means as fast as possible, "
                   "1 real time, 600 ten minutes a second)")


def check_seed(seed: int) -> None:
    if seed < 0:
        raise fail(f"--seed {seed}: give a seed of 0 or more")


def parse_day(option: str, text: str) -> date:
    """A day given as YYYY-MM-DD, or the sentence saying what is accepted."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        why = str(e) if "must be" in str(e) else "not a date"
        raise fail(f"{option} {text}: {why}; give the day as YYYY-MM-DD, e.g. 2026-01-05") from None


def speed_words(speed: float) -> str:
    if not speed:
        return "as fast as possible"
    if speed == 1:
        return "in real time"
    return f"at {speed:g}x (a simulated hour every {3600 / speed:,.3g} s)"


# --- The broker and what is played through it -------------------------------------------------------------------


def _mqtt_url(url: str | None) -> str:
    if url:
        return url
    try:
        return load_settings().mqtt_url
    except ConfigError as e:
        raise fail(str(e)) from None


def connect(url: str) -> MqttPublisher:
    """A publisher connected to the broker, or the sentence saying why not and what to check."""
    where = f"the MQTT broker at {url} (--mqtt-url, or TELECARE_MQTT_URL)"
    try:
        publisher = MqttPublisher(url)
    except (OSError, ValueError) as e:  # refused, no such host, TLS; ValueError: a port paho will not take
        _label, detail = network_failure(e) if isinstance(e, OSError) else ("", str(e))
        raise fail(f"cannot reach {where}: {detail}. Is the broker running, and is that its address?",
                   EXIT_UNREACHABLE) from None
    deadline = time.monotonic() + CONNECT_WAIT_S
    while not publisher.client.is_connected():
        if time.monotonic() > deadline:
            publisher.client.loop_stop()
            raise fail(f"{where} did not accept the connection within {CONNECT_WAIT_S:g} s: check the user name and "
                       "password in the URL, and that it is an MQTT broker", EXIT_UNREACHABLE)
        time.sleep(0.05)
    return publisher


def _publish(stream: Iterable[Observation], publisher: MqttPublisher, url: str, speed: float, seed: int,
             span: tuple[int, int], sim: Simulation | None = None) -> None:
    """Play ``stream`` (simulated time ``span``: first and last ms, for the bar) through ``publisher``."""
    devices: Iterable[Outgoing] = device_messages(stream, Radio(None, np.random.default_rng(seed)),
                                                  battery_cap=sim.battery_cap if sim else None)
    if sim is not None:
        devices = heapq.merge(devices, hub_messages(sim.hub_events()), key=lambda m: m.time_ms)
    first, last = span
    making = "making the first simulated day of every home" if sim is not None else ""
    with progress_bar("publishing", max(1, last - first), status=making) as bar:
        messages: Iterator[Outgoing] = bar.tap(with_clock(devices, speed or None), lambda m: m.time_ms - first,
                                               lambda m, n: f"{simulated(m.time_ms)} · {plural(n, 'message')}")
        lines = None if bar.shown else (lambda st: typer.echo(st.summary(), err=True))
        try:
            stats = play(messages, publisher.send, speed=speed or None, progress=lines,
                         progress_every_s=PROGRESS_LINE_EVERY_S)
        finally:
            _close(publisher, url)
    typer.echo(stats.summary())


def _close(publisher: MqttPublisher, url: str) -> None:
    try:
        publisher.close()
    except TimeoutError:
        publisher.client.loop_stop()
        raise fail(f"the MQTT broker at {url} stopped acknowledging messages: the last ones sent may not have "
                   "arrived (is it still running?)", EXIT_UNREACHABLE) from None


def announce(homes: int, days: int, first_ms: int, speed: float, url: str) -> None:
    """The first line, at once: what is about to be played (making the first day of every home takes a while)."""
    typer.echo(f"publishing {plural(homes, 'home')} over {plural(days, 'simulated day')} from "
               f"{simulated(first_ms)} {speed_words(speed)} to {url}; Ctrl-C stops", err=True)


# --- Shared by the commands --------------------------------------------------------------------------------------


def _scenario(path: Path | None) -> Scenario | None:
    if path is None:
        return None
    try:
        return load_scenario(path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise fail(f"{path}: {e}") from None


def _simulation(scenario: Scenario | None, homes: list[SimHome], start_ms: int, days: int, seed: int
                ) -> Simulation:
    try:
        return Simulation(homes, start_ms, days, seed, parse_incidents(scenario.incidents) if scenario else (),
                          parse_faults(scenario.faults) if scenario else ())
    except ValueError as e:  # an incident or fault outside the simulated days, or naming an unknown device
        raise fail(f"scenario: {e}") from None


def _write_truth(path: Path | None, found: list[GroundTruth]) -> None:
    if path is not None:
        write_truth_jsonl(found, path)
        typer.echo(f"ground truth of {len(found)} incident(s) written to {path}")


def _write_homes(path: Path | None, homes: list[dict]) -> None:
    """One description file (docs/homes.md) for all the homes."""
    if path is not None:
        path.write_text(yaml.safe_dump({"version": 1, "homes": homes}, sort_keys=False), encoding="utf-8")
        typer.echo(f"home descriptions written to {path} (load them with: telecare homes import {path})")


# --- The commands ------------------------------------------------------------------------------------------------


@sim_app.command()
def run(homes: Annotated[int | None, typer.Option(help="how many homes, 1 or more (default: the scenario's, or 1)")
                         ] = None,
        speed: Speed = 600.0, seed: Seed = 0,
        days: Annotated[int | None, typer.Option(help="simulated days, 1 or more (default: the scenario's, or 7)")
                        ] = None,
        start: Annotated[str | None, typer.Option(
            help="first simulated day, YYYY-MM-DD (default: today; at --speed 1, from now on the wall clock)")] = None,
        scenario: Annotated[Path | None, typer.Option(help="scenario YAML (docs/simulator.md)")] = None,
        homes_out: Annotated[Path | None, typer.Option(help="also write the homes' description YAML")] = None,
        truth: Truth = None, mqtt_url: MqttUrl = None) -> None:
    """Publish simulated homes over MQTT, as their zigbee2mqtt hubs would."""
    check_count("--homes", homes, "homes")
    check_count("--days", days, "simulated days")
    check_speed(speed)
    check_seed(seed)
    first = parse_day("--start", start) if start else datetime.now(UTC).date()
    chosen = _scenario(scenario)
    url = _mqtt_url(mqtt_url)
    publisher = connect(url)  # before anything is written: a broker that is down is said at once
    all_homes = homes_for(homes, chosen)
    span = days or (chosen.days if chosen else 7)
    _write_homes(homes_out, [to_home_description(h)["homes"][0] for h in all_homes])
    sim = _simulation(chosen, all_homes, start_of(first), span, seed)
    stream = sim.observations()
    begin_ms = start_of(first)
    if speed == 1 and start is None:  # real time on the wall clock: today so far is history, not news
        now_ms = time.time_ns() // 1_000_000
        stream = (o for o in stream if o.time_ms >= now_ms)
        begin_ms = max(begin_ms, now_ms)
    announce(len(all_homes), span, begin_ms, speed, url)
    try:
        _publish(stream, publisher, url, speed, seed, (begin_ms, start_of(first) + span * DAY_MS), sim)
    finally:
        _write_truth(truth, sim.truth)


@sim_app.command()
def export(out: Annotated[Path, typer.Option(help="the neutral CSV to write")],
           homes: Annotated[int | None, typer.Option(help="how many homes, 1 or more")] = None,
           days: Annotated[int, typer.Option(help="simulated days, 1 or more")] = 28, seed: Seed = 0,
           start: Annotated[str, typer.Option(help="first simulated day, YYYY-MM-DD")] = "2026-01-05",
           scenario: Annotated[Path | None, typer.Option(help="scenario YAML")] = None,
           homes_out: Annotated[Path | None, typer.Option(help="also write the homes' description YAML")] = None,
           truth: Truth = None) -> None:
    """Write simulated homes to the neutral CSV (docs/neutral-csv.md), without MQTT: every report `telecare sim
    run` would publish with the same options, with its battery, light level and link quality."""
    check_count("--homes", homes, "homes")
    check_count("--days", days, "simulated days")
    check_seed(seed)
    first_ms = start_of(parse_day("--start", start))
    chosen = _scenario(scenario)
    all_homes = homes_for(homes, chosen)
    _write_homes(homes_out, [to_home_description(h)["homes"][0] for h in all_homes])
    sim = _simulation(chosen, all_homes, first_ms, days, seed)
    began = time.monotonic()
    # The radio as `sim run` builds it (_publish): the same seed gives the same batteries and link qualities.
    observations = reported(sim.observations(), Radio(None, np.random.default_rng(seed)), sim.battery_cap)
    try:
        with progress_bar(f"exporting to {out.name}", days * DAY_MS) as bar:
            rows = write_csv(bar.tap(observations, lambda o: o.time_ms - first_ms,
                                     lambda o, n: f"{simulated(o.time_ms)} · {plural(n, 'row')}"), out)
    except OSError as e:
        raise fail(f"cannot write {out}: {e.strerror or e}") from None
    _write_truth(truth, sim.truth)
    typer.echo(f"{rows:,} observations of {plural(len(all_homes), 'home')} over {plural(days, 'day')} written to "
               f"{out} in {time.monotonic() - began:,.1f} s")


@sim_app.command()
def replay(path: Path, format: Annotated[Format, typer.Option("--format", help="the recording's format")],
           speed: Speed = 0.0, seed: Seed = 0,
           homes_out: Annotated[Path | None, typer.Option(help="also write the home description YAML")] = None,
           mqtt_url: MqttUrl = None) -> None:
    """Play a real recording through MQTT, its sensors mapped onto contract devices (docs/recordings.md)."""
    check_speed(speed)
    check_seed(seed)
    try:
        if format is Format.CSV:
            stream: list[Observation] = list(read_csv(path))
        else:
            recording = read_recording(path)
            stream = recording.observations
            _write_homes(homes_out, [recording.home_description()])
    except (OSError, ValueError) as e:
        raise fail(f"{path}: {e}") from None
    if not stream:
        raise fail(f"{path}: no observations to replay")
    url = _mqtt_url(mqtt_url)
    publisher = connect(url)
    first, last = stream[0].time_ms, stream[-1].time_ms
    typer.echo(f"replaying {len(stream):,} observations over {(last - first) / DAY_MS:,.1f} days "
               f"{speed_words(speed)} to {url}")
    _publish(stream, publisher, url, speed, seed, (first, last))

