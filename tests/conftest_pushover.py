"""The ``pushover`` fixture: a started :class:`bench.pushover_server.PushoverServer` on a free port.

Load it with ``pytest_plugins = ["tests.conftest_pushover"]`` in the test module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.pushover_server import PushoverServer


@pytest.fixture
def pushover() -> Iterator[PushoverServer]:
    server = PushoverServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
