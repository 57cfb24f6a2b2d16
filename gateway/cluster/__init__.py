"""Cluster mode: many gateway workers share the partitions of the hub messages on NATS JetStream (docs/scale-out.md).

Each partition is owned by one live worker at a time (:mod:`~gateway.cluster.leases`, in PostgreSQL); the workers
learn who is alive (:mod:`~gateway.cluster.membership`), share the partitions out evenly
(:mod:`~gateway.cluster.assignment`, pure), and keep their share with :class:`~gateway.cluster.keeper.LeaseKeeper`.
A worker commits a partition's work only after :func:`~gateway.cluster.leases.still_owner` in the same transaction.
"""

from gateway.cluster.assignment import Plan, balanced_assignment, fair_share, plan_for
from gateway.cluster.database import require_postgresql
from gateway.cluster.errors import ClusterConfigError, LeaseLost
from gateway.cluster.keeper import DEFAULT_PARTITIONS, LEASE_TTL_S, TICK_INTERVAL_S, LeaseKeeper, Ownership
from gateway.cluster.leases import still_owner

__all__ = [
    "DEFAULT_PARTITIONS",
    "LEASE_TTL_S",
    "TICK_INTERVAL_S",
    "ClusterConfigError",
    "LeaseKeeper",
    "LeaseLost",
    "Ownership",
    "Plan",
    "balanced_assignment",
    "fair_share",
    "plan_for",
    "require_postgresql",
    "still_owner",
]
