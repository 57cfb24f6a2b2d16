"""The worker process's start: Ctrl-C while the new interpreter is still importing prints no traceback."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import cast

from gateway.config import Settings
from gateway.worker import WorkerSupervisor


def report_ctrl_c(where: Path, *_: object) -> None:
    """The worker's entry, spawned: says how it found SIGINT before doing anything."""
    where.write_text(str(int(signal.getsignal(signal.SIGINT))))  # type: ignore[arg-type]


def test_the_worker_is_spawned_with_ctrl_c_ignored_and_the_parent_keeps_its_handler(tmp_path: Path) -> None:
    where = tmp_path / "sigint"
    before = signal.getsignal(signal.SIGINT)
    supervisor = WorkerSupervisor(cast(Settings, where), lambda up, restarted: None, report_ctrl_c)
    supervisor.start()
    try:
        deadline = time.monotonic() + 60
        while not where.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert where.read_text() == str(int(signal.SIG_IGN)), "ignored from its first instruction"
    finally:
        supervisor.stop(timeout_s=10)
    assert signal.getsignal(signal.SIGINT) is before
