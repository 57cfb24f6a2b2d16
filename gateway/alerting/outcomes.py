"""Outcomes: what the person who dealt with an alert found, and handing them to the detectors once.

A person records the outcome when resolving (``service.resolve(..., outcome=...)``) or afterwards, on an alert that
cleared by itself (``service.record_outcome``), and may correct it. The detector consumer asks for the outcomes it
has not learned from (:func:`pending_feedback`) and, in the same transaction as the checkpoint that holds what it
learned, marks them given (:func:`mark_fed`): each outcome reaches the detectors once. A correction to a different
outcome makes it pending again, saying what the detectors were told before, so they can take back what a false
alarm taught them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from analytics.alerts import Outcome
from gateway.alerting.states import AlertState
from gateway.db.models import Alert

__all__ = ["LABELS", "Feedback", "label", "mark_fed", "parse_outcome", "pending_feedback"]

LABELS: dict[Outcome, str] = {
    Outcome.FALSE_ALARM: "False alarm: the resident was fine",
    Outcome.FALL: "Found on the floor, or had fallen",
    Outcome.UNWELL: "Unwell",
    Outcome.OUT: "Was out",
    Outcome.SENSOR_PROBLEM: "A sensor problem",
    Outcome.OTHER: "Something else (see the note)",
}
PENDING_LIMIT = 1_000  # a batch for the detector consumer; the rest come next time


def label(outcome: Outcome | str) -> str:
    """The outcome in words for people (the dashboard, the messages to carers)."""
    try:
        return LABELS[Outcome(outcome)]
    except ValueError:
        return str(outcome)


def parse_outcome(text: str) -> Outcome:
    """``"false_alarm"`` → :attr:`Outcome.FALSE_ALARM`; anything else is a ValueError that lists the choices."""
    try:
        return Outcome(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown outcome {text!r}: it is one of {', '.join(o.value for o in Outcome)}") from None


@dataclass(frozen=True, slots=True)
class Feedback:
    """An outcome the detectors have not learned from yet, with what they need to find the moment it is about."""

    alert_id: int
    home: str
    kind: str
    subject: str
    raised_at: datetime  # event time: when the alert's threshold was crossed
    resolved_at: datetime | None
    outcome: Outcome
    previously_fed: Outcome | None  # a correction: the outcome the detectors were given before
    details: dict[str, Any] = field(default_factory=dict)  # the alert's figures, as the detector raised them

    @property
    def raised_at_ms(self) -> int:
        return round(self.raised_at.timestamp() * 1000)


def pending_feedback(session: Session, *, limit: int = PENDING_LIMIT) -> list[Feedback]:
    """Resolved alerts whose outcome the detectors have not been given, oldest first (at most ``limit``)."""
    alerts = session.scalars(
        select(Alert).where(Alert.outcome.is_not(None), Alert.outcome_learned_at.is_(None),
                            Alert.state == AlertState.RESOLVED)
        .order_by(Alert.id).limit(limit))
    out = []
    for a in alerts:
        assert a.outcome is not None
        out.append(Feedback(alert_id=a.id, home=a.home_id, kind=a.kind, subject=a.subject, raised_at=a.raised_at,
                            resolved_at=a.resolved_at, outcome=Outcome(a.outcome),
                            previously_fed=_outcome_or_none(a.outcome_learned), details=dict(a.details or {})))
    return out


def mark_fed(session: Session, fed: Iterable[Feedback | int], now: datetime) -> int:
    """Record that the detectors were given these outcomes (call in the transaction that checkpoints what they
    learned). A :class:`Feedback` is marked only if its outcome is still the one given: a correction made
    meanwhile stays pending. A bare id marks whatever outcome the alert has. Returns the alerts marked."""
    by_outcome: dict[Outcome | None, list[int]] = {}
    for item in fed:
        if isinstance(item, Feedback):
            by_outcome.setdefault(item.outcome, []).append(item.alert_id)
        else:
            by_outcome.setdefault(None, []).append(item)
    marked = 0
    for outcome, ids in by_outcome.items():
        stmt = (update(Alert).where(Alert.id.in_(ids), Alert.outcome.is_not(None), Alert.outcome_learned_at.is_(None))
                .values(outcome_learned_at=now, outcome_learned=Alert.outcome))
        if outcome is not None:
            stmt = stmt.where(Alert.outcome == outcome.value)
        # The default synchronisation updates alerts already loaded in this session too.
        marked += session.execute(stmt).rowcount or 0  # type: ignore[attr-defined]
    return marked


def _outcome_or_none(value: str | None) -> Outcome | None:
    try:
        return Outcome(value) if value is not None else None
    except ValueError:  # a value from a newer vocabulary: the detectors cannot use it
        return None
