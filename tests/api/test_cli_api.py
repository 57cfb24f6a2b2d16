"""``telecare users add``: the first admin and their organisation; ``telecare api``'s wiring."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from api.security import verify_password
from gateway.db.models import Organisation, User
from telecare.cli import app


@pytest.fixture
def telecare(db_url: str, sessions: sessionmaker[Session], tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("TELECARE_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TELECARE_DB_URL", db_url)
    yield CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, (result.output, result.stderr if code == 0 else "")
    return result.output + (result.stderr if code else "")


def test_the_first_admin_creates_the_organisation(telecare: CliRunner, sessions: sessionmaker[Session]) -> None:
    out = run(telecare, "users", "add", "Ada@Example.org", "--name", "Ada", "--organisation", "Northshire",
              "--password-stdin", stdin="a long passphrase\n")
    assert "created organisation 'Northshire'" in out and "added admin ada@example.org" in out
    out = run(telecare, "users", "add", "cora@example.org", "--name", "Cora", "--role", "coordinator",
              "--organisation", "northshire", "--password-stdin", stdin="another passphrase\n")
    assert "created" not in out
    with sessions() as s:
        assert [o.name for o in s.scalars(select(Organisation))] == ["Northshire"]
        users = {u.email: u for u in s.scalars(select(User))}
    assert {e: (u.role, u.organisation_id) for e, u in users.items()} == {
        "ada@example.org": ("admin", 1), "cora@example.org": ("coordinator", 1)}
    assert verify_password("a long passphrase", users["ada@example.org"].password_hash)[0]


def test_the_password_is_prompted_for_when_not_on_stdin(telecare: CliRunner,
                                                        sessions: sessionmaker[Session]) -> None:
    run(telecare, "users", "add", "ada@example.org", "--name", "Ada", "--organisation", "N",
        stdin="a long passphrase\na long passphrase\n")
    with sessions() as s:
        assert s.scalar(select(User.email)) == "ada@example.org"


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["not-an-email", "--name", "A", "--organisation", "N"], "a long passphrase\n", "not an email address"),
    (["a@example.org", "--name", "A", "--organisation", "N", "--role", "king"], "a long passphrase\n",
     "unknown role 'king'"),
    (["a@example.org", "--name", "A", "--organisation", "N"], "short\n", "the password must be"),
    (["a@example.org", "--name", " ", "--organisation", "N"], "a long passphrase\n", "--name"),
])
def test_clear_errors_exit_2(telecare: CliRunner, args: list[str], stdin: str, message: str) -> None:
    out = run(telecare, "users", "add", *args, "--password-stdin", code=2, stdin=stdin)
    assert message in out


def test_an_existing_email_is_refused(telecare: CliRunner) -> None:
    args = ["users", "add", "a@example.org", "--name", "A", "--organisation", "N", "--password-stdin"]
    run(telecare, *args, stdin="a long passphrase\n")
    assert "exists already" in run(telecare, *args, code=2, stdin="a long passphrase\n")


def test_an_unmigrated_database_is_refused(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELECARE_DB_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = CliRunner().invoke(app, ["users", "add", "a@example.org", "--name", "A", "--organisation", "N",
                                      "--password-stdin"], input="a long passphrase\n")
    assert result.exit_code == 2 and "telecare db upgrade" in result.stderr


def test_api_migrates_then_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'api.db'}"
    monkeypatch.setenv("TELECARE_DB_URL", url)
    monkeypatch.setattr("gateway.db.migrate.upgrade", lambda u: calls.append(("upgrade", u)))
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(("run", kw)))
    result = CliRunner().invoke(app, ["api", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert calls == [("upgrade", url), ("run", {"host": "127.0.0.1", "port": 8123, "log_level": "info"})]
