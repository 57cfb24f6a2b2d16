"""The running gateway's lock: a file beside its journal that it holds locked (``flock``) while it runs.

What it is for: commands that must not run beside the gateway (``telecare baseline warm`` replaces the learned
state the gateway's detectors would overwrite at their next checkpoint) ask :func:`gateway_holder`, and a second
gateway on the same journal could be refused with the same lock. The kernel releases a ``flock`` when its holder
exits, however it exits (SIGKILL, a crash): a lock is never stale, and the pid written in the file is only there
to be named in messages.

What it cannot see: a gateway on another machine sharing the operational database (PostgreSQL) but with its own
journal. Stop every gateway of that database before warming baselines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

LOCK_NAME = "gateway.lock"


def lock_path(journal_path: Path) -> Path:
    """Beside the journal (TELECARE_SPOOL_DIR, else TELECARE_DATA_DIR): one gateway per journal."""
    return journal_path.parent / LOCK_NAME


class GatewayBusy(RuntimeError):
    """Another process holds the lock: the message names it."""


class GatewayLock:
    """Held by a gateway from start to stop: ``acquire()`` raises :class:`GatewayBusy` if another holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip()
            f.close()
            raise GatewayBusy(f"a gateway is already running on {self.path.parent}"
                              + (f" ({who})" if who else "")) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            self._file.close()  # closing the file releases the flock
            self._file = None

    def __enter__(self) -> GatewayLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def gateway_holder(journal_path: Path) -> str | None:
    """What holds the gateway's lock for this journal ("pid 4242, since ..."), or None when no gateway runs."""
    path = lock_path(journal_path)
    try:
        f = path.open(encoding="utf-8")
    except FileNotFoundError:
        return None  # never started here: nothing holds it
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return f.read().strip() or "a process"
        fcntl.flock(f, fcntl.LOCK_UN)
        return None
