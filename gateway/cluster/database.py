"""The operational database cluster mode needs: PostgreSQL, shared by every worker."""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from gateway.cluster.errors import ClusterConfigError
from gateway.db.session import normalise_url

__all__ = ["require_postgresql"]


def require_postgresql(database_url: str | URL) -> None:
    """Nothing if ``database_url`` is a PostgreSQL database; else :class:`ClusterConfigError` with a sentence.

    The composition root calls it before starting a worker in cluster mode: the leases that give each partition
    one owner live in the operational database, which every worker, on every machine, must share; a SQLite file
    belongs to one machine."""
    try:
        backend = normalise_url(database_url).get_backend_name()
    except ArgumentError:
        # The text is not repeated: a malformed URL may still hold a password.
        raise ClusterConfigError("cluster mode (TELECARE_NATS_URL) needs PostgreSQL as the operational database, "
                                 "and TELECARE_DB_URL is not a database URL: set it to "
                                 "postgresql://user:password@host:5432/telecare") from None
    if backend != "postgresql":
        described = "a SQLite file (the default)" if backend == "sqlite" else f"a {backend} database"
        raise ClusterConfigError(f"cluster mode (TELECARE_NATS_URL) needs PostgreSQL as the operational database, "
                                 f"shared by every worker: TELECARE_DB_URL is {described}; set it to "
                                 f"postgresql://user:password@host:5432/telecare")
