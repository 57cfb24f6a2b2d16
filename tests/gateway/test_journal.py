from pathlib import Path

from gateway.journal import Journal


def entry(i: int) -> tuple:
    return ("state", "h1", "d1", 1_700_000_000_000 + i, 1_700_000_000_000 + i, True, {"n": i})


def batches(j: Journal, *sizes: int) -> None:
    n = 0
    for size in sizes:
        j.append([entry(n + i) for i in range(size)])
        n += size


def test_entries_come_back_in_order_with_their_bodies(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.register("a")
    assert j.append([entry(i) for i in range(10)]) == 10
    got = j.read("a", 100)
    assert [e.seq for e in got] == list(range(1, 11))
    assert got[3].body == {"n": 3} and got[3].timed is True and got[3].home == "h1"
    assert got[3].time_ms == 1_700_000_000_003 and got[3].kind == "state"


def test_reads_take_whole_batches_up_to_about_the_limit(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.register("a")
    batches(j, 3, 3, 3)
    assert [e.seq for e in j.read("a", 4)] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in j.read("a", 1)] == [1, 2, 3]


def test_each_consumer_keeps_its_own_position_across_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.register("a")
    j.register("b")
    batches(j, 3, 2)
    j.advance("a", 3)
    j.close()
    j = Journal(tmp_path / "j.sqlite3")
    assert [e.seq for e in j.read("a", 10)] == [4, 5]
    assert [e.seq for e in j.read("b", 10)] == [1, 2, 3, 4, 5]
    assert j.lag("a") == 2 and j.lag("b") == 5


def test_trim_waits_for_the_slowest_consumer_and_seq_never_restarts(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.register("fast")
    j.register("slow")
    batches(j, 2, 2)
    j.advance("fast", 4)
    assert j.trim() == 0 and j.kept() == 4
    j.advance("slow", 2)
    assert j.trim() == 2 and j.kept() == 2
    j.advance("slow", 4)
    assert j.trim() == 2 and j.kept() == 0
    j.close()
    j = Journal(tmp_path / "j.sqlite3")  # nothing kept after the trim: numbering must go on, not restart
    assert j.append([entry(9)]) == 5
    assert [e.seq for e in j.read("slow", 10)] == [5]


def test_full_when_kept_entries_reach_the_bound(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3", max_entries=1000)
    j.register("a")
    batches(j, 500, 499)
    assert not j.is_full()
    j.append([entry(1)])
    assert j.is_full()
    j.advance("a", 500)
    j.trim()
    assert not j.is_full() and j.kept() == 500


def test_a_consumer_registered_late_starts_at_the_oldest_kept_entry(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.register("a")
    batches(j, 4, 2)
    j.advance("a", 4)
    j.trim()
    j.register("late")
    assert [e.seq for e in j.read("late", 10)] == [5, 6]
