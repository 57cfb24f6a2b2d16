"""The first hour with the CLI (issue 14): ``telecare setup``, ``--organisation`` wherever the CLI adds something
an organisation owns, and the proof that what the CLI adds is what the API and dashboard show."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from api.app import create_app
from api.security import verify_password
from gateway.config import Settings
from gateway.db.migrate import upgrade
from gateway.db.models import AuditEntry, Home, HomeClaim, Organisation, Recipient, User
from gateway.db.session import make_engine, make_session_factory
from telecare.cli import app

PASSWORD = "a long passphrase"
ANNE = "anne" + "0" * 26
BOB = "bob" + "0" * 27


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def telecare(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("TELECARE_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELECARE_DB_URL", db_url)
    monkeypatch.setenv("TELECARE_DATA_DIR", str(tmp_path / "data"))
    yield CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> str:
    """stdout and stderr together; a traceback fails the test whatever the exit code."""
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    return result.output + result.stderr


@pytest.fixture
def homes(sessions: sessionmaker[Session]) -> None:
    """Two discovered homes, and one another organisation cares for already."""
    with sessions.begin() as s:
        other = Organisation(name="Other Care")
        s.add(other)
        s.flush()
        s.add_all([Home(id="h1", name="12 Acacia Avenue", timezone="Europe/London"), Home(id="h2"),
                   Home(id="h3", organisation_id=other.id)])


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin-password"
    path.write_text(PASSWORD + "\n")
    return path


def setup(runner: CliRunner, password_file: Path | None, *extra: str, code: int = 0, stdin: str | None = None
          ) -> str:
    args = ["setup", "--organisation", "Northshire Council", "--email", "Ada@Example.org", "--name", "Ada",
            *extra]
    if password_file is not None:
        args += ["--password-file", str(password_file)]
    return run(runner, *args, code=code, stdin=stdin)


def owners(sessions: sessionmaker[Session]) -> dict[str, str | None]:
    with sessions() as s:
        return {h.id: (h.organisation.name if h.organisation else None) for h in s.scalars(select(Home))}


def test_setup_creates_the_organisation_and_admin_and_claims_the_unassigned_homes(
        telecare: CliRunner, homes: None, password_file: Path, sessions: sessionmaker[Session]) -> None:
    out = setup(telecare, password_file)
    assert "organisation 'Northshire Council' (id 2): created" in out
    assert "admin ada@example.org (user 1): created" in out
    assert "homes claimed for Northshire Council: h1, h2" in out
    assert "1 home of other organisations left as they are" in out
    assert PASSWORD not in out
    for step in ("telecare gateway", "open http://127.0.0.1:8000/dashboard and log in as ada@example.org",
                 "telecare recipients add NAME --pushover-user KEY --organisation 'Northshire Council'",
                 "telecare residents add HOME --name NAME --organisation 'Northshire Council'",
                 "telecare chain set HOME"):
        assert step in out
    assert owners(sessions) == {"h1": "Northshire Council", "h2": "Northshire Council", "h3": "Other Care"}
    with sessions() as s:
        admin = s.scalars(select(User)).one()
        assert (admin.email, admin.role, admin.organisation_id, admin.active) == ("ada@example.org", "admin", 2, True)
        assert verify_password(PASSWORD, admin.password_hash)[0]
        claims = s.scalars(select(HomeClaim).order_by(HomeClaim.home_id)).all()
        assert [(c.home_id, c.organisation_id) for c in claims] == [("h1", 2), ("h2", 2)]
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "claim")).all()
        assert sorted(a.detail.split()[1] for a in audit) == ["'h1'", "'h2'"]


def test_setup_run_again_changes_nothing_asks_nothing_and_claims_new_homes(
        telecare: CliRunner, homes: None, password_file: Path, sessions: sessionmaker[Session]) -> None:
    setup(telecare, password_file)
    # No password this time: the admin exists, so none is asked for (stdin is empty: a prompt would fail).
    out = setup(telecare, None)
    assert "organisation 'Northshire Council' (id 2): exists already" in out
    assert "user ada@example.org (user 1): exists already; password unchanged" in out
    assert "telecare users reset-password ada@example.org" in out
    assert "homes already Northshire Council's: h1, h2" in out and "claimed for" not in out
    with sessions.begin() as s:
        s.add(Home(id="h4"))  # a hub discovered since
    out = setup(telecare, None)
    assert "homes claimed for Northshire Council: h4" in out
    with sessions() as s:
        assert s.scalars(select(Organisation.name).order_by(Organisation.id)).all() == [
            "Other Care", "Northshire Council"]
        assert len(s.scalars(select(User)).all()) == 1
        assert verify_password(PASSWORD, s.scalars(select(User)).one().password_hash)[0]


def test_setup_prompts_for_the_password_without_echo(telecare: CliRunner, homes: None,
                                                      sessions: sessionmaker[Session]) -> None:
    out = setup(telecare, None, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert "admin ada@example.org (user 1): created" in out and PASSWORD not in out
    with sessions() as s:
        assert verify_password(PASSWORD, s.scalars(select(User)).one().password_hash)[0]


def test_setup_reads_the_password_from_the_environment(telecare: CliRunner, homes: None,
                                                        sessions: sessionmaker[Session],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELECARE_ADMIN_PASSWORD", PASSWORD)
    assert PASSWORD not in setup(telecare, None)
    with sessions() as s:
        assert verify_password(PASSWORD, s.scalars(select(User)).one().password_hash)[0]


def test_setup_with_home_claims_only_those(telecare: CliRunner, homes: None, password_file: Path,
                                           sessions: sessionmaker[Session]) -> None:
    out = setup(telecare, password_file, "--home", "h2")
    assert "homes claimed for Northshire Council: h2" in out
    assert owners(sessions)["h1"] is None


@pytest.mark.parametrize(("extra", "message"), [
    (("--home", "nowhere"), "no home 'nowhere'"),
    (("--home", "h3"), "home 'h3' is cared for by another organisation"),
    (("--email", "not-an-email"), "'not-an-email' is not an email address"),
    (("--organisation", "  "), "--organisation must be 1 to 200 characters"),
    (("--api-url", "localhost:8000"), "--api-url 'localhost:8000' must be an http:// or https:// URL"),
])
def test_setup_refuses_mistakes_before_changing_anything(telecare: CliRunner, homes: None, password_file: Path,
                                                         sessions: sessionmaker[Session], extra: tuple[str, ...],
                                                         message: str) -> None:
    assert message in setup(telecare, password_file, *extra, code=2)
    with sessions() as s:
        assert s.scalars(select(Organisation.name)).all() == ["Other Care"]
        assert s.scalars(select(User)).all() == []
    assert owners(sessions)["h1"] is None


def test_setup_refuses_a_short_password_and_a_user_of_another_organisation(
        telecare: CliRunner, homes: None, tmp_path: Path, password_file: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    assert "the password must be" in setup(telecare, short, code=2)
    setup(telecare, password_file)
    out = run(telecare, "setup", "--organisation", "Other Care", "--email", "ada@example.org", "--name", "Ada",
              code=2)
    assert "ada@example.org is a user of another organisation (Northshire Council)" in out


def api_client(tmp_path: Path, db_url: str) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "api", db_url=db_url)))  # type: ignore[call-arg]


def login(client: TestClient, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": "ada@example.org", "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_what_the_cli_adds_with_organisation_is_in_the_api(telecare: CliRunner, homes: None, password_file: Path,
                                                           tmp_path: Path, db_url: str) -> None:
    """The README's path: setup, then residents, recipients and a chain from the CLI; the admin sees them all."""
    setup(telecare, password_file, "--home", "h2")  # h1 stays unassigned: residents add claims it
    out = run(telecare, "residents", "add", "h1", "--name", "Mrs Jones", "--organisation", "northshire council")
    assert "home h1 claimed for Northshire Council" in out and "note:" not in out
    run(telecare, "recipients", "add", "Anne", "--pushover-user", ANNE, "--organisation", "Northshire Council")
    run(telecare, "recipients", "add", "Bob", "--pushover-user", BOB, "--organisation", "2")
    assert "Anne (15 min) → Bob (10 min)" in run(telecare, "chain", "set", "h1", "1:15", "2:10")
    listed = run(telecare, "residents", "list").splitlines()
    assert listed[0].split()[:4] == ["ID", "HOME", "NAME", "ORGANISATION"] and "Northshire Council" in listed[1]
    with api_client(tmp_path, db_url) as client:
        auth = login(client)
        residents = client.get("/residents", headers=auth).json()["items"]
        assert [r["name"] for r in residents] == ["Mrs Jones"]
        resident = client.get(f"/residents/{residents[0]['id']}", headers=auth).json()
        assert resident["home"]["id"] == "h1"
        assert [(step["recipient_name"], step["wait_min"]) for step in resident["chain"]] == [("Anne", 15), ("Bob", 10)]
        recipients = client.get("/recipients", headers=auth).json()["items"]
        assert sorted(r["name"] for r in recipients) == ["Anne", "Bob"]


def test_residents_add_on_an_unassigned_home_says_how_to_claim_it(telecare: CliRunner, homes: None,
                                                                   password_file: Path) -> None:
    setup(telecare, password_file, "--home", "h2")
    out = run(telecare, "residents", "add", "h1", "--name", "Mrs Jones")
    assert ("note: home h1 belongs to no organisation, so Mrs Jones is not in the API or dashboard until it is "
            "claimed: telecare homes claim h1 --organisation NAME") in out
    out = run(telecare, "recipients", "add", "Anne", "--pushover-user", ANNE)
    assert "note: Anne belongs to no organisation" in out
    assert run(telecare, "recipients", "list").splitlines()[1].split()[:3] == ["1", "Anne", "none"]


@pytest.mark.parametrize(("args", "message"), [
    (("residents", "add", "h3", "--name", "X", "--organisation", "Northshire Council"),
     "home 'h3' is cared for by another organisation (id 1), not Northshire Council"),
    (("residents", "add", "h1", "--name", "X", "--organisation", "Nobody"),
     "no organisation named 'Nobody'; there are 'Other Care' (1), 'Northshire Council' (2)"),
    (("recipients", "add", "Anne", "--pushover-user", ANNE, "--organisation", "9"), "no organisation 9"),
])
def test_organisation_mistakes_are_a_sentence(telecare: CliRunner, homes: None, password_file: Path,
                                              sessions: sessionmaker[Session], args: tuple[str, ...],
                                              message: str) -> None:
    setup(telecare, password_file, "--home", "h2")
    assert message in run(telecare, *args, code=2)
    with sessions() as s:
        assert s.scalars(select(Recipient)).all() == []
    assert owners(sessions)["h1"] is None


def test_a_chain_alerts_only_the_organisations_recipients(telecare: CliRunner, homes: None,
                                                          password_file: Path) -> None:
    setup(telecare, password_file)
    run(telecare, "residents", "add", "h1", "--name", "Mrs Jones")
    run(telecare, "recipients", "add", "Zed", "--pushover-user", ANNE, "--organisation", "Other Care")
    run(telecare, "recipients", "add", "Loose", "--pushover-user", BOB)
    out = run(telecare, "chain", "set", "h1", "1:15", code=2)
    assert "recipient 1 (Zed) belongs to another organisation than home h1's" in out
    out = run(telecare, "chain", "set", "h1", "2:15")
    assert "note: recipient 2 (Loose) belongs to no organisation" in out


def test_homes_import_with_organisation_claims_the_described_homes(telecare: CliRunner, homes: None,
                                                                   password_file: Path, tmp_path: Path,
                                                                   sessions: sessionmaker[Session]) -> None:
    setup(telecare, password_file, "--home", "h2")
    described = tmp_path / "homes.yaml"
    described.write_text("homes:\n  - id: h1\n    name: 12 Acacia Avenue\n  - id: h5\n    name: 5 New Street\n")
    out = run(telecare, "homes", "import", str(described))
    assert "unassigned, so not in the API or dashboard until claimed: h1, h5" in out
    out = run(telecare, "homes", "import", str(described), "--organisation", "northshire council")
    assert "claimed for Northshire Council: h1, h5" in out and "unassigned" not in out
    assert "claimed" not in run(telecare, "homes", "import", str(described), "--organisation", "2")
    described.write_text("homes:\n  - id: h3\n    name: Renamed\n  - id: h6\n    name: 6 New Street\n")
    out = run(telecare, "homes", "import", str(described), "--organisation", "Northshire Council", code=2)
    assert "home 'h3' is cared for by another organisation, organisation 1 (Other Care); nothing was imported" in out
    with sessions() as s:
        assert s.get(Home, "h6") is None and s.get_one(Home, "h3").name is None


def test_homes_claim_and_list_name_the_organisation(telecare: CliRunner, homes: None, password_file: Path) -> None:
    setup(telecare, password_file, "--home", "h2")
    assert "home 'h1' is now cared for by Northshire Council" in run(
        telecare, "homes", "claim", "h1", "--organisation", "Northshire Council")
    assert "is cared for by Northshire Council (organisation 2) already" in run(
        telecare, "homes", "claim", "h1", "--organisation", "northshire council")
    assert "claimed by organisation 1 (Other Care)" in run(
        telecare, "homes", "claim", "h3", "--organisation", "Northshire Council", code=2)
    listed = run(telecare, "homes", "list").splitlines()
    rows = {line.split()[0]: line for line in listed[1:4]}
    assert "Northshire Council" in rows["h1"] and "Other Care" in rows["h3"]
    assert "unassigned" not in "".join(listed)


def test_users_list_shows_organisations_and_roles_and_no_secrets(telecare: CliRunner, homes: None,
                                                                 password_file: Path, tmp_path: Path,
                                                                 db_url: str, sessions: sessionmaker[Session]
                                                                 ) -> None:
    assert "no users yet: telecare setup" in run(telecare, "users", "list")
    setup(telecare, password_file)
    run(telecare, "users", "add", "cora@example.org", "--name", "Cora", "--role", "coordinator", "--organisation",
        "Other Care", "--password-stdin", stdin="another passphrase\n")
    with api_client(tmp_path, db_url) as client:
        login(client)
    out = run(telecare, "users", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "EMAIL", "NAME", "ROLE", "ORGANISATION", "ACTIVE", "SESSIONS"]
    assert lines[1].split() == ["1", "ada@example.org", "Ada", "admin", "Northshire", "Council", "yes", "1"]
    assert lines[2].split() == ["2", "cora@example.org", "Cora", "coordinator", "Other", "Care", "yes", "0"]
    with sessions() as s:
        hashes = [u.password_hash for u in s.scalars(select(User))]
    assert not any(h in out for h in hashes) and "$" not in out
    only = run(telecare, "users", "list", "--organisation", "other care")
    assert "cora@example.org" in only and "ada@example.org" not in only


def test_reset_password_signs_the_user_out_everywhere(telecare: CliRunner, homes: None, password_file: Path,
                                                      tmp_path: Path, db_url: str,
                                                      sessions: sessionmaker[Session]) -> None:
    setup(telecare, password_file)
    new = "a brand new passphrase"
    with api_client(tmp_path, db_url) as client:
        auth = login(client)
        assert client.get("/auth/me", headers=auth).status_code == 200
        out = run(telecare, "users", "reset-password", "ADA@example.org", stdin=f"{new}\n{new}\n")
        assert "password of ada@example.org reset; 1 open session signed out" in out and new not in out
        assert client.get("/auth/me", headers=auth).status_code == 401
        assert client.post("/auth/token", data={"username": "ada@example.org", "password": PASSWORD}
                           ).status_code == 401
        login(client, new)
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "password_change")).one()
        assert entry.organisation_id == 2 and "ada@example.org" in entry.detail and new not in entry.detail


def test_reset_password_of_nobody_asks_for_nothing(telecare: CliRunner, homes: None) -> None:
    # No stdin: a prompt would abort with exit code 1, not this message and 2.
    assert "no user nobody@example.org: see telecare users list" in run(
        telecare, "users", "reset-password", "nobody@example.org", code=2)


def test_setup_before_any_home_says_how_to_bring_them_in(telecare: CliRunner, password_file: Path,
                                                         sessions: sessionmaker[Session]) -> None:
    out = setup(telecare, password_file, "--api-url", "https://telecare.example.org/")
    assert "no unassigned homes to claim" in out
    assert ("1. bring in the homes: import their descriptions (telecare homes import FILE --organisation "
            "'Northshire Council'), or start the gateway so the hubs are discovered and run telecare setup "
            "again") in out
    assert "open https://telecare.example.org/dashboard and log in as ada@example.org" in out
