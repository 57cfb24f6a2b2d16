"""The operational database: models, engines and migrations."""

from gateway.db.base import Base, UTCDateTime
from gateway.db.migrate import upgrade
from gateway.db.models import DeadLetter, Device, Home, Organisation
from gateway.db.session import make_engine, make_session_factory, normalise_url

__all__ = [
    "Base",
    "DeadLetter",
    "Device",
    "Home",
    "Organisation",
    "UTCDateTime",
    "make_engine",
    "make_session_factory",
    "normalise_url",
    "upgrade",
]
