"""A database URL or data directory that cannot be used is one sentence on stderr and exit code 2, from every
command that opens the database: never a driver's traceback (issue 14, finding 3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gateway.db.session import (
    DatabaseUrlError,
    check_database_url,
    directory_problem,
    make_engine,
    missing_driver_message,
)

ROOT = Path(__file__).resolve().parents[2]
TELECARE = ROOT / ".venv" / "bin" / "telecare"
POSTGRES_HINT = "pip install 'telecare[postgres]'"


def telecare(*args: str, env: dict[str, str], cwd: Path, python: str | None = None) -> subprocess.CompletedProcess[str]:
    """``telecare ARGS`` in a fresh process (the real entry point, as a person runs it), or the same app under
    ``python`` code (to run it with a module hidden)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TELECARE_")}
    command = [str(TELECARE), *args] if python is None else [sys.executable, "-c", python, *args]
    return subprocess.run(command, env={**clean, **env}, cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def assert_sentence(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr  # a message, not a stack
    for text in expected:
        assert text in result.stderr, result.stderr


# Every command family that opens the operational database; the gateway and API as their processes start.
COMMANDS = [("homes", "list"), ("residents", "list"), ("users", "list"), ("away", "list"), ("db", "upgrade"),
            ("setup", "--organisation", "O", "--email", "a@b.org", "--name", "A"), ("gateway",), ("api",)]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_unsupported_database_is_a_sentence(command: tuple[str, ...], tmp_path: Path) -> None:
    result = telecare(*command, env={"TELECARE_DB_URL": "mysql://telecare:secret@db.example/telecare"},
                      cwd=tmp_path)
    assert_sentence(result, "TELECARE_DB_URL: 'mysql' databases are not supported: use SQLite or PostgreSQL")
    assert "secret" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS[:3] + COMMANDS[-2:], ids=lambda c: c[0])
def test_a_malformed_database_url_is_a_sentence_without_the_url(command: tuple[str, ...], tmp_path: Path) -> None:
    result = telecare(*command, env={"TELECARE_DB_URL": "postgres ql://me:hunter2@db/telecare"}, cwd=tmp_path)
    assert_sentence(result, "TELECARE_DB_URL: this is not a database URL; it should look like sqlite:///")
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize("command", [COMMANDS[0], COMMANDS[4], *COMMANDS[-2:]], ids=lambda c: c[0])
def test_a_data_dir_that_cannot_be_a_directory_is_a_sentence(command: tuple[str, ...], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = telecare(*command, env={"TELECARE_DATA_DIR": str(blocker / "data")}, cwd=tmp_path)
    assert_sentence(result, f"TELECARE_DATA_DIR: {blocker} is not a directory, so {blocker / 'data'} cannot be "
                            "created; set it to a directory telecare can write")


@pytest.mark.parametrize("command", [COMMANDS[0], COMMANDS[4], COMMANDS[-2]], ids=lambda c: c[0])
def test_a_missing_postgresql_driver_is_a_sentence_with_the_install_hint(command: tuple[str, ...],
                                                                          tmp_path: Path) -> None:
    # psycopg is installed here: hide it, as on a machine installed without the postgres extra.
    hide = ("import sys; sys.modules['psycopg'] = None; sys.argv = ['telecare', *sys.argv[1:]]; "
            "from telecare.cli import app; app()")
    result = telecare(*command, env={"TELECARE_DB_URL": "postgresql://telecare@db.example/telecare"},
                      cwd=tmp_path, python=hide)
    assert_sentence(result, "TELECARE_DB_URL: the PostgreSQL driver (psycopg) is not installed: " + POSTGRES_HINT)


def test_an_unwritable_data_dir_is_a_sentence(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: the directory's permissions cannot refuse it")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = telecare("homes", "list", env={"TELECARE_DATA_DIR": str(locked / "data")}, cwd=tmp_path)
    assert_sentence(result, f"TELECARE_DATA_DIR: {locked} is not writable")


def test_directory_problem_names_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert directory_problem(tmp_path / "new" / "deeper") is None  # creatable
    assert directory_problem(tmp_path) is None
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert directory_problem(blocker) == f"{blocker} is not a directory"
    monkeypatch.setattr(os, "access", lambda *_: False)  # as for a user the directory refuses
    assert directory_problem(tmp_path / "data") == f"{tmp_path} is not writable (by user {os.getuid()})"


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite:///var/telecare.db", None),
    ("postgresql://u:p@db/telecare", None),
    ("postgres://u:p@db/telecare", None),
    ("postgresql+psycopg://u:p@db/telecare", None),
    ("postgresql+psycopg2://u:p@db/telecare", "the driver 'psycopg2' is not supported for postgresql"),
    ("postgresql+asyncpg://u:p@db/telecare", "the driver 'asyncpg' is not supported for postgresql"),
    ("mysql://u:p@db/telecare", "'mysql' databases are not supported"),
    ("oracle://u:p@db/telecare", "'oracle' databases are not supported"),
    ("nosuchdb://db/telecare", "'nosuchdb' databases are not supported"),
    ("telecare.db", "this is not a database URL"),
    ("", "this is not a database URL"),
])
def test_check_database_url(url: str, message: str | None) -> None:
    if message is None:
        parsed = check_database_url(url)
        assert parsed.get_backend_name() in ("sqlite", "postgresql") and parsed.drivername != "postgresql"
        return
    with pytest.raises(DatabaseUrlError, match=re.escape(message)):
        check_database_url(url)


def test_the_missing_driver_message_comes_from_the_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now raises ModuleNotFoundError
    with pytest.raises(DatabaseUrlError) as raised:
        check_database_url("postgresql://u:p@db/telecare")
    assert str(raised.value) == f"the PostgreSQL driver (psycopg) is not installed: {POSTGRES_HINT} (in a clone: " \
                                "pip install -e '.[postgres]')"
    assert missing_driver_message("postgresql", "psycopg") == str(raised.value)
    assert missing_driver_message("sqlite", "sqlite3") == "the sqlite driver (sqlite3) is not installed: pip install " \
                                                          "sqlite3"


def test_make_engine_refuses_with_the_same_sentences(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUrlError, match="'mysql' databases are not supported"):
        make_engine("mysql://u:p@db/telecare")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DatabaseUrlError, match=r"cannot create .* for the SQLite database: Not a directory"):
        make_engine(make_url(f"sqlite:///{blocker / 'sub' / 'telecare.db'}"))


@pytest.mark.parametrize("command", [("db", "current"), ("db", "upgrade")], ids=" ".join)
def test_a_database_that_does_not_answer_is_a_sentence(command: tuple[str, ...], tmp_path: Path) -> None:
    result = telecare(*command, env={"TELECARE_DB_URL": "postgresql+psycopg://telecare:pw@127.0.0.1:1/telecare"},
                      cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "127.0.0.1" in result.stderr and ":pw@" not in result.stderr, "named, without its password"
