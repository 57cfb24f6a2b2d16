"""The detectors the benchmark compares, a simulated carer, and the replays that find each cut's first alert.

Every detector is a *runner*: fed observations in time order (``add``), then run on past the end (``finish``),
and picklable, so that a copy taken at any moment continues exactly as the original would.

The fast cut evaluator replays a recording once. At each cut moment it copies the runner (pickle) and continues
the copy with only what the cut recording holds after that moment (the rows that are not activity, and in the
hourly variant the hourly reports) up to 24 h after the cut, then runs it on to the cut + 24 h at least. Every
detector decides in event time from what it has seen, so the copy raises, up to the cut + 24 h, exactly what a
replay of the cut recording from its start raises (``tests/bench`` checks it). ``exact=True`` replays each cut
from the start instead.
"""

from __future__ import annotations

import bisect
import inspect
import io
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from analytics.activity import ActivityTracker
from analytics.alerts import AlertKind, Severity
from analytics.replay import AlertRecord
from bench.detection_data import AS_RECORDED, DAY_MS, HOUR_MS, HOURLY, Hourly, Key, after_cut, cut, variant_rows
from bench.wilhelm_wahl import WilhelmWahl
from sensors_sim.events import Observation, Value


class AlertLike(Protocol):
    """What scoring reads of an alert: ``analytics.replay.AlertRecord`` and :class:`Alert` both are."""

    @property
    def home(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def raised_at_ms(self) -> int: ...


Alert = AlertRecord  # a baseline's alerts are shaped as the detectors' (what scoring reads)


class Runner(Protocol):
    def add(self, o: Observation) -> None: ...
    def finish(self, horizon_ms: int = DAY_MS) -> Sequence[AlertLike]: ...


# carer(home, kind, raised_at_ms) -> an outcome ("false_alarm", ...) or None, as analytics.replay.Replay takes it
Carer = Callable[[str, str, int], str | None]


class SimulatedCarer:
    """A carer who marks every alert raised before the resident's fall as a false alarm (every alert of a home
    without a fall), and gives no outcome for the rest. Picklable."""

    def __init__(self, fall_ms: Mapping[str, int] | None = None) -> None:
        self.fall_ms = dict(fall_ms or {})

    def __call__(self, home: str, kind: str, raised_at_ms: int) -> str | None:
        fall = self.fall_ms.get(home)
        return "false_alarm" if fall is None or raised_at_ms < fall else None


# ------------------------------------------------------------------------------------------------------------
# the fixed-threshold rule


class FixedThreshold:
    """An ``inactivity`` alert once a home has had no activity for ``hours``; activity clears it.

    Activity is what :class:`ActivityTracker` calls a change (motion, a pad or contact changing, a plug switching
    on, a button). As :class:`analytics.replay.Replay`: alerts raised in a home's first ``learn_days`` are not
    reported (the condition still holds, so it is not raised again after), and ``finish`` runs time on to the last
    observation + the horizon. The rule never learns."""

    def __init__(self, learn_days: float, hours: float) -> None:
        self.hours = hours
        self.limit = round(hours * HOUR_MS)
        self.learn_ms = round(learn_days * DAY_MS)
        self.trackers: dict[str, ActivityTracker] = {}
        self.learned_at: dict[str, int] = {}
        self.last_active: dict[str, int] = {}
        self.open: dict[str, int | None] = {}  # home -> index in alerts of its open alert (None: not reported)
        self.alerts: list[Alert] = []
        self.last_ms: int | None = None

    def add(self, o: Observation) -> None:
        self.last_ms = o.time_ms
        home = o.home
        if home not in self.trackers:
            self.trackers[home] = ActivityTracker()
            self.learned_at[home] = o.time_ms + self.learn_ms
        if home in self.last_active and home not in self.open and o.time_ms >= self.last_active[home] + self.limit:
            self._raise(home)
        if o.value is not None and self.trackers[home].update(o.device, o.kind, o.value) is not None:
            if home in self.open:
                self._clear(home, o.time_ms)
            self.last_active[home] = o.time_ms

    def finish(self, horizon_ms: int = DAY_MS) -> list[Alert]:
        if self.last_ms is not None:
            for home, at in self.last_active.items():
                if home not in self.open and at + self.limit <= self.last_ms + horizon_ms:
                    self._raise(home)
        return sorted(self.alerts, key=lambda a: a.raised_at_ms)

    def _raise(self, home: str) -> None:
        at = self.last_active[home] + self.limit
        self.open[home] = None
        if at >= self.learned_at[home]:
            self.open[home] = len(self.alerts)
            self.alerts.append(Alert(home, AlertKind.INACTIVITY.value, at, None,
                                     f"no activity for {self.hours:g} h", int(Severity.URGENT)))

    def _clear(self, home: str, at: int) -> None:
        i = self.open.pop(home)
        if i is not None:
            a = self.alerts[i]
            self.alerts[i] = Alert(a.home, a.kind, a.raised_at_ms, at, a.message, a.severity)


def fixed_threshold(observations: Iterable[Observation], tz: tzinfo, learn_days: float, *,
                    hours: float) -> list[Alert]:
    """:class:`FixedThreshold` over a whole stream (``tz`` is not needed: the rule never learns)."""
    runner = FixedThreshold(learn_days, hours)
    for o in observations:
        runner.add(o)
    return runner.finish()


# ------------------------------------------------------------------------------------------------------------
# the detectors compared


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    make: Callable[[tzinfo, float, Carer | None], Runner]  # (tz, learn_days, carer) -> a runner
    learns_from_carer: bool = False
    baseline: bool = True


def _fixed(hours: float) -> Callable[[tzinfo, float, Carer | None], Runner]:
    return lambda tz, learn_days, carer: FixedThreshold(learn_days, hours)


def _wilhelm_wahl(tz: tzinfo, learn_days: float, carer: Carer | None) -> Runner:
    return WilhelmWahl(tz, learn_days=learn_days)


WILHELM_WAHL = "W&W 2024"
TELECARE = "telecare"
TELECARE_FEEDBACK = "telecare+fb"


def detectors(*, feedback: bool = False, baseline_only: bool = False) -> tuple[list[DetectorSpec], list[str]]:
    """The detectors to compare and notes (the gateway's could not be loaded, feedback is not available yet)."""
    baselines = [DetectorSpec(WILHELM_WAHL, _wilhelm_wahl),
                 *(DetectorSpec(f"fixed {h} h", _fixed(h)) for h in (12, 4))]
    if baseline_only:
        return baselines, []
    try:
        from analytics.replay import Replay
    except ImportError as e:
        return baselines, [f"analytics.replay not importable ({e}): measuring the baselines only"]

    def telecare(tz: tzinfo, learn_days: float, carer: Carer | None) -> Runner:
        return Replay(tz, learn_days=learn_days)

    specs = [DetectorSpec(TELECARE, telecare, baseline=False), *baselines]
    notes = []
    if feedback:
        if "carer" in inspect.signature(Replay).parameters:
            def with_carer(tz: tzinfo, learn_days: float, carer: Carer | None) -> Runner:
                return Replay(tz, learn_days=learn_days, carer=carer)  # type: ignore[call-arg]

            specs.insert(1, DetectorSpec(TELECARE_FEEDBACK, with_carer, learns_from_carer=True, baseline=False))
        else:
            notes.append("analytics.replay.Replay takes no carer yet: --feedback measures nothing more")
    return specs, notes


# ------------------------------------------------------------------------------------------------------------
# replays


def run(spec: DetectorSpec, rows: Iterable[Observation], tz: tzinfo, learn_days: float,
        carer: Carer | None = None, horizon_ms: int = DAY_MS) -> list[AlertLike]:
    """A whole stream through a fresh runner."""
    runner = spec.make(tz, learn_days, carer if spec.learns_from_carer else None)
    for o in rows:
        runner.add(o)
    return list(runner.finish(horizon_ms))


@dataclass
class CutRuns:
    """One detector over one recording in one variant: the uncut run, and each cut's run."""

    whole: list[AlertLike]
    cuts: list[list[AlertLike]]  # per cut moment: its alerts, exact at least up to the cut + 24 h


def evaluate(spec: DetectorSpec, observations: Sequence[Observation], variant: str, moments: Sequence[int],
             tz: tzinfo, learn_days: float, *, exact: bool = False) -> CutRuns:
    """``observations`` (one home, as recorded) in ``variant``, whole and cut at each of ``moments`` (sorted).

    A cut's run goes on at least to the cut + 24 h, however early the cut recording's last row: the home's
    clock goes on after a fall even where the recording shows nothing."""
    hourly = None if variant == AS_RECORDED else Hourly.of(observations)
    if not exact:
        return _fast(spec, observations, hourly, moments, tz, learn_days)
    home = observations[0].home if observations else ""
    whole = run(spec, variant_rows(observations, variant, hourly), tz, learn_days, SimulatedCarer())
    times = [o.time_ms for o in observations]
    cuts = []
    for at in moments:
        rows = variant_rows(cut(observations, at, times), variant, hourly)
        horizon = max(DAY_MS, at + DAY_MS - rows[-1].time_ms) if rows else DAY_MS
        cuts.append(run(spec, rows, tz, learn_days, SimulatedCarer({home: at}), horizon))
    return CutRuns(whole, cuts)


def _fast(spec: DetectorSpec, observations: Sequence[Observation], hourly: Hourly | None, moments: Sequence[int],
          tz: tzinfo, learn_days: float) -> CutRuns:
    """One pass over the uncut recording, a copy of the runner continued at each cut."""
    home = observations[0].home if observations else ""
    carer = SimulatedCarer() if spec.learns_from_carer else None
    runner = spec.make(tz, learn_days, carer)
    stream = iter(variant_rows(observations, AS_RECORDED if hourly is None else HOURLY, hourly))
    pending: Observation | None = next(stream, None)
    times = [o.time_ms for o in observations]
    states: dict[Key, Value] = {}
    i = 0  # observations before it are in `states`
    last_fed: int | None = None
    out = []
    for at in moments:
        while pending is not None and pending.time_ms < at:
            runner.add(pending)
            last_fed = pending.time_ms
            pending = next(stream, None)
        while i < len(observations) and observations[i].time_ms < at:
            if observations[i].value is not None:
                states[(observations[i].home, observations[i].device)] = observations[i].value
            i += 1
        copy = _copy(runner, carer, SimulatedCarer({home: at}) if carer is not None else None)
        end = at + DAY_MS
        post = after_cut(observations[i:bisect.bisect_left(times, end)], dict(states))
        rows = post if hourly is None else hourly.merge(post, states, from_ms=at, until_ms=end)
        fed = last_fed
        for o in rows:
            copy.add(o)
            fed = o.time_ms
        out.append(list(copy.finish(max(DAY_MS, end - fed) if fed is not None else DAY_MS)))
    while pending is not None:
        runner.add(pending)
        pending = next(stream, None)
    return CutRuns(list(runner.finish(DAY_MS)), out)


def _copy(runner: Runner, carer: Any, replacement: Any) -> Runner:
    """A deep copy of ``runner``, with ``replacement`` wherever it held ``carer``."""
    if carer is None:
        return pickle.loads(pickle.dumps(runner, pickle.HIGHEST_PROTOCOL))

    class Out(pickle.Pickler):
        def persistent_id(self, obj: Any) -> str | None:
            return "carer" if obj is carer else None

    class In(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return replacement

    buffer = io.BytesIO()
    Out(buffer, pickle.HIGHEST_PROTOCOL).dump(runner)
    buffer.seek(0)
    return In(buffer).load()  # type: ignore[no-any-return]
