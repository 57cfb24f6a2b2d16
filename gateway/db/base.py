"""What every table of the operational database shares: the declarative base, UTC times on every backend, the
naming convention of constraints, and the column sizes the code clips values to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Dialect, MetaData
from sqlalchemy.orm import DeclarativeBase
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
CLAIM_CODE_HASH_LEN = 64  # sha256, hex

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
