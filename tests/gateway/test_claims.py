"""Who a home belongs to, from the gateway's side (issue 12, finding 1): alerts stamped with the organisation caring
for the home when raised, claim codes from the home description or issued by the operator, and the operator's
assignment (``telecare homes claim-code`` and ``telecare homes claim``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from analytics.alerts import Action, AlertEvent, AlertKind, Severity
from gateway.alerting import people
from gateway.alerting.record import apply_events
from gateway.claims import claim_code_matches, claim_home, release_home
from gateway.db.migrate import upgrade
from gateway.db.models import Alert, AuditEntry, Home, HomeClaim, Organisation
from gateway.db.session import make_engine, make_session_factory
from gateway.homes import HomesFileError, import_homes, parse_description
from telecare.cli_db import homes_app

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    with make_session_factory(engine).begin() as s:
        s.add_all([Organisation(id=1, name="Northshire Council"), Organisation(id=2, name="Care Co"),
                   Home(id="h1", name="12 Acacia Avenue")])
    yield make_session_factory(engine)
    engine.dispose()


def raise_one(sessions: sessionmaker[Session], at: datetime) -> Alert:
    with sessions.begin() as s:
        (alert,) = apply_events(s, [AlertEvent(Action.RAISE, AlertKind.HUB_OFFLINE, "h1", int(at.timestamp() * 1000),
                                               Severity.WARNING, "hub offline")], at)
        s.expunge(alert)
        return alert


def test_an_alert_is_stamped_with_the_organisation_caring_for_the_home(sessions: sessionmaker[Session]) -> None:
    unassigned = raise_one(sessions, T0)
    assert unassigned.organisation_id is None
    with sessions.begin() as s:
        claim_home(s, s.get_one(Home, "h1"), 1, T0)
    cared_for = raise_one(sessions, T0)
    assert cared_for.organisation_id == 1 and cared_for.id != unassigned.id, \
        "the open alert of the unassigned home is not handed to the organisation: a new one is raised"
    with sessions.begin() as s:
        release_home(s, s.get_one(Home, "h1"), T0)
        assert s.get_one(Alert, cared_for.id).state == "resolved", "released: nobody can act on it any more"
        claim_home(s, s.get_one(Home, "h1"), 2, T0)
    assert raise_one(sessions, T0).organisation_id == 2
    with sessions() as s:
        assert s.get_one(Alert, cared_for.id).organisation_id == 1, "still the first organisation's"


def test_adding_a_resident_starts_a_new_care_epoch(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        before = s.get_one(Home, "h1").care_epoch
        people.add_resident(s, "h1", "Mrs Jones")
        assert s.get_one(Home, "h1").care_epoch == before + 1


def test_the_description_carries_a_claim_code_stored_hashed(sessions: sessionmaker[Session]) -> None:
    description = {"homes": [{"id": "h1", "name": "12 Acacia Avenue", "claim_code": " ACACIA-7K3P-Q9XM "}]}
    with sessions.begin() as s:
        report = import_homes(s, parse_description(description))
        home = s.get_one(Home, "h1")
        assert home.claim_code_hash is not None and "ACACIA" not in home.claim_code_hash
        assert claim_code_matches(home, "ACACIA-7K3P-Q9XM") and not claim_code_matches(home, "ACACIA-7K3P-Q9XN")
        assert not report.warnings
        claim_home(s, home, 1, T0)
        assert home.claim_code_hash is None, "spent by the claim"
        report = import_homes(s, parse_description(description))
        assert home.claim_code_hash is None and "claimed already" in report.warnings[0]
    with pytest.raises(HomesFileError, match="could be guessed"):
        parse_description({"homes": [{"id": "h2", "name": "x", "claim_code": "1234"}]})


def test_the_operator_issues_a_claim_code_shown_once(db_url: str, sessions: sessionmaker[Session]) -> None:
    runner = CliRunner()
    result = runner.invoke(homes_app, ["claim-code", "h1"], env={"TELECARE_DB_URL": db_url})
    assert result.exit_code == 0, result.output
    code = result.stdout.strip()
    assert len(code) >= 20
    again = runner.invoke(homes_app, ["claim-code", "h1"], env={"TELECARE_DB_URL": db_url}).stdout.strip()
    with sessions() as s:
        home = s.get_one(Home, "h1")
        assert claim_code_matches(home, again) and not claim_code_matches(home, code), "the new code replaces it"
    result = runner.invoke(homes_app, ["claim-code", "nowhere"], env={"TELECARE_DB_URL": db_url})
    assert result.exit_code == 2 and "no home 'nowhere'" in result.output


def test_the_operator_assigns_a_home_to_an_organisation(db_url: str, sessions: sessionmaker[Session]) -> None:
    runner = CliRunner()
    env = {"TELECARE_DB_URL": db_url}
    result = runner.invoke(homes_app, ["claim", "h1", "--organisation", "care co"], env=env)
    assert result.exit_code == 0, result.output
    assert "Care Co (organisation 2)" in result.output
    with sessions() as s:
        home = s.get_one(Home, "h1")
        assert home.organisation_id == 2 and home.care_epoch == 1
        (claim,) = s.scalars(select(HomeClaim)).all()
        assert (claim.home_id, claim.organisation_id, claim.released_at) == ("h1", 2, None)
        (entry,) = s.scalars(select(AuditEntry)).all()
        assert (entry.organisation_id, entry.action, entry.resource) == (2, "claim", "home")
        assert "operator" in entry.actor and "h1" in entry.detail
    result = runner.invoke(homes_app, ["claim", "h1", "--organisation", "1"], env=env)
    assert result.exit_code == 2 and "claimed by organisation 2" in result.output
    result = runner.invoke(homes_app, ["claim-code", "h1"], env=env)
    assert result.exit_code == 2 and "release it first" in result.output
    with sessions.begin() as s:
        s.add(Home(id="h2"))
    for organisation, message in (("7", "no organisation 7"), ("Nobody", "no organisation named 'Nobody'")):
        result = runner.invoke(homes_app, ["claim", "h2", "--organisation", organisation], env=env)
        assert result.exit_code == 2 and message in result.output
