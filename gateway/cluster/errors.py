"""Errors of cluster mode, each saying what the caller has to do."""

from __future__ import annotations

__all__ = ["ClusterConfigError", "LeaseLost"]


class ClusterConfigError(Exception):
    """Cluster mode cannot run as configured (a SQLite database, workers configured with different partition
    counts); the message says what to change. Raised at start-up or when joining, never mid-stream."""


class LeaseLost(Exception):
    """This worker no longer owns the partition under the epoch it was processing with: the lease expired and
    another worker took it over, or it was released.

    Raised inside the worker's commit transaction by ``still_owner``: the caller rolls back, does not acknowledge
    the messages (the new owner is redelivered them, and its copy is the one that counts), and stops processing
    the partition."""

    def __init__(self, partition: int, worker_id: str, epoch: int, *, owner: str | None,
                 current_epoch: int | None) -> None:
        self.partition = partition
        self.worker_id = worker_id
        self.epoch = epoch
        self.owner = owner
        self.current_epoch = current_epoch
        if owner is None and current_epoch is None:
            now = "has no lease row (the partition count differs from the cluster's)"
        elif owner is None:
            now = f"is free (epoch {current_epoch})"
        else:
            now = f"is owned by worker {owner} under epoch {current_epoch}"
        super().__init__(f"worker {worker_id} lost partition {partition} (it held it under epoch {epoch}; it {now}): "
                         f"roll back and do not acknowledge")
