"""Where messages go: Pushover, or the log and console when no Pushover token is configured."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from gateway.alerting.messages import PUSHOVER_MAX_MESSAGE, PUSHOVER_MAX_TITLE, clip
from gateway.notify.pushover import PushoverClient, ReceiptStatus

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["LogNotifier", "Notifier", "Outgoing", "PushoverNotifier", "logged_to_stderr", "make_notifier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to one recipient, as the dispatcher hands it over."""

    recipient: str  # the recipient's name, for logs
    user_key: str
    device: str | None
    title: str
    message: str
    priority: int
    retry_s: int | None = None  # emergency priority only
    expire_s: int | None = None


class Notifier(Protocol):
    """Sends messages and follows emergency receipts; raises :class:`~gateway.notify.errors.Retry` or
    :class:`~gateway.notify.errors.GiveUp` and never retries by itself (the dispatcher does, on its clock)."""

    name: str

    def send(self, message: Outgoing) -> str | None:
        """Send; returns the receipt of an emergency message, else None."""
        ...

    def receipt(self, receipt: str) -> ReceiptStatus: ...

    def cancel(self, receipt: str) -> None: ...


class PushoverNotifier:
    name = "pushover"

    def __init__(self, client: PushoverClient) -> None:
        self.client = client

    def send(self, message: Outgoing) -> str | None:
        # The adapter has no ``device`` parameter yet: messages go to all of the recipient's devices.
        result = self.client.send(
            message.user_key, clip(message.message, PUSHOVER_MAX_MESSAGE), clip(message.title, PUSHOVER_MAX_TITLE),
            message.priority, retry_s=message.retry_s, expire_s=message.expire_s)
        return result.receipt

    def receipt(self, receipt: str) -> ReceiptStatus:
        return self.client.receipt(receipt)

    def cancel(self, receipt: str) -> None:
        self.client.cancel(receipt)


class LogNotifier:
    """Logs one line per message and shows it on the console (stderr by default) once. No receipts: an alert
    sent this way is acknowledged through the API (``gateway.alerting.service.acknowledge``).

    The log line and the console line were both written to a terminal whose log level shows INFO (the gateway's
    default), so every message appeared twice: the line is printed only where the log does not already put it
    (a log level above INFO, as the demo's, or logs going elsewhere), and in JSON logs it stays a JSON line."""

    name = "log"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def send(self, message: Outgoing) -> str | None:
        text = " | ".join(line for line in message.message.splitlines() if line.strip())
        line = f"[telecare alert p{message.priority:+d}] to {message.recipient}: {message.title} — {text}"
        log.info("%s", line)
        if self._stream is not None or not logged_to_stderr(log, logging.INFO):
            print(line, file=self._stream or sys.stderr, flush=True)
        return None

    def receipt(self, receipt: str) -> ReceiptStatus:
        raise LookupError(f"the log notifier issues no receipts ({receipt!r})")

    def cancel(self, receipt: str) -> None:
        pass


def logged_to_stderr(logger: logging.Logger, level: int) -> bool:
    """Whether a record of ``level`` on ``logger`` reaches standard error through a handler (the console)."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (isinstance(handler, logging.StreamHandler) and handler.level <= level
                    and getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__)):
                return True
        current = current.parent if current.propagate else None
    return False  # no handler: the standard library's last resort shows WARNING and above only


def make_notifier(settings: Settings) -> Notifier:
    """Pushover when ``TELECARE_PUSHOVER_TOKEN`` is set, else the log notifier (and a warning saying so)."""
    if settings.pushover_token is None or not settings.pushover_token.get_secret_value():
        log.warning("TELECARE_PUSHOVER_TOKEN is not set: alerts go to the log and the console only")
        return LogNotifier()
    return PushoverNotifier(PushoverClient(settings.pushover_url, settings.pushover_token.get_secret_value(),
                                           settings.pushover_timeout_s))
