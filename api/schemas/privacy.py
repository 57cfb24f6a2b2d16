"""Subject access export, erasure and the organisation's retention settings (docs/api.md, "Privacy")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from api.schemas.alerts import AlertDetailOut
from api.schemas.audit import AuditOut
from api.schemas.common import In, Name, Out
from api.schemas.people import AbsenceOut, HomeBrief

MAX_RETENTION_DAYS = 36_525  # 100 years
MIN_RETENTION_DAYS = 1


def _retention_days(value: int) -> int:
    if not MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS:
        raise ValueError(f"a retention period is at least {MIN_RETENTION_DAYS} day and at most 100 years "
                         f"({MAX_RETENTION_DAYS:,} days); got {value:,}")
    return value


RetentionDays = Annotated[int, AfterValidator(_retention_days)]


class RetentionOut(Out):
    care_record_retention_days: int = Field(
        description="alerts (with their notifications and timelines) and readings are kept this long after care "
                    "ended (the home released, or the resident erased); default 2922 (8 years)")
    audit_retention_days: int = Field(description="audit entries are kept this long; default 2922 (8 years)")
    dead_letter_retention_days: int | None = Field(
        description="dead letters of the organisation's homes are kept this long; null: the gateway's setting")
    dead_letter_default_days: float = Field(
        description="the gateway's setting (TELECARE_DEAD_LETTER_MAX_AGE_DAYS), which applies when it is shorter")


class RetentionUpdate(In):
    """Only the fields sent change; ``dead_letter_retention_days: null`` goes back to the gateway's setting."""

    care_record_retention_days: RetentionDays | None = Field(None, description="1 to 36,525 days")
    audit_retention_days: RetentionDays | None = Field(None, description="1 to 36,525 days")
    dead_letter_retention_days: RetentionDays | None = Field(
        None, description="1 to 36,525 days, or null for the gateway's setting")


class ErasureIn(In):
    confirm: Name = Field(
        description="the resident's name exactly as stored (GET /residents/{id}): erasure cannot be undone")


class ErasureOut(Out):
    resident_id: int
    erased_at: datetime
    alerts: int = Field(description="alerts deleted, with their notifications and timelines")
    absences: int
    audit_entries_scrubbed: int = Field(
        description="audit entries about the resident kept, with the resident reference and free text removed")
    readings_from: datetime = Field(description="readings and daily summaries of the home deleted from here ...")
    readings_to: datetime = Field(description="... to here (the care period)")


class ChainStepExport(Out):
    position: int
    recipient_name: str
    wait_min: int


class ResidentExport(Out):
    id: int
    name: str
    notes: str | None
    created_at: datetime
    home: HomeBrief


class DailySummaryExport(Out):
    day: date
    values: dict[str, float]


class CarePeriod(Out):
    start: datetime = Field(description="the later of the resident's creation and the organisation's claim")
    end: datetime


class SubjectAccessExport(Out):
    """Everything the organisation holds about one resident, for a subject access request."""

    exported_at: datetime
    organisation_id: int
    resident: ResidentExport
    care_period: CarePeriod
    absences: list[AbsenceOut]
    escalation_chain: list[ChainStepExport]
    alerts: list[AlertDetailOut] = Field(description="the resident's alerts, with their timeline and notifications")
    daily_summaries: list[DailySummaryExport]
    readings: str = Field(description="where the readings of the care period are: JSON Lines, one point a line")
    audit: list[AuditOut] = Field(description="who viewed or changed the resident's data, and when")
