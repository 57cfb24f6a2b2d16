"""Device health across the organisation's homes: hubs offline, homes that cannot be seen, silent sensors, low
batteries, devices zigbee2mqtt reports unavailable; and the devices that still need setting up.

The open device-health alerts are the source (the detectors judge silence against each device's own habits);
the device rows add what no alert covers yet (a hub marked offline, a low battery, an unavailable device) and the
current battery and last-seen figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from analytics.alerts import DEVICE_HEALTH
from analytics.detector import DetectorConfig
from analytics.watch.pendant import setting_up_needed, setting_up_urgency
from api.deps import SessionDep, Staff
from api.pagination import Page, PageDep
from api.schemas.common import HomeId
from api.schemas.homes import DeviceOut, DeviceProblemOut, Problem
from gateway.alerting.states import AlertState
from gateway.db.models import Alert, Device, Home, Resident

router = APIRouter(prefix="/devices", tags=["devices"])

LOW_BATTERY_PCT = DetectorConfig().low_battery_pct
_EPOCH = datetime.min.replace(tzinfo=UTC)


@router.get("/health", response_model=Page[DeviceProblemOut],
            summary="What needs fixing: hubs offline, homes not seen, silent sensors, low batteries")
def device_health(
    principal: Staff, session: SessionDep, page: PageDep,
    home_id: Annotated[HomeId | None, Query(description="one home")] = None,
    problem: Annotated[list[Problem] | None, Query(description="only these problems")] = None,
) -> Page[DeviceProblemOut]:
    homes_q = select(Home).where(Home.organisation_id == principal.organisation_id)
    if home_id is not None:
        homes_q = homes_q.where(Home.id == home_id)
    homes = {h.id: h for h in session.scalars(homes_q)}
    residents: dict[str, int] = {home: rid for home, rid in session.execute(
        select(Resident.home_id, Resident.id).where(Resident.home_id.in_(list(homes))))}
    devices = {(d.home_id, d.name): d for d in session.scalars(
        select(Device).where(Device.home_id.in_(list(homes))))}
    alerts = session.scalars(select(Alert).where(
        Alert.home_id.in_(list(homes)), Alert.state != AlertState.RESOLVED,
        Alert.kind.in_([str(k) for k in DEVICE_HEALTH]))).all()

    out: list[DeviceProblemOut] = []
    covered: set[tuple[str, str, str]] = set()  # (home, problem, device or "hub")
    for alert in alerts:
        device = devices.get((alert.home_id, alert.subject))
        covered.add((alert.home_id, alert.kind, alert.subject))
        out.append(DeviceProblemOut(
            home_id=alert.home_id, resident_id=residents.get(alert.home_id), problem=alert.kind,  # type: ignore[arg-type]
            device=None if alert.subject in ("", "hub") else alert.subject, since=alert.raised_at,
            message=alert.message, alert_id=alert.id, battery=device.battery if device else None,
            last_seen=device.last_seen if device else None, room=device.room if device else None,
            role=device.role if device else None))
    for home in homes.values():
        if home.hub_online is False and (home.id, "hub_offline", "hub") not in covered:
            out.append(DeviceProblemOut(home_id=home.id, resident_id=residents.get(home.id), problem="hub_offline",
                                        device=None, since=home.hub_changed_at, alert_id=None,
                                        message="The home hub says it is offline.", last_seen=home.last_seen))
    for (home_key, name), device in devices.items():
        if device.battery is not None and device.battery <= LOW_BATTERY_PCT \
                and (home_key, "low_battery", name) not in covered:
            out.append(_device_problem(device, residents.get(home_key), "low_battery",
                                       f"Battery at {device.battery:g} %."))
        if device.available is False:
            out.append(_device_problem(device, residents.get(home_key), "unavailable",
                                       "zigbee2mqtt reports the device unavailable.",
                                       since=device.availability_changed_at))
    if problem:
        out = [p for p in out if p.problem in problem]
    out.sort(key=lambda p: (p.since or _EPOCH, p.home_id, p.device or ""))
    return page.slice(out)


@router.get("/needs-setting-up", response_model=Page[DeviceOut],
            summary="Devices nobody has said what they are for, buttons not set up first")
def needs_setting_up(
    principal: Staff, session: SessionDep, page: PageDep,
    home_id: Annotated[HomeId | None, Query(description="one home")] = None,
) -> Page[DeviceOut]:
    """Devices the gateway discovered (or a description named) without a room or role, across the organisation's
    homes. A button without the role pendant comes first: each of its presses is raised as a possible pendant
    press, an emergency, until a coordinator gives it its role (``PATCH /homes/{home_id}/devices/{id}``)."""
    homes = select(Home.id).where(Home.organisation_id == principal.organisation_id)
    if home_id is not None:
        homes = homes.where(Home.id == home_id)
    # Undescribed devices have no role; a button may have the wrong one. Both are few, so the rule is applied here.
    candidates = session.scalars(select(Device).where(Device.home_id.in_(homes),
                                                      (Device.role.is_(None)) | (Device.kind == "button")))
    out = [d for d in candidates if setting_up_needed(d.kind, d.room, d.role) is not None]
    out.sort(key=lambda d: (setting_up_urgency(d.kind, d.role), d.home_id, d.name))
    return page.slice([DeviceOut.model_validate(d) for d in out])


def _device_problem(device: Device, resident_id: int | None, problem: Problem, message: str,
                    since: datetime | None = None) -> DeviceProblemOut:
    return DeviceProblemOut(home_id=device.home_id, resident_id=resident_id, problem=problem, device=device.name,
                            since=since or device.last_seen, message=message, alert_id=None,
                            battery=device.battery, last_seen=device.last_seen, room=device.room, role=device.role)
