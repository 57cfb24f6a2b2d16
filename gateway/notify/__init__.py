"""Notifiers: how alerts reach people. Pushover first (:class:`PushoverClient`)."""

from gateway.notify.errors import DeliveryError, GiveUp, Retry
from gateway.notify.pushover import AppLimit, PushoverClient, ReceiptStatus, SendResult

__all__ = ["AppLimit", "DeliveryError", "GiveUp", "PushoverClient", "ReceiptStatus", "Retry", "SendResult"]
