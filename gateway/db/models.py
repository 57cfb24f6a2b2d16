"""The operational database: organisations, homes and devices discovered over MQTT, dead letters.

Times are timezone-aware UTC datetimes on every backend (:class:`UTCDateTime`). A home's id is the one in its
MQTT topics; a device is identified by its zigbee2mqtt friendly name within its home.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Column sizes, shared with the code that clips values before writing them (PostgreSQL enforces them).
HOME_ID_LEN = 64
NAME_LEN = 200
DEVICE_NAME_LEN = 255
IEEE_LEN = 32
MODEL_LEN = 100
DESCRIPTION_LEN = 255
SHORT_LEN = 32
ROOM_LEN = 64
TIMEZONE_LEN = 64
DEFAULT_TIMEZONE = "Europe/London"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Writes require an aware datetime (a naive one is a bug, not a guess to make) and store it in UTC; reads
    return aware UTC values whether the backend keeps the offset (PostgreSQL) or not (SQLite).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the operational database stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Organisation(Base):
    """A care provider. Minimal for now: the API adds users, recipients and claims."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    homes: Mapped[list[Home]] = relationship(back_populates="organisation")


class Home(Base):
    """A home, discovered from its MQTT topics or imported from its description; unassigned until claimed."""

    __tablename__ = "homes"

    id: Mapped[str] = mapped_column(String(HOME_ID_LEN), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True)
    timezone: Mapped[str] = mapped_column(String(TIMEZONE_LEN), default=DEFAULT_TIMEZONE,
                                          server_default=DEFAULT_TIMEZONE)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    hub_online: Mapped[bool | None] = mapped_column(Boolean)
    hub_changed_at: Mapped[datetime | None]

    organisation: Mapped[Organisation | None] = relationship(back_populates="homes")
    devices: Mapped[list[Device]] = relationship(back_populates="home", cascade="all, delete-orphan",
                                                 passive_deletes=True, order_by="Device.name")


class Device(Base):
    """A zigbee2mqtt device of a home, keyed by its friendly name.

    Discovered facts (IEEE address, model, kind, battery, last_seen, availability) come from the gateway's
    registry; room and role come from the home's description only.
    """

    __tablename__ = "devices"
    # The unique (home_id, name) index also serves "the devices of a home".
    __table_args__ = (UniqueConstraint("home_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(DEVICE_NAME_LEN))
    ieee_address: Mapped[str | None] = mapped_column(String(IEEE_LEN))
    model: Mapped[str | None] = mapped_column(String(MODEL_LEN))
    vendor: Mapped[str | None] = mapped_column(String(MODEL_LEN))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_LEN))
    power_source: Mapped[str | None] = mapped_column(String(SHORT_LEN))
    kind: Mapped[str | None] = mapped_column(String(SHORT_LEN))
    room: Mapped[str | None] = mapped_column(String(ROOM_LEN))
    role: Mapped[str | None] = mapped_column(String(SHORT_LEN))
    battery: Mapped[float | None] = mapped_column(Float)
    linkquality: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    available: Mapped[bool | None] = mapped_column(Boolean)
    availability_changed_at: Mapped[datetime | None]
    # Whether its payloads carry last_seen (the hub has advanced.last_seen set); None until a state arrives.
    sends_last_seen: Mapped[bool | None] = mapped_column(Boolean)

    home: Mapped[Home] = relationship(back_populates="devices")


class DeadLetter(Base):
    """A message that broke the MQTT contract, kept for an operator to read. Its home may not exist."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        # A journal entry is stored once even if its batch is applied twice (journal_seq alone could repeat
        # if the spool were ever recreated; with the receipt time it cannot in practice).
        UniqueConstraint("journal_seq", "received_at"),
        Index("ix_dead_letters_reason_received_at", "reason", "received_at"),
        Index("ix_dead_letters_home_id_received_at", "home_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    journal_seq: Mapped[int | None] = mapped_column(BigInteger)
    home_id: Mapped[str | None] = mapped_column(String(HOME_ID_LEN))
    device: Mapped[str | None] = mapped_column(String(DEVICE_NAME_LEN))
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(SHORT_LEN))
    detail: Mapped[str] = mapped_column(Text)
    # UTF-8 payloads as they were; anything else backslash-escaped by the gateway.
    payload: Mapped[str] = mapped_column(Text)
