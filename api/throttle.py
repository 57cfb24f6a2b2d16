"""Failed logins slow guessing down, by client address and account together, without letting anyone lock the
owner out (issue 12, finding 2: five requests from anywhere used to lock any account for 15 minutes).

Three counts, each answering 429 with ``Retry-After`` (never a lockout that outlasts its back-off):

* **(address, account)**: the first ``free_failures`` wrong passwords cost nothing; after that each one doubles
  the wait before the next attempt from that address for that account (``base_delay``, ``2 * base_delay`` ...,
  at most ``max_delay``). A success clears it.
* **address**: past ``address_failures`` failures within ``window``, across accounts (password spraying), the
  address waits for the window to turn, except for accounts it has logged in to before.
* **account**: past ``account_failures`` failures within ``window`` from all addresses (a distributed attack),
  an address that has never logged in to the account waits ``account_interval`` after each of its failures. An
  address that has (``trusted_for``: the carer's phone, the office) is never held up by other addresses'
  failures, and no address is ever blocked for longer than its own back-off: an attacker elsewhere slows the
  guessing, not the carer.

A right password does not jump the queue: if it did, a 429 for a wrong guess and a 200 for the right one would
tell the attacker which guess was right, and the throttle would slow nothing.

``/auth/token``, the dashboard's login and ``/auth/password`` share the state. It is bounded (``max_entries``
per count, least recently used evicted first) and expiring (a count is dropped once its window and back-off are
over, a known address after ``trusted_for``). On PostgreSQL, where several API processes may share the database,
it is kept there (:class:`SharedLoginThrottle`, table ``login_throttle``), so the allowances hold across processes
and restarts. On SQLite (one API process, one pooled connection that the login's own request may hold) it is
kept in the process: a restart forgets it (:func:`login_throttle_for`).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError
from gateway.backoff import Backoff
from gateway.db.models import LoginThrottleEntry

__all__ = ["LoginThrottle", "SharedLoginThrottle", "TooManyLogins", "login_throttle_for"]

K = TypeVar("K")
V = TypeVar("V")


class TooManyLogins(ApiError):
    status, code = 429, "too_many_requests"


@dataclass(slots=True)
class _Pair:
    """One address's record for one account."""

    failures: int = 0
    last_failure: datetime | None = None
    succeeded_at: datetime | None = None


@dataclass(slots=True)
class _Window:
    """Failures counted in a fixed window (constant memory, unlike a list of times)."""

    start: datetime
    count: int = 0


class _Lru(Generic[K, V]):
    """A dict bounded to ``cap`` entries: the least recently used goes first."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.cap:
            self.entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self.entries)


class LoginThrottle:
    def __init__(self, *, free_failures: int = 5, base_delay: timedelta = timedelta(seconds=15),
                 max_delay: timedelta = timedelta(minutes=10), window: timedelta = timedelta(minutes=15),
                 address_failures: int = 50, account_failures: int = 10,
                 account_interval: timedelta = timedelta(minutes=1), trusted_for: timedelta = timedelta(days=90),
                 max_entries: int = 100_000) -> None:
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._pair_backoff = Backoff(first_s=base_delay.total_seconds(), cap_s=max_delay.total_seconds())
        self.window = window
        self.address_failures = address_failures
        self.account_failures = account_failures
        self.account_interval = account_interval
        self.trusted_for = trusted_for
        self._pairs: _Lru[tuple[str, str], _Pair] = _Lru(max_entries)
        self._addresses: _Lru[str, _Window] = _Lru(max_entries)
        self._accounts: _Lru[str, _Window] = _Lru(max_entries)
        self.max_entries = max_entries
        self._lock = threading.RLock()

    def check(self, address: str, account: str, at: datetime) -> None:
        """Raise :class:`TooManyLogins` while this address must wait before trying this account again."""
        with self._lock:
            wait = self._wait(address, account, at)
        if wait <= timedelta(0):
            return
        seconds = max(1, math.ceil(wait.total_seconds()))
        when = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
        raise TooManyLogins(f"too many failed logins: try again in {when} (or ask an admin of your organisation to "
                            "reset the password)", headers={"Retry-After": str(seconds)})

    def failed(self, address: str, account: str, at: datetime) -> None:
        with self._lock:
            self._evict_expired(at)
            pair = self._pair(address, account)
            if pair.last_failure is not None and at - pair.last_failure >= max(self.window, self.max_delay):
                pair.failures = 0  # an old run of failures, its back-off long over: this one starts afresh
            pair.failures += 1
            pair.last_failure = at
            self._count(self._addresses, address, at)
            self._count(self._accounts, account, at)

    def succeeded(self, address: str, account: str, at: datetime) -> None:
        """The address is known for the account from now on; its own back-off is cleared."""
        with self._lock:
            self._evict_expired(at)
            pair = self._pair(address, account)
            pair.failures, pair.last_failure, pair.succeeded_at = 0, None, at

    def __len__(self) -> int:
        """Entries kept (bounded by ``3 * max_entries``)."""
        return len(self._pairs) + len(self._addresses) + len(self._accounts)

    # --- internals (called under the lock) --------------------------------------------------------------------

    def _wait(self, address: str, account: str, at: datetime) -> timedelta:
        pair = self._pairs.get((address, account))
        known = pair is not None and pair.succeeded_at is not None and at - pair.succeeded_at < self.trusted_for
        until = at
        if pair is not None and pair.last_failure is not None and pair.failures >= self.free_failures:
            until = max(until, pair.last_failure + self._backoff(pair.failures))
        if not known:
            by_address = self._current(self._addresses.get(address), at)
            if by_address is not None and by_address.count >= self.address_failures:
                until = max(until, by_address.start + self.window)
            by_account = self._current(self._accounts.get(account), at)
            if (by_account is not None and by_account.count >= self.account_failures and pair is not None
                    and pair.last_failure is not None):
                until = max(until, pair.last_failure + self.account_interval)
        return until - at

    def _backoff(self, failures: int) -> timedelta:
        return timedelta(seconds=self._pair_backoff.delay_s(failures - self.free_failures + 1))

    def _current(self, window: _Window | None, at: datetime) -> _Window | None:
        return window if window is not None and at - window.start < self.window else None

    def _count(self, table: _Lru[str, _Window], key: str, at: datetime) -> None:
        window = self._current(table.get(key), at)
        if window is None:
            window = _Window(start=at)
            table.put(key, window)
        window.count += 1

    def _pair(self, address: str, account: str) -> _Pair:
        pair = self._pairs.get((address, account))
        if pair is None:
            pair = _Pair()
            self._pairs.put((address, account), pair)
        return pair

    def _expired_pair(self, pair: _Pair, at: datetime) -> bool:
        failing = pair.last_failure is not None and at - pair.last_failure < max(self.window, self.max_delay)
        trusted = pair.succeeded_at is not None and at - pair.succeeded_at < self.trusted_for
        return not failing and not trusted

    def _evict_expired(self, at: datetime, budget: int = 4) -> None:
        """Drop a few stale entries from the least recently used end: amortised, so a table never fills with
        entries that no longer count (a cap alone would evict live ones first under a flood of new keys)."""
        for _ in range(budget):
            if not self._pairs.entries:
                break
            key, pair = next(iter(self._pairs.entries.items()))
            if not self._expired_pair(pair, at):
                break
            del self._pairs.entries[key]
        for table in (self._addresses, self._accounts):
            for _ in range(budget):
                if not table.entries:
                    break
                key2, window = next(iter(table.entries.items()))
                if self._current(window, at) is not None:
                    break
                del table.entries[key2]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class SharedLoginThrottle(LoginThrottle):
    """The same throttle, its counts kept in the database (table ``login_throttle``) for every API process.

    Each call reads the three counts it needs into the in-memory tables, applies :class:`LoginThrottle`'s rules,
    and writes back what changed, in its own short transaction (the request's may be rolled back: a failed login
    is an error answer, and must still count). Two processes recording at the same instant may lose a count (the
    attacker gains a guess, not a lockout). Expired rows are deleted every ``SWEEP_EVERY`` writes, and past
    ``max_entries`` rows the soonest to expire go first."""

    SWEEP_EVERY = 64

    def __init__(self, sessions: sessionmaker[Session], **limits: Any) -> None:
        super().__init__(**limits)
        self._sessions = sessions
        self._writes = 0

    def check(self, address: str, account: str, at: datetime) -> None:
        with self._lock:
            self._load(address, account)
            super().check(address, account, at)

    def failed(self, address: str, account: str, at: datetime) -> None:
        with self._lock:
            self._load(address, account)
            super().failed(address, account, at)
            self._save(address, account, at)

    def succeeded(self, address: str, account: str, at: datetime) -> None:
        with self._lock:
            self._load(address, account)
            super().succeeded(address, account, at)
            self._save(address, account, at, pair_only=True)

    def _keys(self, address: str, account: str) -> tuple[str, str, str]:
        return _digest("pair", address, account), _digest("address", address), _digest("account", account)

    def _load(self, address: str, account: str) -> None:
        pair_key, address_key, account_key = self._keys(address, account)
        with self._sessions() as session:
            rows = {row.key: row for row in session.scalars(
                select(LoginThrottleEntry).where(LoginThrottleEntry.key.in_([pair_key, address_key, account_key])))}
        for table in (self._pairs, self._addresses, self._accounts):
            table.entries.clear()
        if (row := rows.get(pair_key)) is not None:
            self._pairs.put((address, account), _Pair(row.count, row.last_failure, row.succeeded_at))
        if (row := rows.get(address_key)) is not None:
            self._addresses.put(address, _Window(row.started_at, row.count))
        if (row := rows.get(account_key)) is not None:
            self._accounts.put(account, _Window(row.started_at, row.count))

    def _save(self, address: str, account: str, at: datetime, *, pair_only: bool = False) -> None:
        pair_key, address_key, account_key = self._keys(address, account)
        values: list[dict[str, Any]] = []
        pair = self._pairs.get((address, account))
        if pair is not None:
            ends = [at]
            if pair.last_failure is not None:
                ends.append(pair.last_failure + max(self.window, self.max_delay))
            if pair.succeeded_at is not None:
                ends.append(pair.succeeded_at + self.trusted_for)
            values.append({"key": pair_key, "count": pair.failures, "started_at": at,
                           "last_failure": pair.last_failure, "succeeded_at": pair.succeeded_at,
                           "expires_at": max(ends)})
        if not pair_only:
            windows = ((address_key, self._addresses.get(address)), (account_key, self._accounts.get(account)))
            for key, window in windows:
                if window is not None:
                    values.append({"key": key, "count": window.count, "started_at": window.start,
                                   "last_failure": at, "succeeded_at": None, "expires_at": window.start + self.window})
        with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            for row in values:
                stmt = insert(LoginThrottleEntry).values(**row)
                session.execute(stmt.on_conflict_do_update(
                    index_elements=[LoginThrottleEntry.key],
                    set_={name: stmt.excluded[name] for name in row if name != "key"}))
            self._writes += 1
            if self._writes % self.SWEEP_EVERY == 0:
                self._sweep(session, at)

    def _sweep(self, session: Session, at: datetime) -> None:
        session.execute(delete(LoginThrottleEntry).where(LoginThrottleEntry.expires_at <= at))
        keep = select(LoginThrottleEntry.key).order_by(LoginThrottleEntry.expires_at.desc()).limit(self.max_entries)
        session.execute(delete(LoginThrottleEntry).where(LoginThrottleEntry.key.not_in(keep)))


def login_throttle_for(sessions: sessionmaker[Session]) -> LoginThrottle:
    """Shared in the database on PostgreSQL; in the process on SQLite (see the module's docstring)."""
    bind = sessions.kw.get("bind")
    if bind is not None and bind.dialect.name == "postgresql":
        return SharedLoginThrottle(sessions)
    return LoginThrottle()
