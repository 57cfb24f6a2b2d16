"""The servers ``telecare demo`` runs in its own process: an embedded MQTT broker and the API under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import uvicorn

from gateway.config import Settings

log = logging.getLogger(__name__)
MQTT_USER = "telecare-demo"  # amqtt keeps no session for anonymous clients: connect with a name


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens on it on 127.0.0.1, else a port the system hands out."""
    for port in ((preferred,) if preferred else ()) + (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")  # unreachable: port 0 always binds


def port_is_free(port: int) -> bool:
    return free_port(port) == port


# --- The embedded broker ----------------------------------------------------------------------------------------


class EmbeddedBroker:
    """amqtt (MQTT 3.1.1, pure Python) on its own thread and event loop, listening on 127.0.0.1 only."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{MQTT_USER}@127.0.0.1:{self.port}"

    def start(self) -> None:
        from amqtt.broker import Broker

        config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                  # Only this plugin: its packet and event loggers cost per message, $SYS is not needed.
                  # Not anonymous: amqtt queues nothing for anonymous sessions (the gateway's must persist).
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}}}

        async def start() -> Any:
            broker = Broker(config)
            await broker.start()
            return broker

        self._thread.start()
        self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):  # stopping anyway: a client's odd goodbye is not our problem
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


# --- The API ----------------------------------------------------------------------------------------------------


class ApiServer:
    """``api.app.create_app(settings)`` under uvicorn on a background thread; ``should_exit`` stops it."""

    def __init__(self, settings: Settings, port: int, now: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.port = port
        self.now = now
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str | None:
        """Serve the API; None when it started, else why not (the demo goes on without it)."""
        try:
            from api.app import create_app  # written alongside this demo: may not exist yet
            app = create_app(self.settings)
            if self.now is not None:
                app.state.now = self.now  # the gateway's clock: see Demo.sim_now
        except Exception as e:
            log.debug("API not available", exc_info=True)
            return " ".join(f"{type(e).__name__}: {e}".split())  # one line, whatever the message
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="auto")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return None if self._server.started else "the API server did not start (see the log above)"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
