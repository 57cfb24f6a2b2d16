"""Homes, their devices, device health, dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field, computed_field

from analytics.devices import ROLES
from analytics.watch.pendant import setting_up_needed
from api.schemas.common import ClaimCode, HomeId, In, Name, Out
from api.schemas.people import TimeZone

if TYPE_CHECKING:
    Role = str  # the checker cannot read a Literal built from a set; pydantic (below) checks the value
else:
    Role = Literal[tuple(sorted(ROLES))]
Room = HomeId  # a room's name has a home id's bounds

_NEEDS_SETTING_UP = "a coordinator still has to say what it is for (its room or role); setting_up says why"
_SETTING_UP = ("why it needs setting up, or null. A button without the role pendant is the most urgent: each press "
               "is raised as a possible pendant press until it is set up")


class HomeOut(Out):
    id: str
    name: str | None
    timezone: str
    claimed: bool = Field(description="false for a home discovered over MQTT that nobody has claimed yet")
    first_seen: datetime | None
    last_seen: datetime | None
    hub_online: bool | None
    hub_changed_at: datetime | None
    resident_id: int | None = None
    devices: int = 0
    needs_setting_up: int = Field(0, description="devices nobody has said what they are for (a room or role): "
                                  "GET /homes/{id}/devices?needs_setting_up=true lists them")
    buttons_not_set_up: int = Field(0, description="of those, buttons without the role pendant: the most urgent, "
                                    "as each press is raised as a possible pendant press (an emergency)")


class ClaimIn(In):
    claim_code: ClaimCode | None = Field(
        None, description="the home's claim code: on its hub's label or description, or issued by the operator "
                          "(telecare homes claim-code)")


class HomeUpdate(In):
    name: Name | None = None
    timezone: TimeZone | None = None


class DeviceOut(Out):
    id: int
    home_id: str
    name: str
    ieee_address: str | None
    model: str | None
    vendor: str | None
    description: str | None
    power_source: str | None
    kind: str | None
    room: str | None
    role: str | None
    battery: float | None
    linkquality: int | None
    first_seen: datetime | None
    last_seen: datetime | None
    available: bool | None

    # mypy cannot see through a decorator over @property; pydantic's documentation gives this ignore for it.
    @computed_field(description=_NEEDS_SETTING_UP)  # type: ignore[prop-decorator]
    @property
    def needs_setting_up(self) -> bool:
        return self.setting_up is not None

    @computed_field(description=_SETTING_UP)  # type: ignore[prop-decorator]
    @property
    def setting_up(self) -> str | None:
        return setting_up_needed(self.kind, self.room, self.role)


class DeviceUpdate(In):
    """Only the fields sent change; send ``null`` to clear one."""

    room: Room | None = None
    role: Role | None = Field(None, description=f"one of {', '.join(sorted(ROLES))}")


Problem = Literal["hub_offline", "cant_see", "sensor_silent", "low_battery", "hub_misbehaving", "unavailable"]


class DeviceProblemOut(Out):
    home_id: str
    resident_id: int | None
    problem: Problem
    device: str | None = Field(description="the device's friendly name; null for the hub")
    since: datetime | None
    message: str
    alert_id: int | None = Field(description="the open alert about it, if one was raised")
    battery: float | None = None
    last_seen: datetime | None = None
    room: str | None = None
    role: str | None = None


class DeadLetterOut(Out):
    id: int
    received_at: datetime
    home_id: str | None
    device: str | None
    topic: str
    reason: str
    detail: str
    payload: str
