"""The journal gives its disk space back after a drain (issue 11, finding 3), and loses nothing doing so."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from gateway.journal import SCHEMA, Journal, NewEntry

MB = 1024 * 1024
TOPIC = "telecare/h1/" + "x" * 60_000  # the garbage topics


def dead_letter(i: int) -> NewEntry:
    return ("dead", "h1", None, i, i, False, {"topic": TOPIC, "reason": "bad_topic", "detail": "", "payload": "{}"})


def reading(i: int) -> NewEntry:
    return ("state", "h2", f"d{i % 50}", i, i, True, {"n": i, "occupancy": True, "battery": 90})


def fill(j: Journal, megabytes: int) -> int:
    """Batches of 10 garbage dead letters and 500 readings (about 0.6 MB each) up to ``megabytes``; last seq."""
    n = 0
    while sizes(j.path)[0] + sizes(j.path)[1] < megabytes * MB:
        n = j.append([dead_letter(n + i) if i < 10 else reading(n + i) for i in range(510)])
    return n


def sizes(path: Path) -> tuple[int, int]:
    """(main file, WAL) bytes on disk, measured from outside the journal."""
    wal = path.with_name(path.name + "-wal")
    return os.path.getsize(path), os.path.getsize(wal) if wal.exists() else 0


def drain(j: Journal, *consumers: str, upto: int | None = None) -> None:
    for name in consumers:
        while entries := j.read(name, 510 if upto is not None else 5000):
            if upto is not None and entries[-1].seq > upto:
                break
            j.advance(name, entries[-1].seq)


def trim_until_still(j: Journal, times: int = 40) -> None:
    """Trims, as ingest's trim thread makes once a second, enough for each test's reclaim steps."""
    for _ in range(times):
        j.trim()


def test_a_drained_journal_shrinks_its_files(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite3")
    j.register("store")
    j.register("registry")
    fill(j, 20)
    full = sizes(j.path)
    assert sum(full) >= 20 * MB
    drain(j, "store", "registry")
    trim_until_still(j)
    main, wal = sizes(j.path)
    assert j.kept() == 0
    assert main < 5 * MB, f"main file {main / MB:.1f} MB after the drain (was {full[0] / MB:.1f} MB)"
    assert wal == 0, f"WAL {wal / MB:.1f} MB after the drain (was {full[1] / MB:.1f} MB)"


def test_entries_not_yet_consumed_survive_compaction_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal(path, slack_bytes=MB // 4, reclaim_step_bytes=MB)  # small steps: many relocations
    j.register("fast")
    j.register("slow")
    last = fill(j, 20)
    full = sizes(path)[0]
    keep_from = last - 3 * 510 + 1  # the last three batches are still to be taken by "slow"
    drain(j, "fast")
    drain(j, "slow", upto=keep_from - 1)
    trim_until_still(j)
    # Space went back while entries were kept: free pages beyond as many as the kept entries fill.
    assert sizes(path)[0] < full * 3 // 4
    expected = list(range(keep_from, last + 1))
    for journal in (j, Journal(path)):  # as this process sees it, and after a restart
        got = journal.read("slow", 10_000)
        assert [e.seq for e in got] == expected
        assert all(e.body == (dead_letter(e.seq - 1)[6] if (e.seq - 1) % 510 < 10 else {"n": e.seq - 1,
                   "occupancy": True, "battery": 90}) for e in got)
        assert journal.read("fast", 10) == []
    j.close()
    j = Journal(path)
    assert j.append([reading(0)]) == last + 1  # numbering goes on


def test_the_wal_is_cut_back_before_a_drain_when_past_its_bound(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite3", wal_limit_bytes=MB)
    j.register("slow")
    fill(j, 8)
    assert sizes(j.path)[1] > MB
    j.trim()  # nothing consumed, nothing trimmed: the WAL still goes back into the main file
    assert sizes(j.path)[1] == 0
    assert len(j.read("slow", 100_000)) == j.last_seq


def test_a_journal_made_before_auto_vacuum_is_converted_once_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)  # as the earlier gateway created it
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(SCHEMA)
    old.close()
    j = Journal(path)
    j.register("store")
    last = fill(j, 10)
    j.trim()
    assert sizes(path)[0] >= 5 * MB  # not drained: left alone
    reader = sqlite3.connect(path, isolation_level=None)  # the worker process, reading meanwhile
    reader.execute("BEGIN")
    assert reader.execute("SELECT seq FROM positions").fetchone() == (0,)
    drain(j, "store")
    j.trim()  # the VACUUM does not wait for the reader; the file shrinks once it has gone
    reader.execute("COMMIT")
    trim_until_still(j)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental from now on
    assert sizes(path)[0] < MB and sizes(path)[1] == 0
    j.close()
    j = Journal(path)
    assert j.append([reading(0)]) == last + 1
    assert [e.seq for e in j.read("store", 10)] == [last + 1]


def test_appends_and_reads_racing_compaction_lose_nothing_and_keep_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    ingest = Journal(path, slack_bytes=MB // 4, reclaim_step_bytes=MB // 2)
    worker = Journal(path)  # the worker process has a journal object of its own
    ingest.register("store")
    worker.register("store")
    batches, size = 60, 510
    seen: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while len(seen) < batches * size:
            entries = worker.read("store", 2000)
            for e in entries:
                assert e.body == (dead_letter(e.seq - 1)[6] if (e.seq - 1) % size < 10 else
                                  {"n": e.seq - 1, "occupancy": True, "battery": 90})
            seen.extend(e.seq for e in entries)
            if entries:
                worker.advance("store", entries[-1].seq)

    def trim() -> None:
        while not done.is_set():
            ingest.trim()

    threads = [threading.Thread(target=consume), threading.Thread(target=trim)]
    for t in threads:
        t.start()
    for b in range(batches):
        ingest.append([dead_letter(b * size + i) if i < 10 else reading(b * size + i) for i in range(size)])
    threads[0].join(timeout=120)
    done.set()
    threads[1].join(timeout=30)
    assert seen == list(range(1, batches * size + 1))
    worker.close()
    for _ in range(200):  # a reclaim step a trim: how many it takes depends on how far the race let the file grow
        if sizes(path)[0] < 2 * MB and sizes(path)[1] == 0:
            break
        ingest.trim()
    assert sizes(path)[0] < 2 * MB and sizes(path)[1] == 0
