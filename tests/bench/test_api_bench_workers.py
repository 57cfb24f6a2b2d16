"""What serving the API with several processes needs (``telecare api --workers N``), and the shared helpers the
benchmark's figures rest on: a page and its total in one query, password hashing bounded across processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from typer.testing import CliRunner

from api.pagination import PageParams, paginate
from api.security import hashing_slots
from telecare.cli import app


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("TELECARE_")]:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_several_processes_are_refused_on_sqlite_with_a_sentence(clean_env: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELECARE_DB_URL", f"sqlite:///{clean_env / 'api.db'}")
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: pytest.fail("must not serve"))
    result = CliRunner().invoke(app, ["api", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr and "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize("workers", ["0", "two"])
def test_a_bad_number_of_processes_is_refused(workers: str, clean_env: Path) -> None:
    result = CliRunner().invoke(app, ["api", "--workers", workers])
    assert result.exit_code == 2 and "--workers" in result.stderr


def test_several_processes_each_build_the_app_from_the_environment(clean_env: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://telecare@db.invalid/telecare"
    monkeypatch.setenv("TELECARE_DB_URL", url)
    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr("gateway.db.migrate.upgrade", lambda u: calls.append(("upgrade", {"url": u})))
    monkeypatch.setattr("uvicorn.run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.delenv("TELECARE_API_WORKERS", raising=False)
    result = CliRunner().invoke(app, ["api", "--workers", "3", "--port", "8124"])
    assert result.exit_code == 0, result.output
    assert calls == [("upgrade", {"url": url}), ("telecare.cli_api:app_from_environment", {
        "factory": True, "host": "127.0.0.1", "port": 8124, "workers": 3, "log_level": "info"})]
    assert os.environ["TELECARE_API_WORKERS"] == "3"  # inherited by the processes: api.security reads it
    monkeypatch.delenv("TELECARE_API_WORKERS")


def test_the_factory_builds_the_api_from_the_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from telecare.cli_api import app_from_environment

    monkeypatch.setenv("TELECARE_DB_URL", f"sqlite:///{clean_env / 'api.db'}")
    api = app_from_environment()
    assert api.state.settings.database_url.endswith("api.db")
    assert "/alerts" in api.openapi()["paths"]


@pytest.mark.parametrize(("cores", "processes", "slots"), [
    (2, None, 1), (8, None, 4), (8, "2", 2), (8, "3", 1), (2, "2", 1), (16, "4", 2), (8, "junk", 4), (None, None, 1),
])
def test_password_hashing_at_once_is_half_the_cores_across_processes(cores: int | None, processes: str | None,
                                                                      slots: int) -> None:
    assert hashing_slots(cores, processes) == slots


# --- a page and its total in one query ------------------------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    group: Mapped[str] = mapped_column(String(8))


@pytest.fixture
def session() -> Session:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    s = Session(engine)
    s.add_all([_Row(id=i, group="ab"[i % 2]) for i in range(1, 8)])
    s.commit()
    return s


def _statements(session: Session) -> list[str]:
    seen: list[str] = []
    from sqlalchemy import event

    event.listen(session.get_bind(), "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: seen.append(statement))
    return seen


@pytest.mark.parametrize(("limit", "offset", "ids", "next_offset"), [
    (3, 0, [1, 2, 3], 3), (3, 6, [7], None), (10, 0, [1, 2, 3, 4, 5, 6, 7], None)])
def test_a_page_comes_with_its_total_in_one_query(session: Session, limit: int, offset: int, ids: list[int],
                                                  next_offset: int | None) -> None:
    seen = _statements(session)
    page = paginate(session, select(_Row).order_by(_Row.id), PageParams(limit, offset), lambda r: r.id)
    assert (page.items, page.total, page.next_offset) == (ids, 7, next_offset)
    assert len(seen) == 1


def test_a_page_past_the_end_is_empty_and_still_counted(session: Session) -> None:
    page = paginate(session, select(_Row).order_by(_Row.id), PageParams(5, 20), lambda r: r.id)
    assert (page.items, page.total, page.next_offset) == ([], 7, None)
    empty = paginate(session, select(_Row).where(_Row.id > 100), PageParams(5, 0), lambda r: r.id)
    assert (empty.items, empty.total) == ([], 0)


def test_a_distinct_statement_is_counted_by_its_distinct_rows(session: Session) -> None:
    page = paginate(session, select(_Row.group).distinct().order_by(_Row.group), PageParams(1, 0), lambda g: g)
    assert (page.items, page.total, page.next_offset) == (["a"], 2, 1)


# --- two real server processes on PostgreSQL ------------------------------------------------------------------


def _processes_under(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
    tree, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for child, p in parents.items():
            if p == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return tree


def test_two_processes_share_the_login_throttle_and_logouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request on its own connection, so the processes take turns: what one learns the other knows."""
    import subprocess
    import sys
    import time

    import httpx

    from bench import api as bench
    from gateway.db import migrate
    pg_url = os.environ.get("TELECARE_TEST_PG_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    unreachable = bench.postgres_unreachable(pg_url)
    if unreachable:
        pytest.skip(unreachable)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TELECARE_")]:
        monkeypatch.delenv(name, raising=False)
    with bench.database(pg_url, tmp_path) as url:
        migrate.upgrade(url)
        monkeypatch.setenv("TELECARE_DB_URL", url)
        monkeypatch.setenv("TELECARE_DATA_DIR", str(tmp_path))
        added = CliRunner().invoke(app, ["users", "add", "cora@example.org", "--name", "Cora", "--role", "coordinator",
                                         "--organisation", "North", "--password-stdin"], input="a long passphrase\n")
        assert added.exit_code == 0, added.output
        port = bench.free_port()
        log = (tmp_path / "api.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "telecare", "api", "--workers", "2", "--port", str(port),
                                   "--log-level", "warning"], env=dict(os.environ), stdout=log,
                                  stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/docs", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
                time.sleep(0.3)
            assert len(_processes_under(server.pid)) >= 2  # the workers (and multiprocessing's helper)

            def login(password: str) -> httpx.Response:
                return httpx.post(f"{base}/auth/token", data={"username": "cora@example.org", "password": password},
                                  timeout=30)

            token = login("a long passphrase").json()["access_token"]
            # Five wrong passwords are free, wherever they land; the next is held back by both processes.
            codes = [login("wrong password!").status_code for _ in range(7)]
            assert codes[:5] == [401] * 5 and 429 in codes[5:], codes
            assert login("a long passphrase").status_code == 429  # the right one does not jump the queue

            me = [httpx.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
                  for _ in range(4)]
            assert [r.status_code for r in me] == [200] * 4
            assert httpx.post(f"{base}/auth/logout", headers={"Authorization": f"Bearer {token}"},
                              timeout=30).status_code == 204
            after = [httpx.get(f"{base}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
                     for _ in range(6)]
            assert [r.status_code for r in after] == [401] * 6  # in every process at once
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
