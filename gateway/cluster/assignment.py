"""Which partitions each live worker should own: a balanced share, moving as few partitions as possible.

Pure (no I/O, no clock): every worker computes the same target from the same view of the cluster, so they agree
without talking to each other; when their views differ for a moment (one ticked before another joined), the
leases in the database still give every partition at most one owner, and the next ticks converge.

The target, for ``P`` partitions and ``W`` live workers:

* every worker gets ``P // W`` partitions, and ``P % W`` of them one more, so none has more than ``ceil(P / W)``;
* the extra ones go to the workers that hold the most already (ties: the smaller worker id), so the fewest
  partitions move, and a balanced cluster stays as it is (the holders of one more keep being the ones holding most);
* a worker keeps the partitions it holds up to its quota (its lowest-numbered ones), and gives up the rest;
* the free partitions (never owned, owned by a worker no longer alive, or given up) go in ascending order to the
  workers below their quota, in worker id order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice

__all__ = ["Plan", "balanced_assignment", "fair_share", "plan_for"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one worker should do to reach its share: partitions to take (when free) and to give up, ascending."""

    acquire: tuple[int, ...]
    release: tuple[int, ...]

    @property
    def is_empty(self) -> bool:
        return not self.acquire and not self.release


def fair_share(partitions: int, workers: int) -> int:
    """The most partitions one of ``workers`` live workers owns once balanced: ceil(partitions / workers)."""
    if partitions < 1 or workers < 1:
        raise ValueError(f"a fair share needs at least one partition and one worker (got {partitions} partitions "
                         f"and {workers} workers)")
    return -(-partitions // workers)


def balanced_assignment(partitions: int, live_workers: Iterable[str],
                        owners: Mapping[int, str]) -> dict[str, frozenset[int]]:
    """The partitions each of ``live_workers`` should own, given the current ``owners`` (partition to worker).

    ``owners`` may name workers that are not alive and partitions outside ``range(partitions)``: neither counts
    (their partitions are free). The result covers every partition exactly once; deterministic whatever the order
    of the arguments."""
    workers = sorted(set(live_workers))
    if not workers:
        raise ValueError("no live worker to assign partitions to")
    fair_share(partitions, len(workers))  # checks the counts
    alive = set(workers)
    held: dict[str, list[int]] = {worker: [] for worker in workers}
    for partition, owner in sorted(owners.items()):
        if owner in alive and 0 <= partition < partitions:
            held[owner].append(partition)
    base, extra = divmod(partitions, len(workers))
    by_holding = sorted(workers, key=lambda worker: (-len(held[worker]), worker))
    quota = {worker: base + (1 if rank < extra else 0) for rank, worker in enumerate(by_holding)}
    target = {worker: held[worker][:quota[worker]] for worker in workers}
    kept = {partition for kept_by_one in target.values() for partition in kept_by_one}
    free = iter(partition for partition in range(partitions) if partition not in kept)
    for worker in workers:
        target[worker].extend(islice(free, quota[worker] - len(target[worker])))
    return {worker: frozenset(assigned) for worker, assigned in target.items()}


def plan_for(worker: str, partitions: int, live_workers: Iterable[str], owners: Mapping[int, str]) -> Plan:
    """What ``worker`` should acquire and release to reach its share of :func:`balanced_assignment`.

    ``worker`` counts as alive whether or not ``live_workers`` names it (it is the one asking). Partitions to
    acquire may still be held by another worker that has yet to give them up: acquiring takes only free or expired
    leases, and the next tick tries again."""
    target = balanced_assignment(partitions, {*live_workers, worker}, owners)[worker]
    held = {partition for partition, owner in owners.items() if owner == worker and 0 <= partition < partitions}
    return Plan(acquire=tuple(sorted(target - held)), release=tuple(sorted(held - target)))
