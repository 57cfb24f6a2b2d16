"""Home descriptions: the YAML file installers write (and the simulator writes for its homes) saying which
devices a home has, in which rooms, and which role each plays. ``telecare homes import`` loads it.

The format is documented in ``docs/homes.md``. The description owns a home's name and timezone and each
device's room and role; it never overwrites what the gateway discovered (last_seen, battery, model ...). An
IEEE address or kind given here fills in what is not yet known and is otherwise only checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.devices import KINDS_BY_KEY, ROLES
from gateway import timezones
from gateway.claims import check_claim_code, set_claim_code
from gateway.contract import HOME_ID
from gateway.db.models import DEFAULT_TIMEZONE, DEVICE_NAME_LEN, NAME_LEN, ROOM_LEN, Device, Home

IEEE_ADDRESS = re.compile(r"^0x[0-9a-f]{16}$")


class HomesFileError(ValueError):
    """Raised when a home description cannot be read or is invalid; ``problems`` lists each, with its path."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the home description:\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ResidentSpec(_Strict):
    """Who lives there. Only a display name for now; later versions add contacts, escalation and absences."""

    name: str = Field(min_length=1, max_length=NAME_LEN)


class DeviceSpec(_Strict):
    name: str = Field(min_length=1, max_length=DEVICE_NAME_LEN,
                      description="the zigbee2mqtt friendly name, exactly as the hub publishes it")
    room: str | None = Field(None, min_length=1, max_length=ROOM_LEN,
                             description="where it is; omit for devices that move with the resident")
    role: str | None = Field(None, description="what the detectors should take it for; one of ROLES")
    kind: str | None = Field(None, description="what sort of device; inferred from its payloads when omitted")
    ieee_address: str | None = Field(None, description="0x followed by 16 hex digits")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError(f"device name {value!r} contains an MQTT wildcard (+ or #)")
        if value == "bridge" or value.startswith("bridge/"):
            raise ValueError("'bridge' is the hub's own topic, not a device name")
        if value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError(f"device name {value!r} has an empty topic level")
        return value

    @field_validator("role")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and value not in ROLES:
            raise ValueError(f"unknown role {value!r}; valid roles: {', '.join(sorted(ROLES))}")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        if value is not None and value not in KINDS_BY_KEY:
            raise ValueError(f"unknown kind {value!r}; valid kinds: {', '.join(sorted(KINDS_BY_KEY))}")
        return value

    @field_validator("ieee_address", mode="before")
    @classmethod
    def _ieee_quoted(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError("YAML read the IEEE address as a number: put it in quotes, e.g. "
                             "ieee_address: \"0x00158d0001a2b3c4\"")
        return value

    @field_validator("ieee_address")
    @classmethod
    def _ieee(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normalised = value.lower()
        if not IEEE_ADDRESS.match(normalised):
            raise ValueError(f"IEEE address {value!r} must be 0x followed by 16 hex digits, as zigbee2mqtt "
                             "shows it (e.g. 0x00158d0001a2b3c4)")
        return normalised


class HomeSpec(_Strict):
    id: str = Field(description="the home id in its MQTT topics: telecare/<id>/...")
    name: str = Field(min_length=1, max_length=NAME_LEN)
    timezone: str = Field(DEFAULT_TIMEZONE, description="IANA timezone name, e.g. Europe/London")
    resident: ResidentSpec | None = None
    devices: list[DeviceSpec] = Field(default_factory=list)
    claim_code: str | None = Field(None, description="the code an organisation claims the home with (on the hub's "
                                   "label); only its hash is stored")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not HOME_ID.match(value):
            raise ValueError(f"home id {value!r} must be 1-64 letters, digits, '_', '.' or '-', starting "
                             "with a letter or digit (it is a level of the MQTT topic)")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if timezones.find_zone(value) is None:  # the homes file's own wording, as it always was
            raise ValueError(f"unknown timezone {value!r}; use an IANA name like 'Europe/London'")
        return value

    @field_validator("claim_code")
    @classmethod
    def _claim_code(cls, value: str | None) -> str | None:
        return None if value is None else check_claim_code(value)

    @model_validator(mode="after")
    def _unique_devices(self) -> HomeSpec:
        _no_duplicates("device name", [d.name for d in self.devices], "devices")
        _no_duplicates("IEEE address", [d.ieee_address for d in self.devices], "devices")
        return self


class HomesFile(_Strict):
    """A home description file."""

    version: Literal[1] = 1
    homes: list[HomeSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_homes(self) -> HomesFile:
        _no_duplicates("home id", [h.id for h in self.homes], "homes")
        return self


def _no_duplicates(what: str, values: list[str | None], where: str) -> None:
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        if value is None:
            continue
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice ({where}[{seen[value]}] and {where}[{i}])")
        seen[value] = i


# ------------------------------------------------------------------------------------------------------------
# Reading


def parse_description(data: Any, source: str = "<description>") -> HomesFile:
    """Validate already-loaded YAML/JSON data; raises :class:`HomesFileError` naming each bad field's path."""
    if data is None:
        raise HomesFileError(source, ["the description is empty; it needs a 'homes:' list (docs/homes.md)"])
    try:
        return HomesFile.model_validate(data)
    except ValidationError as e:
        raise HomesFileError(source, [_describe(error, data) for error in e.errors()]) from None


def load_description(path: Path | str) -> HomesFile:
    """Read and validate a home description file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HomesFileError(str(path), [f"cannot read the file: {e}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise HomesFileError(str(path), [f"invalid YAML at {where}{problem}"]) from None
    return parse_description(data, str(path))


def _describe(error: Any, data: Any) -> str:
    """``homes[0].devices[2].role (home 'flat-12', device 'fridge'): unknown role ...``"""
    loc = [part for part in error["loc"] if part not in ("function-after",)]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required but missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; see docs/homes.md)"
    elif error["type"] == "literal_error" and loc == ["version"]:
        message = f"unsupported version {error.get('input')!r}; this telecare reads version 1"
    context = _context(loc, data)
    return f"{path or '(file)'}{context}: {message}"


def _context(loc: list[Any], data: Any) -> str:
    """Name the home and device a path points into, so the installer finds it without counting."""
    names = []
    node = data
    for key, label in (("homes", "home"), ("devices", "device")):
        if len(loc) < 2 or loc[0] != key or not isinstance(loc[1], int):
            break
        try:
            node = node[key][loc[1]]
        except (KeyError, IndexError, TypeError):
            break
        ident = node.get("id" if key == "homes" else "name") if isinstance(node, dict) else None
        if ident is not None:
            names.append(f"{label} {str(ident)!r}")
        loc = loc[2:]
    return f" ({', '.join(names)})" if names else ""


# ------------------------------------------------------------------------------------------------------------
# Importing


@dataclass
class ImportReport:
    homes_created: list[str] = field(default_factory=list)
    homes_updated: list[str] = field(default_factory=list)
    devices_created: int = 0
    devices_updated: int = 0
    devices_unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"homes: {len(self.homes_created)} created, {len(self.homes_updated)} updated",
            f"devices: {self.devices_created} created, {self.devices_updated} updated, "
            f"{self.devices_unchanged} unchanged",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def import_homes(session: Session, description: HomesFile) -> ImportReport:
    """Create or update the described homes and devices. The caller commits.

    Sets a home's name and timezone, and each device's room and role (an omitted room or role is cleared).
    A device's kind and IEEE address are filled in only when not yet known; a description that disagrees with
    the hub is reported as a warning and the hub's facts are kept. Devices the gateway discovered but the
    description leaves out are kept and listed as warnings.
    """
    report = ImportReport()
    for spec in description.homes:
        home = session.get(Home, spec.id)
        if home is None:
            home = Home(id=spec.id, name=spec.name, timezone=spec.timezone)
            session.add(home)
            report.homes_created.append(spec.id)
        elif (home.name, home.timezone) != (spec.name, spec.timezone):
            home.name, home.timezone = spec.name, spec.timezone
            report.homes_updated.append(spec.id)
        if spec.claim_code is not None:
            _import_claim_code(home, spec.claim_code, report)
        session.flush()
        _import_devices(session, spec, report)
    session.flush()
    return report


def _import_claim_code(home: Home, code: str, report: ImportReport) -> None:
    # A claimed home's code was spent by its claim: storing it again would let whoever holds the file claim the
    # home after its release.
    if home.organisation_id is not None:
        report.warnings.append(f"home {home.id!r} is claimed already: its claim_code was not stored")
    else:
        set_claim_code(home, code)


def _import_devices(session: Session, spec: HomeSpec, report: ImportReport) -> None:
    rows = {d.name: d for d in session.scalars(select(Device).where(Device.home_id == spec.id))}
    names_by_ieee = {d.ieee_address: d.name for d in rows.values() if d.ieee_address}
    for d in spec.devices:
        device = rows.get(d.name)
        ieee_address = d.ieee_address
        if ieee_address and names_by_ieee.get(ieee_address, d.name) != d.name:
            report.warnings.append(
                f"home {spec.id!r}: device {d.name!r} has IEEE address {ieee_address}, which the hub calls "
                f"{names_by_ieee[ieee_address]!r}; rename it in the description or on the hub")
            ieee_address = None  # the address belongs to the device the hub names so
        if device is None:
            session.add(Device(home_id=spec.id, name=d.name, room=d.room, role=d.role, kind=d.kind,
                               ieee_address=ieee_address))
            report.devices_created += 1
            continue
        changed = (device.room, device.role) != (d.room, d.role)
        device.room, device.role = d.room, d.role
        if d.kind is not None:
            if device.kind is None:
                device.kind, changed = d.kind, True
            elif device.kind != d.kind:
                report.warnings.append(f"home {spec.id!r}: device {d.name!r} is described as {d.kind!r} but "
                                       f"its payloads say {device.kind!r}; keeping {device.kind!r}")
        if ieee_address is not None:
            if device.ieee_address is None:
                device.ieee_address, changed = ieee_address, True
            elif device.ieee_address != d.ieee_address:
                report.warnings.append(f"home {spec.id!r}: device {d.name!r} is described with IEEE address "
                                       f"{d.ieee_address} but the hub reports {device.ieee_address}; keeping "
                                       "the hub's")
        if changed:
            report.devices_updated += 1
        else:
            report.devices_unchanged += 1
    described = {d.name for d in spec.devices}
    undescribed = sorted(name for name in rows if name not in described)
    if undescribed:
        report.warnings.append(f"home {spec.id!r}: discovered devices not in the description (no room or "
                               f"role): {', '.join(undescribed)}")
