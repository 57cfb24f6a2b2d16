"""Residents, their chains and absences; recipients (the carers who are alerted)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from api.schemas.common import DbId, HomeId, In, Name, Notes, Out, UtcDatetime, no_control
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
