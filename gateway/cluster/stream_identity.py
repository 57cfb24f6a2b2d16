"""Which readings stream the detectors' positions belong to.

A detector checkpoint records the last entry its home's detectors saw, numbered by the message's stream sequence
(:func:`gateway.cluster.partition.entry_seq`), and entries a checkpoint covers are skipped. A stream deleted and
made again under the same name starts its sequence at 1: without a reset, every home's detectors would skip the new
stream's messages until it caught up with the old numbers, blind meanwhile. So the workers record the stream they
use by its creation time (:class:`~gateway.db.cluster.ClusterStream`), and the first worker to find another one
resets the positions; what the detectors learned (their state) is kept.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from gateway.db.cluster import ClusterStream
from gateway.db.models import DetectorCheckpoint

__all__ = ["adopt_stream"]

log = logging.getLogger(__name__)


def adopt_stream(session: Session, name: str, created_at: datetime) -> bool:
    """Record ``name`` (created at ``created_at``) as the stream the workers use; when it replaces another of that
    name, reset every detector checkpoint's position to 0 and return True. Runs in the caller's transaction; the
    row is locked, so workers starting together reset once."""
    session.execute(insert(ClusterStream).values(name=name, created_at=created_at)
                    .on_conflict_do_nothing(index_elements=[ClusterStream.name]))
    row = session.execute(select(ClusterStream).where(ClusterStream.name == name).with_for_update()).scalar_one()
    if row.created_at == created_at:
        return False
    reset = session.execute(update(DetectorCheckpoint).where(DetectorCheckpoint.journal_seq > 0)
                            .values(journal_seq=0).execution_options(synchronize_session=False))
    log.warning("the readings stream %s was made again (created %s, the workers last used one created %s): the "
                "detectors' positions of %d home(s) start again from its first message", name,
                created_at.isoformat(), row.created_at.isoformat(), getattr(reset, "rowcount", 0))
    row.created_at = created_at
    return True
