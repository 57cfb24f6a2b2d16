"""The MQTT input: paho-mqtt 2.x, QoS 1, a persistent session, acknowledgement by the caller.

The session outlives the gateway (MQTT v5 session expiry, or clean_session=False on 3.1.1), so what arrives
while the gateway is down waits in the broker. ``manual_ack`` means the broker redelivers anything the gateway
had not acknowledged when it stopped; the journal acknowledges only after its commit.

Broker trouble is loud but bounded (:class:`BrokerTrouble`): a failed connection is logged at once with its
reason, then once a minute while it lasts (paho retries with back-off, 1 s doubling to 30 s; one line per
attempt would flood the log), and once when the connection is back. ``telecare_mqtt_connected`` and
``telecare_mqtt_connection_failures_total{reason}`` say the same to Prometheus, and /healthz to a load balancer.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.metrics import IngestMetrics

log = logging.getLogger(__name__)

OnMessage = Callable[[int, int, str, bytes], None]  # (mid, qos, topic, payload)


@dataclass(frozen=True, slots=True)
class MqttOptions:
    url: str
    client_id: str
    topics: tuple[str, ...]
    session_expiry_s: int = 7 * 24 * 3600
    protocol: str = "5"  # "5" or "3.1.1"
    receive_maximum: int = 20_000  # unacknowledged messages the broker may send us at once
    ca_file: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 1  # paho doubles the delay after each failed attempt, up to reconnect_max_s
    reconnect_max_s: float = 30
    trouble_log_interval_s: float = 60  # while the broker stays unreachable, one log line per interval


class MqttInput:
    """``stopping``: the owner's stop event. Once it is set, the connection ending is part of stopping, logged at
    INFO, not broker trouble: a Ctrl-C in a terminal also stops a broker started from it (a compose file, a dev
    script), which often closes the connection before the owner gets round to :meth:`stop`."""

    def __init__(self, options: MqttOptions, on_message: OnMessage, metrics: IngestMetrics,
                 stopping: threading.Event | None = None) -> None:
        self.options = options
        self._on_message_cb = on_message
        self.metrics = metrics
        url = urlsplit(options.url)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        v5 = options.protocol == "5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=options.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False, manual_ack=True)
        if url.username:
            self.client.username_pw_set(unquote(url.username), unquote(url.password or ""))
        if url.scheme == "mqtts":
            self.client.tls_set(ca_certs=options.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        # paho annotates whole seconds, but waits with float arithmetic: tests reconnect within half a second.
        self.client.reconnect_delay_set(min_delay=options.reconnect_min_s,  # type: ignore[arg-type]
                                        max_delay=options.reconnect_max_s)  # type: ignore[arg-type]
        self.client.max_inflight_messages_set(1000)
        self.client.on_pre_connect = self._on_pre_connect
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._v5 = v5
        self.trouble = BrokerTrouble(f"{self._host}:{self._port}", metrics, options.trouble_log_interval_s)
        metrics.add_health_check("broker", self.trouble.problem)
        self._attempt_unanswered = False  # a connection attempt is under way and the broker has not answered
        self._stop_called = False
        self._stop_event = stopping

    def start(self) -> None:
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.options.session_expiry_s
            props.ReceiveMaximum = self.options.receive_maximum
            self.client.connect_async(self._host, self._port, keepalive=self.options.keepalive_s,
                                      clean_start=False, properties=props)
        else:
            self.client.connect_async(self._host, self._port, keepalive=self.options.keepalive_s)
        self.client.loop_start()  # reconnects with back-off on its own

    def ack(self, mid: int, qos: int) -> None:
        self.client.ack(mid, qos)

    def stop(self) -> None:
        """Disconnect on purpose: logged at INFO, never as trouble (no "lost the connection ... reconnecting", no
        "cannot connect" from an attempt paho was making as it was told to stop)."""
        self._stop_called = True
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def _stopping(self) -> bool:
        return self._stop_called or (self._stop_event is not None and self._stop_event.is_set())

    def _on_pre_connect(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._attempt_unanswered = True

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        """No TCP connection, or TLS failed. paho passes no error, but calls this inside its ``except OSError``."""
        self._attempt_unanswered = False
        reason, detail = network_failure(sys.exception())
        if self._stopping:  # an attempt paho made as we were stopping: not trouble (an outage was said already)
            log.debug("not connected to the broker at %s:%s while stopping (%s)", self._host, self._port, detail)
            return
        self.trouble.failed(reason, detail)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._attempt_unanswered = False
        if self._stopping:
            return  # an answer to an attempt made before stop(): paho disconnects it as it stops
        if reason.is_failure:
            label, detail = refusal(reason)
            self.trouble.failed(label, detail)
            return  # paho closes the connection, calls on_disconnect, and tries again after its back-off
        self.trouble.connected()
        # retain_handling=1: retained messages only for a new subscription, not again at every reconnect.
        options = SubscribeOptions(qos=1, retainHandling=1) if self._v5 else None
        for topic in self.options.topics:
            if options:
                client.subscribe(topic, options=options)
            else:
                client.subscribe(topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("broker refused the subscription: %s", reasons)
            self.trouble.subscription_refused(", ".join(str(r) for r in reasons))
            return
        self.metrics.mqtt_connected.set(1)  # connected *and* subscribed: messages now reach us

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.metrics.mqtt_connected.set(0)
        if self._stop_called:  # asked for: whatever the reason code says (a broker may answer with a failure)
            log.info("disconnected from the broker at %s:%s", self._host, self._port)
        elif self._stopping:  # the broker went first, as we were stopping (the same Ctrl-C stopped both)
            log.info("the broker at %s:%s closed the connection as the gateway was stopping (%s)",
                     self._host, self._port, reason)
        elif self._attempt_unanswered:  # TCP (and TLS) up, then closed before any CONNACK
            self._attempt_unanswered = False
            self.trouble.failed("closed_by_broker", "the broker closed the connection before answering "
                                "(mqtt:// to a TLS port? the broker's connection limit?)")
        elif self.trouble.is_connected:
            label = "session_taken_over" if str(reason) == "Session taken over" else "connection_lost"
            self.trouble.lost(label, str(reason))
        # else: the broker refused the CONNECT, already counted and logged by _on_connect

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "backslashreplace")  # brokers check UTF-8; belt and braces
        self._on_message_cb(msg.mid, msg.qos, topic, msg.payload)  # type: ignore[arg-type]  # bytes as received


# CONNACK reason codes (MQTT 5; paho maps 3.1.1's return codes 1-5 onto 132-136) -> metric label, advice.
REFUSALS: dict[int, tuple[str, str]] = {
    132: ("unsupported_protocol", "set TELECARE_MQTT_PROTOCOL=3.1.1 for a broker without MQTT 5"),
    133: ("client_id_rejected", "check TELECARE_MQTT_CLIENT_ID against the broker's client-id rules"),
    134: ("bad_credentials", "check the user name and password in TELECARE_MQTT_URL"),
    # Mosquitto 2.0 answers a wrong password with "not authorized", not "bad user name or password"
    135: ("not_authorised", "check the user name and password in TELECARE_MQTT_URL, and the broker's users"),
    136: ("server_unavailable", "the broker is up but not serving"),
    137: ("server_unavailable", "the broker is busy"),
    138: ("banned", "the broker has banned this client"),
    159: ("server_unavailable", "connection rate exceeded"),
}


def refusal(reason: Any) -> tuple[str, str]:
    """The broker answered CONNECT with a failure: (metric label, what to log)."""
    label, advice = REFUSALS.get(int(reason.value), ("refused", ""))
    return label, f"refused by the broker: {reason}" + (f" ({advice})" if advice else "")


def network_failure(error: BaseException | None) -> tuple[str, str]:
    """No MQTT connection: (metric label, what to log). Subclasses first: all of these are OSErrors."""
    if isinstance(error, ConnectionRefusedError):
        return "connection_refused", "connection refused: nothing listens at that address and port"
    if isinstance(error, socket.gaierror):
        return "dns", f"cannot resolve the host name: {error}"
    if isinstance(error, ssl.SSLError):  # certificate verification included
        return "tls", f"TLS failed: {error}"
    if isinstance(error, TimeoutError):
        return "timeout", "no answer within the connect timeout"
    if error is None:
        return "network", "network error"
    return "network", f"network error: {error}"


def for_how_long(seconds: float) -> str:
    """3 min, 45 s, 2 h 5 min: for people reading a log."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min"


class BrokerTrouble:
    """Connection events in, a few log lines, the connected gauge, the failure counter and /healthz's answer out.

    At most one trouble line per ``interval_s``, so a broker away for a day writes ~1,400 lines, not one per
    attempt. The first failure of an outage is logged at once unless a trouble line went out less than an
    interval ago (a connection that keeps dropping: the next line counts the drops in between). The line
    saying the broker is back is written whenever the outage's start was. Called from paho's network thread;
    /healthz reads :meth:`problem` from another, which only reads attributes.
    """

    def __init__(self, where: str, metrics: IngestMetrics, interval_s: float = 60,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.where = where
        self.metrics = metrics
        self.interval_s = interval_s
        self.now = now  # the machine's time, not the gateway's Clock: this is about the network, not data
        self.is_connected = False
        self.down_since: float | None = None  # monotonic, while an outage (or the first connection) lasts
        self.detail = "not connected yet"
        self.attempts = 0  # failed attempts in this outage
        self.outage_logged = False
        self.last_line_at = -float("inf")
        self.unlogged_drops = 0  # connections lost without a line since the last one

    def failed(self, reason: str, detail: str) -> None:
        now = self.now()
        self.metrics.mqtt_connection_failures.labels(reason).inc()
        self.metrics.mqtt_connected.set(0)
        self.is_connected = False
        if self.down_since is None:
            self.down_since = now
        self.attempts += 1
        self.detail = detail
        if now - self.last_line_at < self.interval_s:
            return
        if self.outage_logged:
            log.error("still cannot connect to the broker at %s after %s: %s (%d failed attempts)",
                      self.where, for_how_long(now - self.down_since), detail, self.attempts)
        else:
            log.error("cannot connect to the broker at %s: %s; retrying%s",
                      self.where, detail, self._drops_since_last_line())
        self.outage_logged = True
        self.last_line_at = now

    def lost(self, reason: str, detail: str) -> None:
        now = self.now()
        self.metrics.mqtt_connection_failures.labels(reason).inc()
        self.metrics.mqtt_connected.set(0)
        self.is_connected = False
        self.down_since, self.attempts, self.detail = now, 0, f"connection lost: {detail}"
        if now - self.last_line_at < self.interval_s:
            self.outage_logged = False
            self.unlogged_drops += 1
            return
        log.warning("lost the connection to the broker at %s (%s); reconnecting%s",
                    self.where, detail, self._drops_since_last_line())
        self.outage_logged = True
        self.last_line_at = now

    def connected(self) -> None:
        """CONNACK success; the gauge waits for the subscription (MqttInput._on_subscribe)."""
        now = self.now()
        if self.down_since is None:
            log.info("connected to the broker at %s", self.where)
        elif self.outage_logged:
            attempts = f" ({self.attempts} failed attempts)" if self.attempts else ""
            log.warning("connected again to the broker at %s after %s%s",
                        self.where, for_how_long(now - self.down_since), attempts)
        self.is_connected = True
        self.down_since, self.attempts, self.outage_logged = None, 0, False
        self.detail = "connected; waiting for the subscription"

    def subscription_refused(self, reasons: str) -> None:
        self.detail = f"connected, but the broker refused the subscription: {reasons}"

    def problem(self) -> str | None:
        """What /healthz says about the broker: None while connected and subscribed."""
        if self.metrics.sample("telecare_mqtt_connected") == 1:
            return None
        if self.down_since is None:
            return f"{self.where}: {self.detail}"
        return f"{self.where}: {self.detail}, for {for_how_long(self.now() - self.down_since)}"

    def _drops_since_last_line(self) -> str:
        drops, self.unlogged_drops = self.unlogged_drops, 0
        return f" (the connection dropped {drops} more times since the last line)" if drops else ""
