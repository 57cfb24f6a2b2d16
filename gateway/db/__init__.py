"""The operational database: models, engines and migrations."""

from gateway.db.migrate import upgrade
from gateway.db.models import Base, DeadLetter, Device, Home, Organisation, UTCDateTime
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
