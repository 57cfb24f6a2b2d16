"""The MQTT input: paho-mqtt 2.x, QoS 1, a persistent session, acknowledgement by the caller.

The session outlives the gateway (MQTT v5 session expiry, or clean_session=False on 3.1.1), so what arrives
while the gateway is down waits in the broker. ``manual_ack`` means the broker redelivers anything the gateway
had not acknowledged when it stopped; the journal acknowledges only after its commit.
"""

from __future__ import annotations

import logging
import ssl
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


class MqttInput:
    def __init__(self, options: MqttOptions, on_message: OnMessage, metrics: IngestMetrics) -> None:
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
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._v5 = v5

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
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to %s:%s", self._host, self._port)
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
            return
        self.metrics.mqtt_connected.set(1)  # connected *and* subscribed: messages now reach us

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self.metrics.mqtt_connected.set(0)
        log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "backslashreplace")  # brokers check UTF-8; belt and braces
        self._on_message_cb(msg.mid, msg.qos, topic, msg.payload)
