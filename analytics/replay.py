"""Recorded observations through the gateway's detectors, in event time: what ``telecare analyse`` runs.

No MQTT, no database, no clock: the detectors are the same objects the gateway feeds, and time is the
observations' own. Feeding a recording whole or in chunks gives the same alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol

from analytics.alerts import DEVICE_HEALTH, Action, AlertEvent
from analytics.detector import DetectorConfig, HomeDetector
from analytics.localtime import DAY_MS, HOUR_MS
from analytics.reading import observation_fields, observe_reading


class ObservationLike(Protocol):
    """One neutral-CSV row (``sensors_sim.events.Observation`` is one): a device's report, with its activity value
    (None: the report has none) and what else it said (None: not reported)."""

    @property
    def time_ms(self) -> int: ...
    @property
    def home(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> bool | float | str | None: ...
    @property
    def room(self) -> str | None: ...
    @property
    def role(self) -> str | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def battery(self) -> float | None: ...
    @property
    def battery_low(self) -> bool | None: ...
    @property
    def illuminance(self) -> float | None: ...
    @property
    def linkquality(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class AlertRecord:
    home: str
    kind: str
    raised_at_ms: int
    cleared_at_ms: int | None
    message: str
    severity: int
    subject: str = ""


def feed(detector: HomeDetector, o: ObservationLike) -> list[AlertEvent]:
    """One row into a detector, as the gateway feeds the same report: its zigbee2mqtt fields through
    :func:`analytics.reading.observe_reading`."""
    fields = observation_fields(o.kind, o.value, temperature=o.temperature, battery=o.battery,
                                battery_low=o.battery_low, illuminance=o.illuminance, linkquality=o.linkquality)
    return observe_reading(detector, o.time_ms, o.device, o.kind, fields, room=o.room, role=o.role)


# A carer in a replay: (home, kind, raised_at_ms) -> what they found ("false_alarm", ...), or None to say nothing.
Carer = Callable[[str, str, int], str | None]


class Replay:
    """Alerts from a stream of observations; several homes may share it.

    With a ``carer``, each person-safety alert is shown to it when raised, and what it says it found is given to
    the home's detector as the alert clears, as a carer's outcome reaches the gateway's detectors when they
    resolve it: what feedback teaches the detectors can be measured offline (``bench/detection.py --feedback``).
    """

    def __init__(self, tz: tzinfo, *, learn_days: float = 14.0, config: DetectorConfig | None = None,
                 carer: Carer | None = None) -> None:
        self.tz = tz
        self.learn_ms = round(learn_days * DAY_MS)
        self.config = config or DetectorConfig()
        self.carer = carer
        self.detectors: dict[str, HomeDetector] = {}
        self._verdicts: dict[tuple[str, str, str], str] = {}  # open alert -> what the carer found
        self._open: dict[tuple[str, str, str], AlertEvent] = {}
        self._done: list[AlertRecord] = []
        self.last_ms: int | None = None

    def add(self, o: ObservationLike) -> None:
        detector = self.detectors.get(o.home)
        if detector is None:
            detector = self.detectors[o.home] = HomeDetector(o.home, self.tz, self.config,
                                                              quiet_until_ms=o.time_ms + self.learn_ms)
        self._take(feed(detector, o))
        detector.summaries.clear()  # days' figures are for the API; an analysis wants the alerts
        self.last_ms = o.time_ms if self.last_ms is None else max(self.last_ms, o.time_ms)

    def finish(self, horizon_ms: int = 24 * HOUR_MS) -> list[AlertRecord]:
        """Advance every home to the end of the stream plus ``horizon_ms`` (a fall at the end is still seen);
        returns every alert, in the order raised; those still open have no ``cleared_at_ms``."""
        if self.last_ms is not None:
            end = self.last_ms
            for detector in self.detectors.values():
                # The end of a recording is not a silence: no device-health alerts past it.
                self._take([e for e in detector.advance(end + horizon_ms)
                            if not (e.kind in DEVICE_HEALTH and e.at_ms > end)])
        records = self._done + [self._record(e, None) for e in self._open.values()]
        self._open.clear()
        self._done = []
        return sorted(records, key=lambda r: (r.raised_at_ms, r.home, r.kind))

    def _take(self, events: list[AlertEvent]) -> None:
        for e in events:
            key = (e.home, str(e.kind), e.subject)
            if e.action is Action.RAISE:
                if key not in self._open and self.carer is not None and e.kind not in DEVICE_HEALTH:
                    verdict = self.carer(e.home, str(e.kind), e.at_ms)
                    if verdict is not None:
                        self._verdicts[key] = verdict
                self._open.setdefault(key, e)
            elif e.action is Action.CLEAR:
                raised = self._open.pop(key, None)
                verdict = self._verdicts.pop(key, None)
                if raised is not None and verdict is not None:
                    self.detectors[e.home].learn_outcome(raised.kind, verdict, raised.at_ms, raised.details)
                if raised is not None and not e.details.get("quiet"):
                    self._done.append(self._record(raised, e.at_ms))
            else:
                self._done.append(self._record(e, e.at_ms))

    @staticmethod
    def _record(e: AlertEvent, cleared_at_ms: int | None) -> AlertRecord:
        return AlertRecord(e.home, str(e.kind), e.at_ms, cleared_at_ms, e.message, int(e.severity), e.subject)


def replay(observations: Iterable[ObservationLike], tz: tzinfo, *, learn_days: float = 14.0,
           config: DetectorConfig | None = None, horizon_ms: int = 24 * HOUR_MS,
           carer: Carer | None = None) -> Iterator[AlertRecord]:
    """Time-ordered observations through the detectors; alerts arising in each home's first ``learn_days`` are
    learned from, not raised."""
    run = Replay(tz, learn_days=learn_days, config=config, carer=carer)
    for o in observations:
        run.add(o)
    yield from run.finish(horizon_ms)
