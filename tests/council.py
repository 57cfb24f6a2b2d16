"""A council caring for two homes, for the tests of what an erasure or a change of care forgets: h1 (Mrs Jones)
and h2 (Mr Smith), claimed since :data:`CARE_START`, and the council's admin (Ada) signed in at :data:`API_NOW`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from api.security import issue_token
from gateway.alerting import people
from gateway.db.models import Device, Home, HomeClaim, Organisation, User
from tests.api.conftest import password_hash

CARE_START = datetime(2025, 1, 1, tzinfo=UTC)
API_NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


def seed_council(sessions: sessionmaker[Session], *, front_doors: bool = False) -> tuple[dict[str, int],
                                                                                         dict[str, str]]:
    """The council, its homes (each with a registered ``front_door`` contact when ``front_doors``), residents and
    admin; the residents' ids by name, and the admin's request headers."""
    with sessions.begin() as s:
        organisation = Organisation(name="Northshire Council")
        s.add(organisation)
        s.flush()
        residents = {}
        for home, name in (("h1", "Mrs Jones"), ("h2", "Mr Smith")):
            s.add(Home(id=home, organisation_id=organisation.id))
            s.add(HomeClaim(home_id=home, organisation_id=organisation.id, claimed_at=CARE_START))
            if front_doors:
                s.add(Device(home_id=home, name="front_door", kind="contact", role="front_door"))
            s.flush()
            resident = people.add_resident(s, home, name)
            resident.created_at = CARE_START
            s.flush()
            residents[name] = resident.id
        ada = User(organisation_id=organisation.id, email="ada@example.org", name="Ada", role="admin",
                   password_hash=password_hash(), active=True)
        s.add(ada)
        s.flush()
        token, _ = issue_token(s, ada, API_NOW)
    return residents, {"Authorization": f"Bearer {token}"}
