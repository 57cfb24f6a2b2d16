"""A pendant press in a partition's batch is raised before the rest of the batch is fed to the detectors, as one
machine takes presses ahead of its journal (gateway.presses_first): a batch of a backlog is seconds of feeding.
Taken ahead, it is still raised once, and the batch is acknowledged only at its end."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.detect import DetectorConsumer
from gateway.journal import Entry
from gateway.worker import RegistryConsumer
from tests.cluster.leasing import ON_POSTGRESQL
from tests.cluster.workers import Cluster, cluster, nats_server, press, temperatures, wait_for

__all__ = ["cluster", "nats_server"]  # the fixtures, used by name


@ON_POSTGRESQL
def test_a_press_is_raised_before_the_rest_of_its_batch_is_fed(cluster: Cluster,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    raised_when_fed: list[int] = []  # the home's pendant raises committed when a batch holding the press is fed
    original = DetectorConsumer.handle

    def recording(self: DetectorConsumer, entries: Sequence[Entry]) -> None:
        if any(e.home == "h1" and e.device == "pendant" for e in entries):
            raised_when_fed.append(cluster.pendant_raises("h1"))
        original(self, entries)

    monkeypatch.setattr(DetectorConsumer, "handle", recording)
    # Published before the worker starts, so that one batch holds the press between other readings.
    cluster.create_stream()
    cluster.publish([*temperatures("h1", 10), press("h1"), *temperatures("h1", 10, start=10)])
    cluster.start(cluster.build("w1"))
    wait_for(lambda: cluster.stream_messages() == 0, what="every message acknowledged")
    assert raised_when_fed and raised_when_fed[0] == 1, "the press was raised only with the whole batch"
    assert cluster.pendant_raises("h1") == 1
    assert cluster.points("h1") == [15 + i / 100 for i in range(20)]


@ON_POSTGRESQL
def test_a_press_taken_ahead_of_a_batch_that_then_fails_is_raised_once(cluster: Cluster,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    failures: list[int] = []
    original = RegistryConsumer.handle

    def failing_once(self: RegistryConsumer, entries: Sequence[Entry]) -> None:
        if not failures:  # after the press was committed: nothing of the batch is acknowledged
            failures.append(cluster.pendant_raises("h1"))
            raise RuntimeError("simulated failure after the press was taken ahead")
        original(self, entries)

    monkeypatch.setattr(RegistryConsumer, "handle", failing_once)
    cluster.create_stream()
    cluster.publish([*temperatures("h1", 10), press("h1"), *temperatures("h1", 10, start=10)])
    cluster.start(cluster.build("w1"))
    wait_for(lambda: cluster.stream_messages() == 0, 30, what="every message acknowledged, after the batch came again")
    assert failures == [1], "the press was committed ahead of the failed batch"
    assert cluster.pendant_raises("h1") == 1
    assert cluster.points("h1") == [15 + i / 100 for i in range(20)]
