"""The fair share of partitions (pure): balanced, complete, deterministic, and moving as few partitions as possible."""

from __future__ import annotations

import random
from collections.abc import Mapping
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cluster.assignment import Plan, balanced_assignment, fair_share, plan_for


def test_fair_share_is_the_ceiling() -> None:
    assert fair_share(16, 1) == 16
    assert fair_share(16, 3) == 6
    assert fair_share(16, 16) == 1
    assert fair_share(16, 20) == 1


@pytest.mark.parametrize(("partitions", "workers"), [(0, 1), (16, 0), (-1, 2)])
def test_fair_share_needs_partitions_and_workers(partitions: int, workers: int) -> None:
    with pytest.raises(ValueError, match="at least one partition and one worker"):
        fair_share(partitions, workers)


def test_no_live_worker_is_an_error() -> None:
    with pytest.raises(ValueError, match="no live worker"):
        balanced_assignment(16, [], {})


def test_a_lone_worker_takes_everything() -> None:
    assert plan_for("a", 16, [], {}) == Plan(acquire=tuple(range(16)), release=())


def test_a_second_worker_gets_half_and_the_first_gives_up_its_highest() -> None:
    owners = dict.fromkeys(range(16), "a")
    assert plan_for("a", 16, ["a", "b"], owners) == Plan(acquire=(), release=tuple(range(8, 16)))
    assert plan_for("b", 16, ["a", "b"], owners) == Plan(acquire=tuple(range(8, 16)), release=())


def test_three_workers_share_16_as_6_5_5_and_the_holder_of_most_keeps_the_extra() -> None:
    owners = {**dict.fromkeys(range(8), "b"), **dict.fromkeys(range(8, 16), "c")}
    target = balanced_assignment(16, ["a", "b", "c"], owners)
    assert sorted(len(assigned) for assigned in target.values()) == [5, 5, 6]
    # b and c hold 8 each: the extra one goes to the smaller id among them, never to a (who holds nothing).
    assert len(target["b"]) == 6 and len(target["c"]) == 5 and len(target["a"]) == 5
    assert target["b"] == frozenset(range(6)) and target["c"] == frozenset(range(8, 13))
    assert target["a"] == frozenset({6, 7, 13, 14, 15})


BALANCED_6_5_5 = {**dict.fromkeys(range(6), "a"),
                  **dict.fromkeys(range(6, 11), "b"), **dict.fromkeys(range(11, 16), "c")}


def test_a_dead_workers_partitions_go_to_the_survivors() -> None:
    owners = BALANCED_6_5_5
    target = balanced_assignment(16, ["a", "c"], owners)  # b died
    assert target == {"a": frozenset(range(8)), "c": frozenset({8, 9, 10, *range(11, 16)})}


def test_a_balanced_cluster_stays_as_it_is() -> None:
    owners = BALANCED_6_5_5
    for worker in "abc":
        assert plan_for(worker, 16, ["a", "b", "c"], owners).is_empty


def test_partitions_outside_the_count_and_unknown_workers_count_for_nothing() -> None:
    owners = {0: "a", 99: "a", 1: "ghost"}
    target = balanced_assignment(2, ["a"], owners)
    assert target == {"a": frozenset({0, 1})}
    assert plan_for("a", 2, ["a"], owners) == Plan(acquire=(1,), release=())


def test_more_workers_than_partitions_leaves_some_idle() -> None:
    target = balanced_assignment(2, ["a", "b", "c"], {})
    assert sorted(len(assigned) for assigned in target.values()) == [0, 1, 1]


# --- Properties over many random situations --------------------------------------------------------------------

WORKER_IDS = [f"w{i}" for i in range(8)]


@st.composite
def situations(draw: st.DrawFn) -> tuple[int, list[str], dict[int, str]]:
    """A partition count, the live workers, and current owners (live, dead or absent; some partitions free)."""
    partitions = draw(st.integers(1, 40))
    live = draw(st.lists(st.sampled_from(WORKER_IDS), min_size=1, max_size=8, unique=True))
    known = [*WORKER_IDS, "dead1", "dead2"]
    owners = draw(st.dictionaries(st.integers(0, partitions + 3), st.sampled_from(known), max_size=partitions + 4))
    return partitions, live, owners


def _held(owners: Mapping[int, str], live: list[str], partitions: int) -> dict[str, set[int]]:
    held: dict[str, set[int]] = {worker: set() for worker in live}
    for partition, owner in owners.items():
        if owner in held and 0 <= partition < partitions:
            held[owner].add(partition)
    return held


@settings(max_examples=400, deadline=None)
@given(situations())
def test_every_partition_has_exactly_one_target_owner_and_none_has_more_than_its_share(
        situation: tuple[int, list[str], dict[int, str]]) -> None:
    partitions, live, owners = situation
    target = balanced_assignment(partitions, live, owners)
    assert set(target) == set(live)
    assigned = [partition for parts in target.values() for partition in parts]
    assert sorted(assigned) == list(range(partitions))
    share = fair_share(partitions, len(live))
    sizes = [len(parts) for parts in target.values()]
    assert max(sizes) <= share
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=300, deadline=None)
@given(situations())
def test_the_fewest_partitions_move(situation: tuple[int, list[str], dict[int, str]]) -> None:
    """Partitions taken from a live holder: no balanced assignment takes fewer (checked against every choice of
    which workers get the extra partition)."""
    partitions, live, owners = situation
    held = _held(owners, live, partitions)
    target = balanced_assignment(partitions, live, owners)
    moved = sum(len(held[worker] - target[worker]) for worker in live)
    base, extra = divmod(partitions, len(live))
    fewest = min(sum(max(0, len(held[w]) - base - (w in bigger)) for w in live)
                 for bigger in map(set, combinations(live, extra)))
    assert moved == fewest
    for worker in live:  # nobody both gives partitions up and takes others
        assert not held[worker] - target[worker] or target[worker] <= held[worker]


@settings(max_examples=200, deadline=None)
@given(situations(), st.randoms(use_true_random=False))
def test_the_order_of_the_arguments_does_not_matter(situation: tuple[int, list[str], dict[int, str]],
                                                    rnd: random.Random) -> None:
    partitions, live, owners = situation
    shuffled_live = list(live)
    rnd.shuffle(shuffled_live)
    items = list(owners.items())
    rnd.shuffle(items)
    assert balanced_assignment(partitions, shuffled_live, dict(items)) == balanced_assignment(partitions, live, owners)


@settings(max_examples=200, deadline=None)
@given(situations())
def test_the_target_is_a_fixed_point(situation: tuple[int, list[str], dict[int, str]]) -> None:
    """Once every worker owns its target, nobody moves anything any more."""
    partitions, live, owners = situation
    target = balanced_assignment(partitions, live, owners)
    reached = {partition: worker for worker, parts in target.items() for partition in parts}
    assert balanced_assignment(partitions, live, reached) == target
    for worker in live:
        assert plan_for(worker, partitions, live, reached).is_empty


@settings(max_examples=200, deadline=None)
@given(situations())
def test_each_workers_plan_leads_to_its_target(situation: tuple[int, list[str], dict[int, str]]) -> None:
    partitions, live, owners = situation
    target = balanced_assignment(partitions, live, owners)
    held = _held(owners, live, partitions)
    for worker in live:
        plan = plan_for(worker, partitions, live, owners)
        assert set(plan.acquire).isdisjoint(plan.release)
        assert (held[worker] - set(plan.release)) | set(plan.acquire) == target[worker]


@settings(max_examples=150, deadline=None)
@given(situations(), st.randoms(use_true_random=False))
def test_workers_ticking_in_any_order_converge_with_one_owner_per_partition(
        situation: tuple[int, list[str], dict[int, str]], rnd: random.Random) -> None:
    """A simulation of the keepers: each tick, one worker (in random order) releases what its plan says and
    acquires only the partitions that are free, as the leases allow. Within a few rounds the cluster is balanced,
    and at every step each partition has at most one owner (the owners map cannot say otherwise; checked that no
    worker ever takes a partition someone else holds)."""
    partitions, live, initial = situation
    owners = {p: w for p, w in initial.items() if w in live and 0 <= p < partitions}
    for _round in range(4):
        order = list(live)
        rnd.shuffle(order)
        for worker in order:
            plan = plan_for(worker, partitions, live, owners)
            for partition in plan.release:
                assert owners.pop(partition) == worker
            for partition in plan.acquire:
                if partition not in owners:
                    owners[partition] = worker
    assert len(owners) == partitions
    sizes = [sum(1 for owner in owners.values() if owner == worker) for worker in live]
    assert max(sizes) <= fair_share(partitions, len(live))
    assert all(plan_for(worker, partitions, live, owners).is_empty for worker in live)
