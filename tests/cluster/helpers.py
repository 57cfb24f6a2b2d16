"""Helpers for the tests against a real three-server NATS cluster (``bench/nats_cluster.py``).

* ``Hub``: a paho-mqtt 2.x client (callback API 2, MQTT 3.1.1 as zigbee2mqtt speaks and nats-server 2.9 accepts)
  that publishes at QoS 1 and reports whether the server answered with a PUBACK, or dropped the connection.
* ``jetstream(urls, work)``: run ``work(js)`` (an async function of a nats-py JetStream context) and return its
  result, from synchronous tests.
* ``stream_messages(urls, stream)``: every message of a stream, as (subject, payload) pairs.

Each test module starts its cluster once (a module-scoped fixture): the tests that kill servers need their own.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

HOST = "127.0.0.1"
TIMEOUT = 5.0
STREAM = "READINGS"
# Every partition subject of the mapping, as the gateway's readings stream captures them.
STREAM_SUBJECTS = ["telecare-part.*.telecare.>"]

T = TypeVar("T")


def jetstream(urls: list[str], work: Callable[[JetStreamContext], Awaitable[T]],
              credentials: dict[str, str] | None = None, timeout: float = TIMEOUT) -> T:
    """``credentials``: ``user`` and ``password`` for nats.connect, when the servers require them; ``timeout``:
    of each JetStream API request."""

    async def run() -> T:
        client = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=3,
                                    **(credentials or {}))
        try:
            return await work(client.jetstream(timeout=timeout))
        finally:
            await client.close()

    return asyncio.run(run())


def stream_leader(urls: list[str], stream: str = STREAM) -> str:
    """The server name of the stream's leader; "" while there is none (an election: the request times out)."""

    async def work(js: JetStreamContext) -> str:
        try:
            info = await js.stream_info(stream)
        except (TimeoutError, nats.js.errors.APIError):
            return ""
        return info.cluster.leader if info.cluster and info.cluster.leader else ""

    return jetstream(urls, work, timeout=1.0)


def create_stream(urls: list[str], *, name: str = STREAM, credentials: dict[str, str] | None = None,
                  **config: Any) -> None:
    """The readings stream as the gateway creates it: partition subjects, file storage, three replicas."""
    settings: dict[str, Any] = {"subjects": STREAM_SUBJECTS, "storage": StorageType.FILE, "num_replicas": 3}
    settings.update(config)

    async def work(js: JetStreamContext) -> None:
        await js.add_stream(StreamConfig(name=name, **settings))

    jetstream(urls, work, credentials)


def stream_messages(urls: list[str], name: str = STREAM,
                    credentials: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    async def work(js: JetStreamContext) -> list[tuple[str, bytes]]:
        info = await js.stream_info(name)
        messages = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages == 0:
                break
            message = await js.get_msg(name, seq)
            messages.append((message.subject or "", message.data or b""))
        return messages

    return jetstream(urls, work, credentials)


def delete_stream(urls: list[str], name: str = STREAM, credentials: dict[str, str] | None = None) -> None:
    async def work(js: JetStreamContext) -> None:
        await js.delete_stream(name)

    jetstream(urls, work, credentials)


class Hub:
    """A hub's MQTT connection. ``publish()`` sends one message and waits for its PUBACK (QoS 1)."""

    def __init__(self, port: int, *, user: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, client_id: str | None = None, will_topic: str | None = None,
                 connect_timeout: float = TIMEOUT) -> None:
        self.pubacks: set[int] = set()
        self.disconnected = threading.Event()
        self.connack: Any = None
        self._connected = threading.Event()
        self._acked = threading.Condition()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"hub-{time.time_ns()}",
                             protocol=MQTTProtocolVersion.MQTTv311)
        if user is not None:
            self.client.username_pw_set(user, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
        if will_topic is not None:
            self.client.will_set(will_topic, b"offline", qos=1, retain=True)  # as zigbee2mqtt's bridge/state
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self._granted: dict[int, list[Any]] = {}
        self.client.on_disconnect = lambda *_args: self.disconnected.set()
        self.client.reconnect_delay_set(60, 60)  # a dropped connection stays dropped for the test to see
        self.client.connect(HOST, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.close()
            raise AssertionError(f"no CONNACK from the MQTT listener on port {port}")

    def _on_connect(self, _client: Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.connack = reason
        self._connected.set()

    def _on_publish(self, _client: Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        with self._acked:
            self.pubacks.add(mid)
            self._acked.notify_all()

    def _on_subscribe(self, _client: Client, _userdata: Any, mid: int, reasons: list[Any], _props: Any) -> None:
        with self._acked:
            self._granted[mid] = reasons
            self._acked.notify_all()

    def subscribe(self, topic: str, qos: int = 1) -> bool:
        """True when the server granted the subscription (SUBACK without the failure code 0x80)."""
        _result, mid = self.client.subscribe(topic, qos)
        assert mid is not None, f"paho did not send the SUBSCRIBE for {topic}"
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._granted, TIMEOUT), f"no SUBACK for {topic}"
            return not any(reason.is_failure for reason in self._granted[mid])

    @property
    def refused(self) -> bool:
        return bool(self.connack.is_failure)

    def publish(self, topic: str, payload: bytes = b"{}", *, qos: int = 1, timeout: float = TIMEOUT) -> bool:
        """True when the server acknowledged the message (PUBACK) within ``timeout``; QoS 0: when it was sent."""
        info = self.client.publish(topic, payload, qos=qos)
        if qos == 0:
            info.wait_for_publish(timeout)
            return info.is_published()
        with self._acked:
            return self._acked.wait_for(lambda: info.mid in self.pubacks, timeout)

    def drop(self) -> None:
        """Cut the TCP connection without a DISCONNECT (a hub losing power): the server publishes the will."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # also ssl.SSLSocket
            sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition: Callable[[], T], timeout: float = TIMEOUT, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout:.0f} s (last: {result!r})")
        time.sleep(0.05)



def wait_for_messages(urls: list[str], count: int, name: str = STREAM, timeout: float = TIMEOUT,
                      credentials: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    """The stream's messages once it holds ``count`` of them (more fails at once: nothing may be duplicated)."""
    deadline = time.monotonic() + timeout
    while True:
        messages = stream_messages(urls, name, credentials)
        assert len(messages) <= count, f"more messages than published: {messages}"
        if len(messages) == count:
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(messages)} of {count} messages in {name} after {timeout:.0f} s: {messages}")
        time.sleep(0.05)


def connect_hub(port: int, timeout: float = 45.0, **options: Any) -> Hub:
    """A hub connection, retried as zigbee2mqtt retries (for ever): right after a server dies, a CONNECT fails
    until the MQTT streams ($MQTT_sess, $MQTT_msgs) have elected new leaders (the server's session lookup times
    out); on a loaded machine that took over 20 s once (a CI run with the whole suite beside it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Hub(port, **options)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
