"""Alerts, their timeline and notifications; acknowledging and resolving."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from analytics.alerts import Outcome
from api.schemas.common import In, Note, Out

State = Literal["raised", "notified", "acknowledged", "resolved"]


class AlertOut(Out):
    id: int
    home_id: str
    resident_id: int | None
    kind: str
    subject: str = Field(description='"" for the resident; a device\'s name or "hub" for device health')
    severity: int
    severity_name: str
    state: State
    message: str
    details: dict[str, Any]
    raised_at: datetime = Field(description="when the threshold was crossed (event time)")
    updated_at: datetime
    repeat_count: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    escalation_step: int
    next_escalation_at: datetime | None
    outcome: Outcome | None = Field(description="what was found (null: not recorded): false_alarm (the resident "
                                                "was fine), fall, unwell, out, sensor_problem, other")
    outcome_note: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    outcome_learned_at: datetime | None = Field(
        description="when the detectors were given the outcome (null: not yet); they learn from false alarms only")


class TimelineEntry(Out):
    at: datetime
    what: str
    who: str | None
    detail: str


class NotificationOut(Out):
    id: int
    recipient_id: int
    recipient_name: str
    step: int
    purpose: str
    priority: int
    title: str
    state: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    receipt_state: str | None
    created_at: datetime


class AlertDetailOut(AlertOut):
    timeline: list[TimelineEntry]
    notifications: list[NotificationOut]


class AcknowledgeIn(In):
    note: Note | None = None


class ResolveIn(In):
    note: Note = Field(description="what was found and done")
    outcome: Outcome | None = Field(None, description="what was found, in the shared vocabulary (recommended: a "
                                                      "false_alarm teaches the detectors)")


class OutcomeIn(In):
    """What was found, on an alert already resolved (one that cleared by itself), or a correction."""

    outcome: Outcome
    note: Note | None = None
