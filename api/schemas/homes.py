"""Homes, their devices, device health, dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from analytics.devices import ROLES
from api.schemas.common import In, Name, Out, text
from api.schemas.people import TimeZone

Role = Literal[tuple(sorted(ROLES))]  # type: ignore[valid-type]
Room = text(64)


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


class DeviceUpdate(In):
    """Only the fields sent change; send ``null`` to clear one."""

    room: Room | None = None
    role: Role | None = Field(None, description=f"one of {', '.join(sorted(ROLES))}")


Problem = Literal["hub_offline", "cant_see", "sensor_silent", "low_battery", "unavailable"]


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
