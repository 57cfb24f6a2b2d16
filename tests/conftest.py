"""Shared fixtures: real Mosquitto and VictoriaMetrics servers, and an operational database URL.

* ``mosquitto``: a started :class:`bench.services.Mosquitto` in ``tmp_path / "mosquitto"``, on a free port;
  ``.url`` is ``mqtt://127.0.0.1:<port>``; ``.restart()`` keeps port and persistence. Stopped at teardown.
* ``victoria``: a started :class:`bench.services.VictoriaMetrics` in ``tmp_path / "victoria"``; ``.url`` is
  ``http://127.0.0.1:<port>``; ``.export(match)`` / ``.count(match)`` read back what was written.
* ``db_url``: a SQLAlchemy URL, parametrised: ``sqlite`` (a file in ``tmp_path``) and ``postgresql`` (a fresh
  database ``telecare_test_<random>``, dropped afterwards). The PostgreSQL admin URL defaults to
  ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` and can be overridden with the environment
  variable ``TELECARE_TEST_PG_URL``. When PostgreSQL is not reachable the ``postgresql`` case is skipped,
  with the reason.

Markers: ``@pytest.mark.slow`` (declared in pyproject.toml) marks end-to-end tests that start several
processes. Run everything with ``bash .ci/test``; skip those with ``bash .ci/test -m "not slow"``. Those
modules are collected first (``pytest_collection_modifyitems``), so that pytest-xdist starts them first.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bench.services import Mosquitto, VictoriaMetrics

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL_ENV = "TELECARE_TEST_PG_URL"

# Why PostgreSQL could not be reached, once per session, so each test does not wait for a connect timeout.
_pg_unreachable: str | None = None
_pg_checked = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of slow tests first, then the others by their number of tests, each module's tests in their
    order. .ci/test spreads whole modules over pytest-xdist's workers in this order (``--dist loadscope
    --no-loadscope-reorder``): xdist's own order, by number of tests alone, started the modules of a few long
    tests (the demo, the failover fleet, the README's walk-through: a minute or more each) last, and the suite
    waited for them after every other worker had finished."""
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def weight(module: list[pytest.Item]) -> tuple[bool, int]:
        return (not any(item.get_closest_marker("slow") for item in module), -len(module))

    items[:] = [item for module in sorted(by_module.values(), key=weight) for item in module]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics(tmp_path / "victoria") as vm:
        yield vm


def _pg_admin_url() -> str:
    return os.environ.get(PG_URL_ENV) or DEFAULT_PG_ADMIN_URL


def _libpq(url: str) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) -> libpq conninfo URL (``postgresql://...``)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_connect(admin_url: str):
    import psycopg

    global _pg_unreachable, _pg_checked
    if _pg_checked and _pg_unreachable:
        pytest.skip(_pg_unreachable)
    try:
        conn = psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=3)
    except Exception as exc:
        _pg_checked = True
        _pg_unreachable = (
            f"PostgreSQL not reachable at {admin_url} ({type(exc).__name__}: {str(exc).strip()}); "
            f"start it, or set {PG_URL_ENV} to an admin URL (postgresql+psycopg://user@host:port/postgres) "
            f"of a server where that user may CREATE DATABASE"
        )
        pytest.skip(_pg_unreachable)
    _pg_checked = True
    return conn


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'telecare.db'}"
        return

    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin_url = _pg_admin_url()
    name = f"telecare_test_{secrets.token_hex(6)}"
    with _pg_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(admin_url).set(database=name)
    if url.drivername == "postgresql":  # SQLAlchemy's default driver would be psycopg2, not installed
        url = url.set(drivername="postgresql+psycopg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _pg_connect(admin_url) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``'s database, migrated to head."""
    from gateway.db.migrate import upgrade
    from gateway.db.session import make_engine

    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
