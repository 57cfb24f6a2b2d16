"""Homes and their devices. Homes discovered over MQTT are unassigned until claimed, with the home's claim code
(or the operator's assignment, ``telecare homes claim``); devices get their room and role (front_door, fridge,
bed ...) here, as ``telecare homes import`` gives them. Claims and releases open and close the organisation's
claim period of the home (:mod:`gateway.claims`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import AfterValidator
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.watch.pendant import setting_up_needed, setting_up_urgency, unconfirmed_button
from api.audit import CLAIM, RELEASE, UPDATE, audit
from api.deps import Clock, PathId, Principal, SessionDep, Staff
from api.errors import ApiError, Conflict, NotFound
from api.limits import client_address
from api.pagination import Page, PageDep, paginate
from api.schemas.common import no_control
from api.schemas.homes import ClaimIn, DeviceOut, DeviceUpdate, HomeOut, HomeUpdate
from api.throttle import LoginThrottle, TooManyLogins
from gateway.claims import claim_code_matches, claim_home, release_home
from gateway.db.models import Device, Home, Resident

router = APIRouter(prefix="/homes", tags=["homes"])

HomeIdPath = Annotated[str, Path(min_length=1, max_length=64, description="the home's id in its MQTT topics"),
                       AfterValidator(no_control)]


def _out(session: Session, home: Home) -> HomeOut:
    resident_id = session.scalar(select(Resident.id).where(Resident.home_id == home.id))
    # A home's devices are few (the per-home quota caps them): what needs setting up is judged here, by the same
    # rule as the detectors', rather than restated in SQL.
    devices = session.execute(select(Device.kind, Device.room, Device.role).where(Device.home_id == home.id)).all()
    unset = [(kind, role) for kind, room, role in devices if setting_up_needed(kind, room, role) is not None]
    return HomeOut(id=home.id, name=home.name, timezone=home.timezone, claimed=home.organisation_id is not None,
                   first_seen=home.first_seen, last_seen=home.last_seen, hub_online=home.hub_online,
                   hub_changed_at=home.hub_changed_at, resident_id=resident_id, devices=len(devices),
                   needs_setting_up=len(unset),
                   buttons_not_set_up=sum(1 for kind, role in unset if unconfirmed_button(kind, role)))


def home_for(principal: Principal, session: Session, home_id: str) -> Home:
    home = session.get(Home, home_id)
    if home is None or home.organisation_id != principal.organisation_id:
        raise NotFound(f"no home {home_id!r} in your organisation (claim it with its claim code: "
                       "POST /homes/{id}/claim)")
    return home


@router.get("", response_model=Page[HomeOut], summary="Your organisation's homes")
def list_homes(principal: Staff, session: SessionDep, page: PageDep) -> Page[HomeOut]:
    stmt = select(Home).where(Home.organisation_id == principal.organisation_id).order_by(Home.id)
    return paginate(session, stmt, page, lambda home: _out(session, home))


@router.get("/unassigned", summary="Gone: claim a home with its claim code", deprecated=True,
            responses={410: {"description": "homes to claim are no longer listed"}})
def list_unassigned(principal: Staff) -> None:
    # Listing every organisation's newly installed homes told anyone where the hubs were, and let them claim
    # one; a claim now needs the code that only the installer and the home's organisation hold.
    raise ApiError("homes to claim are no longer listed: claim a home with its claim code (POST /homes/{id}/claim "
                   "with {\"claim_code\": \"...\"}), from the hub's label or the installer, or ask the operator to "
                   "assign it (telecare homes claim)", status=410, code="gone")


def _claim_throttle(request: Request) -> LoginThrottle:
    """Wrong claim codes back off as wrong passwords do, per client address and organisation (in the process:
    a code is too long to guess anyway; this keeps a script from trying)."""
    throttle: LoginThrottle | None = getattr(request.app.state, "claim_throttle", None)
    if throttle is None:
        throttle = request.app.state.claim_throttle = LoginThrottle(max_entries=10_000)
    return throttle


@router.post("/{home_id}/claim", response_model=HomeOut, summary="Claim an unassigned home with its claim code")
def claim(home_id: HomeIdPath, request: Request, principal: Staff, session: SessionDep, at: Clock,
          body: ClaimIn | None = None) -> HomeOut:
    # Lock the row: two organisations claiming at once must not both win.
    home = session.scalar(select(Home).where(Home.id == home_id).with_for_update())
    if home is not None and home.organisation_id == principal.organisation_id:
        return _out(session, home)  # claiming again changes nothing
    throttle, address = _claim_throttle(request), client_address(request)
    account = f"claims of organisation {principal.organisation_id}"
    try:
        throttle.check(address, account, at)
    except TooManyLogins as e:
        raise TooManyLogins("too many wrong claim codes: try again later", headers=e.headers) from None
    code = body.claim_code if body is not None else None
    # One answer for an unknown home, a claimed one and a wrong or missing code: no oracle for which homes exist.
    # The 404 is recorded in the audit trail as a denied attempt (folded per minute).
    if home is None or home.organisation_id is not None or not claim_code_matches(home, code):
        throttle.failed(address, account, at)
        raise NotFound(f"no unassigned home {home_id!r} with that claim code: check the code on the hub's label "
                       "(or ask the operator: telecare homes claim-code)")
    throttle.succeeded(address, account, at)
    claim_home(session, home, principal.organisation_id, at)
    audit(session, principal, CLAIM, "home", None, f"home {home.id!r} ({home.name or 'no name'}) with its claim "
          "code", at=at)
    return _out(session, home)


@router.post("/{home_id}/release", response_model=HomeOut, summary="Give a home back (it must have no resident)")
def release(home_id: HomeIdPath, principal: Staff, session: SessionDep, at: Clock) -> HomeOut:
    home = home_for(principal, session, home_id)
    if session.scalar(select(Resident.id).where(Resident.home_id == home.id)) is not None:
        raise Conflict(f"home {home_id!r} has a resident: remove the resident first")
    release_home(session, home, at)
    audit(session, principal, RELEASE, "home", None, f"home {home.id!r} ({home.name or 'no name'})", at=at)
    return _out(session, home)


@router.get("/{home_id}", response_model=HomeOut, summary="One home")
def get_home(home_id: HomeIdPath, principal: Staff, session: SessionDep) -> HomeOut:
    return _out(session, home_for(principal, session, home_id))


@router.patch("/{home_id}", response_model=HomeOut, summary="Change a home's name or time zone")
def update_home(home_id: HomeIdPath, body: HomeUpdate, principal: Staff, session: SessionDep) -> HomeOut:
    home = home_for(principal, session, home_id)
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes:
        home.name = changes["name"]
    if changes.get("timezone") is not None:
        home.timezone = changes["timezone"]
    session.flush()
    return _out(session, home)


@router.get("/{home_id}/devices", response_model=Page[DeviceOut], summary="A home's devices")
def list_devices(
    home_id: HomeIdPath, principal: Staff, session: SessionDep, page: PageDep,
    needs_setting_up: Annotated[bool | None, Query(
        description="true: only the devices a coordinator still has to say what they are for, buttons without "
                    "the role pendant first (their presses are raised as possible pendant presses); false: the "
                    "others")] = None,
) -> Page[DeviceOut]:
    home = home_for(principal, session, home_id)
    stmt = select(Device).where(Device.home_id == home.id).order_by(Device.name)
    if needs_setting_up is None:
        return paginate(session, stmt, page, DeviceOut.model_validate)
    chosen = [d for d in session.scalars(stmt)
              if (setting_up_needed(d.kind, d.room, d.role) is not None) == needs_setting_up]
    chosen.sort(key=lambda d: setting_up_urgency(d.kind, d.role))  # stable: by name within each
    return page.slice([DeviceOut.model_validate(d) for d in chosen])


@router.patch("/{home_id}/devices/{device_id}", response_model=DeviceOut,
              summary="Put a device in a room and give it a role (send null to clear either)")
def update_device(home_id: HomeIdPath, device_id: PathId, body: DeviceUpdate, principal: Staff,
                  session: SessionDep) -> DeviceOut:
    home = home_for(principal, session, home_id)
    device = session.get(Device, device_id)
    if device is None or device.home_id != home.id:
        raise NotFound(f"home {home_id!r} has no device {device_id} (GET /homes/{home_id}/devices)")
    changes = body.model_dump(exclude_unset=True)
    if "room" in changes:
        device.room = changes["room"]
    if "role" in changes:
        device.role = changes["role"]
    resident_id = session.scalar(select(Resident.id).where(Resident.home_id == home.id))
    if resident_id is not None and changes:
        # Which sensor watches the bed or the front door changes what is known about the resident.
        audit(session, principal, UPDATE, "device", resident_id, f"{device.name}: {changes}")
    session.flush()
    return DeviceOut.model_validate(device)
