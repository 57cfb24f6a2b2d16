"""bench/detection_eval.py: the fixed rule, the simulated carer, and the fast cut evaluator (a copy of the
detector at each cut) giving the same first alerts as replaying each cut from the start."""

from __future__ import annotations

from datetime import UTC, tzinfo

import numpy as np
import pytest

from bench import detection_eval as ev
from bench.detection_data import DAY_MS, HOUR_MS, VARIANTS, cut_moments
from bench.detection_eval import Carer, DetectorSpec, FixedThreshold, Runner, SimulatedCarer, fixed_threshold
from bench.detection_scores import first_detection
from sensors_sim.events import Observation

T0 = 1_764_000_000_000  # 2025-11-24 16:00 UTC


def motion(t: int, value: bool = True, home: str = "h", device: str = "pir") -> Observation:
    return Observation(t, home, device, "motion", value, "kitchen", "room")


def test_the_fixed_rule_alerts_after_n_hours_without_a_change() -> None:
    obs = [
        motion(T0), motion(T0 + 60_000, False),  # the PIR's timeout: not activity
        motion(T0 + 2 * HOUR_MS, False),  # a re-published state: not activity
        motion(T0 + 5 * HOUR_MS),  # 5 h after: the 4 h alert is cleared
        Observation(T0 + 6 * HOUR_MS, "h", "kitchen_climate", "climate", 19.0, "kitchen"),
    ]
    alerts = fixed_threshold(obs, UTC, 0.0, hours=4)
    assert [(a.kind, a.raised_at_ms, a.cleared_at_ms) for a in alerts] == [
        ("inactivity", T0 + 4 * HOUR_MS, T0 + 5 * HOUR_MS),
        ("inactivity", T0 + 9 * HOUR_MS, None),  # the end: run on to the last observation + 24 h
    ]
    assert fixed_threshold(obs, UTC, 0.0, hours=31) == []  # past the horizon
    # Learning: the first alert is not reported, and not raised again while its condition lasts.
    assert [a.raised_at_ms for a in fixed_threshold(obs, UTC, 0.3, hours=4)] == [T0 + 9 * HOUR_MS]
    two = sorted([*obs, motion(T0 + HOUR_MS, home="g")], key=lambda o: o.time_ms)
    assert {a.home for a in fixed_threshold(two, UTC, 0.0, hours=4)} == {"h", "g"}


def test_the_fixed_rule_counts_contacts_pads_and_plugs_but_learns_a_contact_first() -> None:
    obs = [
        Observation(T0, "h", "door", "contact", True),  # first state: only learned, else an alert at T0 + 1 h
        Observation(T0 + HOUR_MS, "h", "pad", "presence", True),
        Observation(T0 + 3 * HOUR_MS // 2, "h", "door", "contact", False),
        Observation(T0 + 3 * HOUR_MS, "h", "kettle", "plug", 1500.0),
        Observation(T0 + 3 * HOUR_MS + 1, "h", "kettle", "plug", None, battery=50.0),  # a report without a value
    ]
    assert [a.raised_at_ms for a in fixed_threshold(obs, UTC, 0.0, hours=1)] == [T0 + 5 * HOUR_MS // 2,
                                                                                T0 + 4 * HOUR_MS]


def test_the_simulated_carer_calls_every_alert_before_the_fall_a_false_alarm() -> None:
    carer = SimulatedCarer({"h": T0})
    assert carer("h", "inactivity", T0 - 1) == "false_alarm"
    assert carer("h", "inactivity", T0) is None
    assert carer("g", "not_up", T0 + DAY_MS) == "false_alarm"  # no fall in that home
    assert SimulatedCarer()("h", "inactivity", T0) == "false_alarm"


class Holder:
    def __init__(self, carer: Carer) -> None:
        self.carers = [carer, carer]

    def add(self, o: Observation) -> None: ...

    def finish(self, horizon_ms: int = DAY_MS) -> list[ev.Alert]:
        return []


def test_a_copy_holds_the_replacement_carer_wherever_the_original_held_its_carer() -> None:
    carer = SimulatedCarer()
    copy = ev._copy(Holder(carer), carer, SimulatedCarer({"h": T0}))
    assert isinstance(copy, Holder) and copy.carers[0] is copy.carers[1]
    assert copy.carers[0].fall_ms == {"h": T0} and carer.fall_ms == {}
    assert ev._copy(Holder(carer), None, None).carers[0].fall_ms == {}


class LearningRule(FixedThreshold):
    """A fixed rule that a carer teaches: each false alarm lengthens its limit by an hour."""

    def __init__(self, learn_days: float, carer: Carer | None) -> None:
        super().__init__(learn_days, 2.0)
        self.carer = carer

    def _raise(self, home: str) -> None:
        at = self.last_active[home] + self.limit
        super()._raise(home)
        if self.carer is not None and at >= self.learned_at[home] and self.carer(home, "inactivity", at):
            self.limit += HOUR_MS


def learning(tz: tzinfo, learn_days: float, carer: Carer | None) -> Runner:
    return LearningRule(learn_days, carer)


def recording(days: int = 9, seed: int = 2) -> list[Observation]:
    """A week or so of a home: two PIRs (with their timeouts), a door, a kettle; busy days at random, quiet
    nights with a bathroom visit, an afternoon out now and then."""
    rng = np.random.default_rng(seed)
    rows: list[Observation] = [Observation(T0, "h", "door", "contact", True, "hall", "front_door")]
    for day in range(days):
        start = T0 - 16 * HOUR_MS + day * DAY_MS  # local (UTC) midnight
        t = start + int(rng.uniform(6.5, 8.5) * HOUR_MS)
        out_at = start + int(rng.uniform(13, 16) * HOUR_MS) if rng.uniform() < 0.4 else None
        while t < start + 23 * HOUR_MS:
            if out_at is not None and t >= out_at:
                rows += [Observation(t, "h", "door", "contact", False, "hall", "front_door"),
                         Observation(t + 20_000, "h", "door", "contact", True, "hall", "front_door")]
                t, out_at = t + int(rng.uniform(1, 4) * HOUR_MS), None
                continue
            device = "pir" if rng.uniform() < 0.6 else "hall"
            rows += [motion(t, device=device), motion(t + 90_000, False, device=device)]
            if rng.uniform() < 0.05:
                rows += [Observation(t + 30_000, "h", "kettle", "plug", 1800.0, "kitchen", "kettle"),
                         Observation(t + 200_000, "h", "kettle", "plug", 0.0, "kitchen", "kettle")]
            t += int(rng.exponential(20 * 60_000)) + 120_000
        night = start + DAY_MS + int(rng.uniform(2, 4) * HOUR_MS)
        rows += [motion(night, device="hall"), motion(night + 90_000, False, device="hall")]
    rows = [o for o in rows if o.time_ms >= T0]
    return sorted(rows, key=lambda o: o.time_ms)


def specs() -> list[DetectorSpec]:
    found, _ = ev.detectors()
    return [*found, DetectorSpec("learning 2 h", learning, learns_from_carer=True)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_fast_evaluator_finds_the_same_first_alerts_as_replaying_each_cut_from_the_start(variant: str) -> None:
    obs = recording()
    learn = 4.0
    moments = cut_moments(obs[0].time_ms, obs[-1].time_ms, learn, 8, np.random.default_rng(7))
    detected = 0
    for spec in specs():
        fast = ev.evaluate(spec, obs, variant, moments, UTC, learn)
        exact = ev.evaluate(spec, obs, variant, moments, UTC, learn, exact=True)
        firsts = [[getattr(first_detection(alerts, "h", at), "raised_at_ms", None)
                   for alerts, at in zip(runs.cuts, moments, strict=True)] for runs in (fast, exact)]
        assert firsts[0] == firsts[1], spec.name
        assert [(a.kind, a.raised_at_ms) for a in fast.whole] == [(a.kind, a.raised_at_ms) for a in exact.whole]
        detected += sum(t is not None for t in firsts[0])
    assert detected >= len(moments)  # the comparison is over alerts, not over nothing


def test_the_learning_rule_learns_from_the_carer_so_the_cuts_depend_on_who_the_carer_is() -> None:
    obs = recording()
    moments = cut_moments(obs[0].time_ms, obs[-1].time_ms, 4.0, 8, np.random.default_rng(7))
    taught = ev.evaluate(DetectorSpec("taught", learning, learns_from_carer=True), obs, VARIANTS[0], moments, UTC,
                         4.0)
    untaught = ev.evaluate(DetectorSpec("untaught", learning), obs, VARIANTS[0], moments, UTC, 4.0)
    assert [a.raised_at_ms for a in taught.whole] != [a.raised_at_ms for a in untaught.whole]


@pytest.mark.parametrize("exact", [False, True])
def test_a_cut_is_watched_for_24_h_even_when_the_recording_had_gone_quiet_long_before_it(exact: bool) -> None:
    door = [Observation(T0 + k * HOUR_MS, "h", "door", "contact", k % 2 == 0, "hall") for k in range(40)]
    door.append(Observation(T0 + 80 * HOUR_MS, "h", "door", "contact", True, "hall"))  # after a cut: activity
    at = door[39].time_ms + 10 * HOUR_MS  # in the 41 h without a row, 10 h after the last
    runs = ev.evaluate(DetectorSpec("fixed 30 h", ev._fixed(30)), door, VARIANTS[0], [at], UTC, 0.0, exact=exact)
    # The rule alerts 30 h after the last activity: 20 h after the fall, though 30 h after the last row.
    hit = first_detection(runs.cuts[0], "h", at)
    assert hit is not None and hit.raised_at_ms == at + 20 * HOUR_MS
