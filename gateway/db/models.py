"""The operational database: organisations, homes and devices discovered over MQTT, dead letters.

Times are timezone-aware UTC datetimes on every backend (:class:`UTCDateTime`). A home's id is the one in its
MQTT topics; a device is identified by its zigbee2mqtt friendly name within its home.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# The sizes are imported from here by the code that clips values before writing them.
from gateway.db.base import (
    CLAIM_CODE_HASH_LEN,
    DEFAULT_TIMEZONE,
    DESCRIPTION_LEN,
    DEVICE_NAME_LEN,
    HOME_ID_LEN,
    IEEE_LEN,
    MODEL_LEN,
    NAME_LEN,
    ROOM_LEN,
    SHORT_LEN,
    TIMEZONE_LEN,
    Base,
    utcnow,
)

# The care team's record on an alert lives in its own module (this one stays readable); imported here so that
# importing the models registers its tables too (Alembic, create_all).
from gateway.db.care_record import AlertAttendance as AlertAttendance
from gateway.db.care_record import AlertNote as AlertNote
from gateway.db.cluster import ClusterDeviceState as ClusterDeviceState
from gateway.db.cluster import ClusterStream as ClusterStream
from gateway.db.cluster import ClusterWorker as ClusterWorker
from gateway.db.cluster import PartitionLease as PartitionLease

# Retention defaults (docs/production.md, "Retention and privacy"): UK councils commonly keep care records 8 years
# after care ends; the audit trail is kept as long. 8 years of 365.25 days.
CARE_RECORD_RETENTION_DAYS = 2922
AUDIT_RETENTION_DAYS = 2922


class Organisation(Base):
    """A care provider, and how long it keeps what it is answerable for (``gateway/purge.py`` applies it)."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Alerts (with their notifications and timelines) and readings are kept this long after care ended: the
    # organisation's claim on the home released, or the resident erased.
    care_record_retention_days: Mapped[int] = mapped_column(
        Integer, default=CARE_RECORD_RETENTION_DAYS, server_default=str(CARE_RECORD_RETENTION_DAYS))
    audit_retention_days: Mapped[int] = mapped_column(
        Integer, default=AUDIT_RETENTION_DAYS, server_default=str(AUDIT_RETENTION_DAYS))
    # Dead letters of the organisation's homes; None: the gateway's global setting (dead_letter_max_age_days),
    # which also applies when this is longer (an organisation may shorten it, not lengthen it).
    dead_letter_retention_days: Mapped[int | None] = mapped_column(Integer)

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
    # The hash of the code that proves a claim (api.security's key hashing); None: only an operator can assign it.
    claim_code_hash: Mapped[str | None] = mapped_column(String(CLAIM_CODE_HASH_LEN))
    # Bumped whenever the person cared for changes (a claim, a release, a resident created or removed): the
    # detectors discard a routine learned under another epoch rather than judge a new person by it.
    care_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    organisation: Mapped[Organisation | None] = relationship(back_populates="homes")
    devices: Mapped[list[Device]] = relationship(back_populates="home", cascade="all, delete-orphan",
                                                 passive_deletes=True, order_by="Device.name")


class HomeClaim(Base):
    """A period during which an organisation cared for a home: its data of that period are that organisation's.

    ``released_at`` None: the current claim. Rows are kept after release so the old organisation keeps reading its
    own history and the new one sees nothing from before its claim.
    """

    __tablename__ = "home_claims"
    __table_args__ = (Index("ix_home_claims_home_id_claimed_at", "home_id", "claimed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    claimed_at: Mapped[datetime]
    released_at: Mapped[datetime | None]


class EndedCare(Base):
    """A resident's care that ended while the organisation kept the home (the resident removed): the alerts and
    readings of ``[started_at, ended_at]`` are kept for the organisation's care-record retention from
    ``ended_at``, then purged (``gateway/purge.py``). No foreign key to the resident: it outlives them."""

    __tablename__ = "ended_care"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]


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


# --- Alerting: residents, who is alerted and how, alerts and their outbox ------------------------------------------

PUSHOVER_KEY_LEN = 64
ALERT_KIND_LEN = 32
STATE_LEN = 16
RECEIPT_LEN = 64
OUTCOME_PENDING = text("outcome IS NOT NULL AND outcome_learned_at IS NULL")


class Resident(Base):
    """The person who lives (alone) in a home; the home's time zone is theirs."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    home: Mapped[Home] = relationship()
    steps: Mapped[list[EscalationStep]] = relationship(
        back_populates="resident", cascade="all, delete-orphan", passive_deletes=True,
        order_by="EscalationStep.position")


class Absence(Base):
    """A planned absence (holiday, hospital): the detectors do not expect activity meanwhile."""

    __tablename__ = "absences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]  # None: open-ended, until someone ends it
    reason: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recipient(Base):
    """Someone who is alerted (a carer, a neighbour, a monitoring centre); apart from the people who log in."""

    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    pushover_user_key: Mapped[str] = mapped_column(String(PUSHOVER_KEY_LEN))
    pushover_device: Mapped[str | None] = mapped_column(String(PUSHOVER_KEY_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EscalationStep(Base):
    """One step of a resident's escalation chain: who, and how long they have to acknowledge."""

    __tablename__ = "escalation_steps"
    __table_args__ = (UniqueConstraint("resident_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    # No cascade: deleting someone who is in a chain must be a decision, not a silently shorter chain.
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    wait_min: Mapped[int] = mapped_column(Integer)

    resident: Mapped[Resident] = relationship(back_populates="steps")
    recipient: Mapped[Recipient] = relationship()


class Alert(Base):
    """An alert and where it is in its lifecycle: raised → notified → acknowledged → resolved.

    At most one alert per (home, kind, subject) is open (not resolved): repeats update it. ``escalation_step`` is
    the index in the chain last alerted (the chain's length once it is exhausted and being repeated).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_open_key", "home_id", "kind", "subject", unique=True,
              sqlite_where=text("state != 'resolved'"), postgresql_where=text("state != 'resolved'")),
        Index("ix_alerts_home_id_raised_at", "home_id", "raised_at"),
        # The few outcomes the detectors have not learned from yet (gateway/alerting/outcomes.py).
        Index("ix_alerts_outcome_pending", "id", sqlite_where=OUTCOME_PENDING, postgresql_where=OUTCOME_PENDING),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)
    # The organisation that cared for the home when the alert was raised: its alert for good, whoever claims the
    # home later. None: raised while the home was unassigned.
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(ALERT_KIND_LEN))
    subject: Mapped[str] = mapped_column(String(DEVICE_NAME_LEN), default="")
    severity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(STATE_LEN), index=True)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raised_at: Mapped[datetime]  # event time: when the threshold was crossed
    updated_at: Mapped[datetime]
    repeat_count: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(NAME_LEN))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(NAME_LEN))  # "auto" or a person's name
    resolution_note: Mapped[str | None] = mapped_column(Text)
    escalation_step: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    # What the person who dealt with it found (analytics.alerts.Outcome), recorded on resolving or afterwards
    # (an alert cleared by itself); corrected at will. None: not recorded.
    outcome: Mapped[str | None] = mapped_column(String(SHORT_LEN))
    outcome_note: Mapped[str | None] = mapped_column(Text)
    outcome_by: Mapped[str | None] = mapped_column(String(NAME_LEN))
    outcome_at: Mapped[datetime | None]
    # When the detectors were given the outcome, and which outcome they were given (a correction sets the time
    # back to None so the new outcome is given too, and the detectors can tell what they were told before).
    outcome_learned_at: Mapped[datetime | None]
    outcome_learned: Mapped[str | None] = mapped_column(String(SHORT_LEN))


class AlertLog(Base):
    """One line of an alert's timeline: what happened, when (gateway clock), who did it."""

    __tablename__ = "alert_log"
    __table_args__ = (Index("ix_alert_log_alert_id_at", "alert_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    what: Mapped[str] = mapped_column(String(SHORT_LEN))
    who: Mapped[str | None] = mapped_column(String(NAME_LEN))
    detail: Mapped[str] = mapped_column(Text, default="")


class Notification(Base):
    """The outbox: a message to one recipient, written in the alert's transaction and sent by the dispatcher.

    ``state``: pending → sending → sent, or failed (Pushover refused it), or cancelled (no longer needed).
    ``receipt_state`` follows an emergency message's receipt: open → acknowledged | expired | cancel (to be
    cancelled at Pushover) → cancelled.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_notifications_receipt_state", "receipt_state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(STATE_LEN))
    priority: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(NAME_LEN))
    message: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(STATE_LEN))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(String(RECEIPT_LEN))
    receipt_state: Mapped[str | None] = mapped_column(String(STATE_LEN))
    receipt_checked_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class DetectorCheckpoint(Base):
    """A home's detector state, pickled by the detector consumer, with the journal position it reflects.

    ``baseline`` is what the detectors have learned, for people to read (``HomeDetector.baseline()``), stored as
    JSON beside the pickle so that the API reads data and never unpickles; ``baseline_at`` is the detectors' (event)
    time when it was taken.
    """

    __tablename__ = "detector_checkpoints"

    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), primary_key=True)
    journal_seq: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    saved_at: Mapped[datetime]
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    baseline_at: Mapped[datetime | None]
    # The home's care_epoch when this state was learned: a different epoch means another person's routine.
    care_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# --- The API: people who log in, their tokens and API keys, the audit log --------------------------------------------

EMAIL_LEN = 254
ROLE_LEN = 16
HASH_LEN = 255
TOKEN_HASH_LEN = 64  # sha256, hex
KEY_PREFIX_LEN = 16
AUDIT_ACTION_LEN = 32
AUDIT_RESOURCE_LEN = 64
CLIENT_ADDRESS_LEN = 64  # an IPv6 address with a zone fits


class User(Base):
    """Someone who logs in to the API: an organisation's admin, coordinator or carer.

    A carer may also be a recipient (``recipient_id``): they see the residents whose chain names that recipient.
    The email is the login name, unique across the deployment (stored lower-cased).
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(EMAIL_LEN), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    role: Mapped[str] = mapped_column(String(ROLE_LEN))
    password_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id", ondelete="SET NULL"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthToken(Base):
    """A bearer token issued at login. Only its sha256 is stored; it ends at ``expires_at`` or when revoked."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LEN), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ApiKey(Base):
    """A key for an integration, created by an admin and shown once; only its sha256 and a prefix are kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    role: Mapped[str] = mapped_column(String(ROLE_LEN))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_LEN))  # to recognise a key in lists, not to find it
    key_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LEN), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The active admin answerable for the key: its creator until reassigned. The key works only while its owner
    # is an active admin of the organisation (a key must not outlive the person who vouched for it).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who viewed or changed what about a resident (or the organisation's setup), and when.

    No foreign keys to the resident, user or key: the trail must outlive what it is about. ``actor`` keeps the
    name as it was.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_organisation_id_at", "organisation_id", "at"),
        Index("ix_audit_log_resident_id_at", "resident_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    user_id: Mapped[int | None] = mapped_column(Integer)
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(NAME_LEN))
    action: Mapped[str] = mapped_column(String(AUDIT_ACTION_LEN))
    resource: Mapped[str] = mapped_column(String(AUDIT_RESOURCE_LEN))
    resident_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")
    # The address the request came from (as resolved behind trusted proxies); None for rows older than it.
    client_address: Mapped[str | None] = mapped_column(String(CLIENT_ADDRESS_LEN))
    # How many events the row stands for: repeated denials and failed logins within a minute share one row.
    occurrences: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class LoginThrottleEntry(Base):
    """One count of the login throttle (``api/throttle.py``), shared by the API processes of one database.

    ``key`` is the sha256 of what is counted (an address and account pair, an address, an account): bounded, and
    no email or address in clear. Rows past ``expires_at`` count for nothing and are deleted as new ones come.
    """

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(TOKEN_HASH_LEN), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime]  # the start of the counting window (address and account counts)
    last_failure: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]  # the address logged in to the account (pair counts)
    expires_at: Mapped[datetime] = mapped_column(index=True)
