"""The care team's record on an alert (issue 14): notes, and who is going round.

Beside the alert's own outcome (``Alert.outcome``, the shared vocabulary of DESIGN.md "Outcomes"), these say what
the people who dealt with it wrote and did:

* :class:`AlertNote`: a note, append-only (a correction is another note: a care record is not rewritten), with
  its author as they were named then (``author``) and their account (``author_user_id``, None once deleted).
* :class:`AlertAttendance`: who said they are going round, and when they expect to arrive. At most one is
  current per alert (``cleared_at`` None); setting another clears the current one, and clearing keeps the row, so
  the record shows everyone who went round and when.

Both go with their alert (``ON DELETE CASCADE``): the purge and a resident's erasure delete them with it.

The queries below are the ones :mod:`gateway.alerting.care_record` (the service that writes the record) needs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.db.base import NAME_LEN, Base

__all__ = ["NOTE_TEXT_LEN", "AlertAttendance", "AlertNote", "attendance_count", "current_attendance", "note_count"]

NOTE_TEXT_LEN = 2000  # what the API accepts (api.schemas.common.Note); Text in the database
_CURRENT = text("cleared_at IS NULL")


class AlertNote(Base):
    """A note on an alert: what someone found, did, or arranged."""

    __tablename__ = "alert_notes"
    __table_args__ = (Index("ix_alert_notes_alert_id_at", "alert_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime]  # the API's clock when it was written
    author: Mapped[str] = mapped_column(String(NAME_LEN))  # the user's (or API key's) name as it was
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    text: Mapped[str] = mapped_column(Text)


class AlertAttendance(Base):
    """Someone going round to the resident: a user of the organisation, or a named person (a neighbour)."""

    __tablename__ = "alert_attendance"
    __table_args__ = (
        Index("ix_alert_attendance_alert_id_said_at", "alert_id", "said_at"),
        # One current attendance per alert.
        Index("uq_alert_attendance_current", "alert_id", unique=True, sqlite_where=_CURRENT,
              postgresql_where=_CURRENT),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LEN))  # who is going: the user's name, or the person named
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    said_at: Mapped[datetime]  # when it was said (the API's clock)
    expected_at: Mapped[datetime | None]  # when they expect to arrive, if they said
    recorded_by: Mapped[str] = mapped_column(String(NAME_LEN))  # who said so (themselves, or a coordinator)
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cleared_at: Mapped[datetime | None]  # None: current
    cleared_by: Mapped[str | None] = mapped_column(String(NAME_LEN))


def note_count(session: Session, alert_id: int) -> int:
    """How many notes the alert has."""
    return session.scalar(select(func.count()).select_from(AlertNote).where(AlertNote.alert_id == alert_id)) or 0


def attendance_count(session: Session, alert_id: int) -> int:
    """How many people have said they were going round for the alert (current or cleared)."""
    return session.scalar(select(func.count()).select_from(AlertAttendance)
                          .where(AlertAttendance.alert_id == alert_id)) or 0


def current_attendance(session: Session, alert_id: int) -> AlertAttendance | None:
    """Who is going round for the alert now, if anyone."""
    return session.scalar(select(AlertAttendance).where(AlertAttendance.alert_id == alert_id,
                                                        AlertAttendance.cleared_at.is_(None)))
