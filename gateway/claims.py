"""Who cares for a home, and since when: claim codes, claims, releases and the care epoch.

A home's data belong to the organisation that cared for it when they were made. Each claim opens a
:class:`~gateway.db.models.HomeClaim` period and each release closes it, so an organisation reads a home's
readings and dead letters only inside its own periods, and its alerts (stamped with it when raised) for good.

Claiming needs proof: the home's claim code (from its description, or issued by the operator with
``telecare homes claim-code``), or the operator's assignment (``telecare homes claim``). Only the code's sha256 is
kept, as for API keys: an issued code carries 144 random bits, and a described one must be long enough
(:data:`MIN_CLAIM_CODE_LEN`) not to be guessed; every wrong try is in the audit trail as a denied attempt.

``care_epoch`` is bumped whenever the person cared for changes (a claim, a release, a resident added or removed):
the detectors start learning again rather than judge a new person by someone else's routine.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.alerting.service import AUTO, resolve
from gateway.alerting.states import AlertState
from gateway.db.models import Alert, Home, HomeClaim

__all__ = ["MAX_CLAIM_CODE_LEN", "MIN_CLAIM_CODE_LEN", "ClaimError", "check_claim_code", "claim_code_matches",
           "claim_home", "hash_claim_code", "issue_claim_code", "new_care", "release_home",
           "set_claim_code"]

MIN_CLAIM_CODE_LEN = 12
MAX_CLAIM_CODE_LEN = 128


class ClaimError(ValueError):
    """A claim that cannot be made, with a sentence for the operator or the API's caller."""


def hash_claim_code(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def check_claim_code(code: str) -> str:
    """The code as it is kept (stripped), or :class:`ClaimError` saying why it cannot be one."""
    code = code.strip()
    if not MIN_CLAIM_CODE_LEN <= len(code) <= MAX_CLAIM_CODE_LEN:
        raise ClaimError(f"a claim code has {MIN_CLAIM_CODE_LEN} to {MAX_CLAIM_CODE_LEN} characters (this one has "
                         f"{len(code)}): a short one could be guessed")
    if not code.isprintable():
        raise ClaimError("a claim code must not contain control characters")
    return code


def set_claim_code(home: Home, code: str) -> None:
    """Keep the hash of ``code`` as the proof of a claim, replacing any earlier code."""
    home.claim_code_hash = hash_claim_code(check_claim_code(code))


def issue_claim_code(home: Home) -> str:
    """A new random code for ``home`` (replacing any earlier one), to be shown once: only its hash is kept."""
    code = secrets.token_urlsafe(18)  # 24 characters, 144 bits
    set_claim_code(home, code)
    return code


def claim_code_matches(home: Home, code: str | None) -> bool:
    """Whether ``code`` is the home's claim code (constant time; a home without one matches nothing)."""
    given = hash_claim_code(code or "")
    if not code or home.claim_code_hash is None:
        hmac.compare_digest(given, "0" * len(given))  # the same work as a wrong code: no timing difference
        return False
    return hmac.compare_digest(given, home.claim_code_hash)


def new_care(home: Home) -> None:
    """The person cared for in ``home`` changed: what the detectors learned before is no longer theirs."""
    home.care_epoch = (home.care_epoch or 0) + 1


def claim_home(session: Session, home: Home, organisation_id: int, at: datetime) -> HomeClaim:
    """Give ``home`` to the organisation from ``at``: a new claim period, the code used up, a new care epoch.

    The caller checks the proof (a code, or the operator's say-so) and that the home is free, and commits."""
    if home.organisation_id is not None:
        raise ClaimError(f"home {home.id!r} is claimed already (organisation {home.organisation_id}): it must be "
                         "released first")
    _close_periods(session, home.id, at)  # none should be open; a stale one must not overlap the new one
    claim = HomeClaim(home_id=home.id, organisation_id=organisation_id, claimed_at=at)
    session.add(claim)
    home.organisation_id = organisation_id
    home.claim_code_hash = None  # single use: the code on the hub is spent
    new_care(home)
    session.flush()
    return claim


def release_home(session: Session, home: Home, at: datetime) -> None:
    """End the organisation's care of ``home`` at ``at`` (its history stays its own). The caller commits.

    Its open alerts are resolved: the organisation can no longer act on them, and the next organisation must not
    inherit them (a condition still there is raised again, as theirs)."""
    open_alerts = select(Alert.id).where(Alert.home_id == home.id, Alert.state != AlertState.RESOLVED)
    for alert_id in list(session.scalars(open_alerts)):
        resolve(session, alert_id, AUTO, "the home was released by its organisation", at)
    _close_periods(session, home.id, at)
    home.organisation_id = None
    new_care(home)
    session.flush()


def _close_periods(session: Session, home_id: str, at: datetime) -> None:
    for claim in session.scalars(select(HomeClaim).where(HomeClaim.home_id == home_id,
                                                         HomeClaim.released_at.is_(None))):
        claim.released_at = max(at, claim.claimed_at)


def current_claim_start(session: Session, home_id: str, organisation_id: int) -> datetime | None:
    """When the organisation's current claim of the home began; None when it holds none."""
    return session.scalar(claim_start_query(home_id, organisation_id))


def claim_start_query(home_id: str | ColumnElement[str] | InstrumentedAttribute[str],
                      organisation_id: int) -> Select[datetime]:
    """:func:`current_claim_start` as a query; with a column for ``home_id``, a subquery another query can carry."""
    return select(func.max(HomeClaim.claimed_at)).where(
        HomeClaim.home_id == home_id, HomeClaim.organisation_id == organisation_id, HomeClaim.released_at.is_(None))
