"""Many homes' observations, one simulated day at a time, merged into one time-ordered stream.

Each home has its own random generator (``[seed, home index]``), so a home's stream does not depend on how
many others are simulated beside it, and a run is the same for the same seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime

import numpy as np

from sensors_sim.devices import flag, lux, number
from sensors_sim.events import Observation
from sensors_sim.faults import Fault, HubEvent, apply_faults
from sensors_sim.incidents import GroundTruth, Incident, IncidentRunner
from sensors_sim.routine import simulate_days
from sensors_sim.scenario import Scenario, SimHome, default_home
from sensors_sim.sensors import Radio, observe, payload

DAY_MS = 86_400_000


def homes_for(count: int | None, scenario: Scenario | None) -> list[SimHome]:
    """The scenario's homes, or ``count`` default homes; with both, the scenario's homes repeated to ``count``
    (copies get ids ``<id>-2``, ``<id>-3`` ...)."""
    if scenario is None:
        return [default_home(f"sim-{i + 1:05d}") for i in range(count or 1)]
    homes = list(scenario.homes)
    i = 0
    while count is not None and len(homes) < count:
        template = scenario.homes[i % len(scenario.homes)]
        copy_id = f"{template.id}-{len(homes) // len(scenario.homes) + 1}"
        homes.append(template.model_copy(update={"id": copy_id, "name": f"{template.name} ({copy_id})"}))
        i += 1
    return homes[:count] if count is not None else homes


def start_of(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


class Simulation:
    """A run of ``homes`` for ``days`` days from ``start_ms``: incidents change the residents' days, faults the
    devices and hubs. Ground truth (``truth``) holds the faults from the start and each incident once its day has
    been simulated."""

    def __init__(self, homes: Sequence[SimHome], start_ms: int, days: int, seed: int,
                 incidents: Sequence[Incident] = (), faults: Sequence[Fault] = ()) -> None:
        self.homes = list(homes)
        self.start_ms = start_ms
        self.days = days
        self.seed = seed
        self.incidents = list(incidents)
        self.faults = list(faults)
        end_ms = start_ms + days * DAY_MS
        # The whole run's hub events, battery fades and fault truth: the same whatever part of it is applied.
        self.faulted = {h.id: apply_faults(h, start_ms, end_ms, [], self.faults) for h in self.homes}
        self.truth: list[GroundTruth] = [t for f in self.faulted.values() for t in f.truth]

    def observations(self) -> Iterator[Observation]:
        """Every home's observations in time order, a day of all homes at a time."""
        rngs = [np.random.default_rng([self.seed, i]) for i in range(len(self.homes))]
        runners = [IncidentRunner(home, self.incidents, self.start_ms) for home in self.homes]
        starts = [self.start_ms] * len(self.homes)
        end_ms = self.start_ms + self.days * DAY_MS
        for _ in range(self.days):
            per_home = []
            for i, home in enumerate(self.homes):
                plan = runners[i].apply(simulate_days(home, home.routine, starts[i], 1, rngs[i]), rngs[i])
                seen = plan.finish(observe(home, plan.steps, rngs[i], presses=plan.presses))
                if self.faults:
                    seen = apply_faults(home, self.start_ms, end_ms, seen, self.faults).observations
                per_home.append(seen)
                self.truth.extend(plan.truth)
                starts[i] = plan.steps[-1].end_ms
            yield from heapq.merge(*per_home, key=lambda o: o.time_ms)

    def hub_events(self) -> list[HubEvent]:
        """Every hub's state changes (faults' outages), in time order."""
        return sorted((e for f in self.faulted.values() for e in f.hub_events), key=lambda e: e.time_ms)

    def battery_cap(self, home: str, device: str, time_ms: int) -> float | None:
        faulted = self.faulted.get(home)
        return faulted.battery_cap(device, time_ms) if faulted else None


def reported(observations: Iterable[Observation], radio: Radio,
             battery_cap: Callable[[str, str, int], float | None] | None = None) -> Iterator[Observation]:
    """Each observation with what else its hub's report says (battery, battery_low, light, link quality), as
    :func:`sensors_sim.publish.device_messages` publishes it from the same radio: what ``telecare sim export``
    writes, so that an export carries every report the gateway would see, not only the values."""
    for o in observations:
        battery, link = radio.report(o.device, o.kind)
        cap = battery_cap(o.home, o.device, o.time_ms) if battery_cap else None
        if cap is not None and battery is not None:
            battery = min(battery, cap)
        yield with_report(o, payload(o, battery, link))


def with_report(o: Observation, fields: Mapping[str, object]) -> Observation:
    """``o`` with the report fields of its zigbee2mqtt payload (its value stays: the payload was made from it)."""
    linkquality = number(fields.get("linkquality"))
    return Observation(o.time_ms, o.home, o.device, o.kind, o.value, o.room, o.role,
                       temperature=number(fields.get("temperature")) if o.kind != "climate" else None,
                       battery=number(fields.get("battery")), battery_low=flag(fields.get("battery_low")),
                       illuminance=lux(fields), linkquality=None if linkquality is None else round(linkquality))
