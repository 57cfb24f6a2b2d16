"""Residents, their chains and absences; recipients (the carers who are alerted)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from api.caseload import MAX_SEARCH_LEN
from api.pagination import Page
from api.schemas.common import DbId, HomeId, In, Name, Notes, Out, UtcDatetime, no_control, printable
from gateway.alerting.people import MAX_WAIT_MIN
from gateway.timezones import zone_name

PushoverKey = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9]{30}$"),
                        AfterValidator(no_control)]
PushoverDevice = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_-]{1,25}$")]


TimeZone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
                     AfterValidator(no_control), AfterValidator(zone_name)]


class HomeBrief(Out):
    id: str
    name: str | None
    timezone: str


class ChainStepOut(Out):
    position: int
    recipient_id: int
    recipient_name: str
    wait_min: int


class ResidentOut(Out):
    id: int
    name: str
    notes: str | None
    home: HomeBrief
    chain: list[ChainStepOut]
    created_at: datetime


# A caseload search: one line of text, its bounds those of api.caseload (empty after stripping: no search).
CaseloadSearch = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SEARCH_LEN),
                           AfterValidator(printable)]


class ResidentListItem(ResidentOut):
    """A resident as the caseload shows them (``api.caseload``; definitions in docs/api.md "The caseload")."""

    alert_state: Literal["urgent", "warning", "none"] = Field(
        description="urgent: an open alert is urgent or an emergency; warning: alerts are open, none urgent; "
                    "none: no open alert")
    severity: int | None = Field(description="the most severe open alert's (null: none open)")
    open_alerts: int
    oldest_open_at: datetime | None = Field(description="when the longest-open alert was raised")
    cant_see: bool = Field(description="an open hub_offline or cant_see alert, or the hub reported offline")
    last_heard: datetime | None = Field(description="when the home was last heard from (null: never)")
    devices_not_set_up: int = Field(description="devices with neither room nor role, and buttons not set up")
    buttons_not_set_up: int = Field(description="buttons not given the role pendant (or another that does not "
                                                "call for help): a press may be a call for help")


class CaseloadSummaryOut(Out):
    """Counts over your whole caseload, whatever the filters: what each filter would find."""

    residents: int
    urgent: int
    warning: int
    open_alerts: int
    cant_see: int
    needs_setting_up: int


class ResidentPage(Page[ResidentListItem]):
    summary: CaseloadSummaryOut


class ResidentIn(In):
    home_id: HomeId = Field(description="a home of your organisation without a resident (claim it first)")
    name: Name
    notes: Notes | None = None
    timezone: TimeZone | None = Field(None, description="the home's time zone, if not already right")


class ResidentUpdate(In):
    name: Name | None = None
    notes: Notes | None = None
    timezone: TimeZone | None = None


class ChainStepIn(In):
    recipient_id: DbId
    wait_min: int = Field(ge=1, le=MAX_WAIT_MIN, description="minutes to acknowledge before the next step")


class ChainIn(In):
    steps: list[ChainStepIn] = Field(min_length=1, max_length=20)


class AbsenceIn(In):
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = Field(None, description="null: until someone ends it")
    reason: Name

    @model_validator(mode="after")
    def _order(self) -> AbsenceIn:
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AbsenceEnd(In):
    at: UtcDatetime | None = Field(None, description="when it ended; default now")


class AbsenceOut(Out):
    id: int
    resident_id: int
    starts_at: datetime
    ends_at: datetime | None
    reason: str
    created_at: datetime


class RecipientIn(In):
    name: Name
    pushover_user_key: PushoverKey = Field(description="30 letters and digits, from the Pushover app")
    pushover_device: PushoverDevice | None = Field(None, description="one device of theirs only (optional)")


class RecipientUpdate(In):
    name: Name | None = None
    pushover_user_key: PushoverKey | None = None
    pushover_device: PushoverDevice | None = None


class RecipientOut(Out):
    id: int
    name: str
    pushover_user_key: str
    pushover_device: str | None
    created_at: datetime
    residents: list[int] = Field(default_factory=list, description="residents whose chain includes them")
