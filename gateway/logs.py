"""Logs: one configuration for every process, and the keys that tie a line to what it concerns.

Modules log through the standard library, ``log = logging.getLogger(__name__)``, so the loggers are named after
their modules (one scheme), third-party records flow through the same handler, and pytest's caplog sees every
line with the message text it always had. A line about a home, a device, an alert or a notification carries
them as keys: ``log.warning("home %s: ...", home, extra=about(home=home, device=device))``, or, for every line of
a block, ``structlog.contextvars.bound_contextvars(home=home)``. structlog's ProcessorFormatter renders both, and
structlog's own loggers, as JSON lines for production (``TELECARE_LOG_FORMAT=json``) or as console lines.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

# The keys a line carries when it concerns one of them; a collector can filter a home's whole story by them.
CONTEXT_KEYS = ("home", "device", "alert_id", "notification_id")
FORMAT_ENV = "TELECARE_LOG_FORMAT"
FORMATS = ("console", "json")


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler configure() installs, so a second call replaces it and leaves others' (pytest's) alone;
    it remembers the root level it found, for unconfigure()."""

    level_before = logging.WARNING


class _StderrHandler(_OurHandler):
    """Writes to whatever sys.stderr is when a line is written, not when configured: a command run in-process
    (tests' CliRunner) swaps it, and a closed stream must never be written to."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def about(*, home: str | None = None, device: str | None = None, alert_id: int | None = None,
          notification_id: int | None = None) -> dict[str, object]:
    """``extra=`` for a standard-library log call: what the line concerns, the unknown (None) left out."""
    given = {"home": home, "device": device, "alert_id": alert_id, "notification_id": notification_id}
    return {k: v for k, v in given.items() if v is not None}


def format_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The log format an operator chose with TELECARE_LOG_FORMAT ("console" when unset); ValueError if unknown."""
    value = (os.environ if environ is None else environ).get(FORMAT_ENV, "").strip().lower() or "console"
    if value not in FORMATS:
        raise ValueError(f"{FORMAT_ENV}={value!r} is not a log format: use one of {', '.join(FORMATS)}")
    return value


def configure(level: int | str, *, json: bool, process: str | None = None, stream: TextIO | None = None) -> None:
    """Send every log line (the standard library's, third parties', structlog's) to stderr in one format.

    ``process`` names the process in each line when several write to one terminal (the worker beside ingest).
    Calling it again replaces the handler it installed before; handlers installed by others stay. ValueError,
    before anything changes, for a level the standard library does not know.
    """
    numeric = level if isinstance(level, int) else logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        raise ValueError(f"{level!r} is not a log level: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True) if json
        else structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
    ]
    if process is not None:
        shared.append(_Constant("process", process))
    renderer: list[Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()] if json
        else [structlog.processors.format_exc_info, render_console])
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=CONTEXT_KEYS)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer])
    handler = _StderrHandler() if stream is None else _OurHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    handler.level_before = root.level
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        handler.level_before = old.level_before
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    structlog.configure(
        processors=[*shared, structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False)  # configure() may run again (tests, the worker): no stale loggers


def unconfigure() -> None:
    """Undo configure(): its handler gone, the root level and structlog as they were. For a command that returns
    to its caller (run in-process by a test) rather than ending the process."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
        root.setLevel(handler.level_before)
    structlog.reset_defaults()


def is_json() -> bool:
    """Whether configure() chose JSON lines in this process (the worker process is told the same)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _OurHandler) and isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            return any(isinstance(p, structlog.processors.JSONRenderer) for p in handler.formatter.processors)
    return False


class _Constant:
    """Adds one fixed key to every line (the process's name)."""

    def __init__(self, key: str, value: str) -> None:
        self.key, self.value = key, value

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault(self.key, self.value)
        return event_dict


def render_console(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """One line as people read it: time, level, [process] logger: message, then the keys, then any traceback.

    The layout of the standard library's format before structlog (``%(asctime)s %(levelname)s %(name)s:
    %(message)s``), so the demo's terminal and operators' greps read as they did; the keys follow the message.
    """
    fields = dict(event_dict)
    head = " ".join(str(p) for p in (fields.pop("timestamp", None), str(fields.pop("level", "")).upper(),
                                      fields.pop("process", None), fields.pop("logger", None)) if p)
    line = f"{head}: {fields.pop('event', '')}"
    trace = fields.pop("exception", None)
    ordered = [k for k in CONTEXT_KEYS if k in fields] + sorted(k for k in fields if k not in CONTEXT_KEYS)
    if ordered:
        line += " " + " ".join(f"{k}={fields[k]}" for k in ordered)
    return f"{line}\n{trace}" if trace else line
