"""Many homes' observations, one simulated day at a time, merged into one time-ordered stream.

Each home has its own random generator (``[seed, home index]``), so a home's stream does not depend on how
many others are simulated beside it, and a run is the same for the same seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import numpy as np

from sensors_sim.events import Observation
from sensors_sim.incidents import GroundTruth, Incident, IncidentRunner
from sensors_sim.routine import simulate_days
from sensors_sim.scenario import Scenario, SimHome, default_home
from sensors_sim.sensors import observe

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


def observations(homes: Sequence[SimHome], start_ms: int, days: int, seed: int,
                 incidents: Sequence[Incident] = (), truth: list[GroundTruth] | None = None) -> Iterator[Observation]:
    """Every home's observations for ``days`` days from ``start_ms``, in time order, a day of all homes at a time.

    ``incidents`` change the homes they name; their ground truth is appended to ``truth`` as each starts."""
    rngs = [np.random.default_rng([seed, i]) for i in range(len(homes))]
    runners = [IncidentRunner(home, incidents, start_ms) for home in homes]
    starts = [start_ms] * len(homes)
    for _ in range(days):
        per_home = []
        for i, home in enumerate(homes):
            plan = runners[i].apply(simulate_days(home, home.routine, starts[i], 1, rngs[i]), rngs[i])
            per_home.append(plan.finish(observe(home, plan.steps, rngs[i], presses=plan.presses)))
            if truth is not None:
                truth.extend(plan.truth)
            starts[i] = plan.steps[-1].end_ms
        yield from heapq.merge(*per_home, key=lambda o: o.time_ms)
