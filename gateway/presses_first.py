"""Button presses ahead of the detectors' backlog.

Under load the detectors run seconds behind the journal (they share the worker's core with the store writer and
the registry), and a pendant press waited for every reading of every home journaled before it: 4.5 to 10 s at
5,000 readings/s (docs/benchmarks.md, Ingest). Ingest marks each button action in the journal
(:meth:`gateway.journal.Journal.append`); this loop finds them, and hands the detectors each pressed home's entries
up to the press (:meth:`gateway.detect.DetectorConsumer.catch_up`). A home's detectors see only its own readings,
so they still take them in order, and the batches that hold them later skip them.
"""

from __future__ import annotations

import logging
import threading

from gateway.detect import DetectorConsumer
from gateway.journal import Journal

log = logging.getLogger(__name__)

POLL_S = 0.05  # wall seconds between looks for new presses: an indexed query on a table of a few rows


class PressesFirst:
    def __init__(self, journal: Journal, detect: DetectorConsumer) -> None:
        self.journal = journal
        self.detect = detect
        self._after = 0  # the last press handed over

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_S):  # wall time: polling is about the machine, not the data
            try:
                self.step()
            except Exception:  # the batches will take the press in their turn: slower, never lost
                log.exception("presses first: a press could not be taken ahead of the backlog; retrying")
                stop.wait(1.0)

    def step(self) -> int:
        """Take the homes of presses the detectors have not reached; returns the alerts raised."""
        position = self.journal.position(self.detect.name)
        presses = self.journal.urgent_after(max(self._after, position))
        if not presses:
            return 0
        upto: dict[str, int] = {}
        for seq, home in presses:
            upto[home] = seq
        raised = sum(self.detect.catch_up(home, self.journal.read_home(home, position, seq))
                     for home, seq in upto.items())
        self._after = presses[-1][0]
        return raised
