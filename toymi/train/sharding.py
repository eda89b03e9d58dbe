"""Spreading an ensemble over devices: a `jax.sharding` mesh with a `members` axis and a `batch` axis.

Members are split over the `members` axis (each device trains its share of the ensemble); each member's batch can
further be split over the `batch` axis (its examples spread over devices, gradients summed by XLA). The program is
the same vmapped one; only where its arrays live changes, so results equal the unsharded run's up to the order of
floating-point sums.

Multi-host (TPU pods, several GPU hosts): call `jax.distributed.initialize()` first in every process (`toymi sweep
--distributed` and `toymi train --distributed` do), then the mesh spans every process's devices; JAX's own runtime
does the rest. The host loop reads losses and metrics back with `to_host`, which gathers a multi-process array.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MEMBERS, BATCH = "members", "batch"


def ensemble_mesh(batch_shards: int = 1, devices: list | None = None) -> Mesh:
    """A `(members, batch)` mesh over `devices` (default: all), with `batch_shards` devices per member group."""
    devices = jax.devices() if devices is None else devices
    if batch_shards < 1 or len(devices) % batch_shards:
        raise ValueError(f"batch_shards={batch_shards} must divide the number of devices ({len(devices)})")
    grid = np.asarray(devices).reshape(len(devices) // batch_shards, batch_shards)
    return Mesh(grid, (MEMBERS, BATCH))


def shard_members(tree, mesh: Mesh):
    """Put every leaf (leading axis: members) on `mesh`, split over its `members` axis."""
    n_groups = mesh.shape[MEMBERS]
    n_members = jax.tree.leaves(tree)[0].shape[0]
    if n_members % n_groups:
        raise ValueError(f"{n_members} members cannot be split evenly over {n_groups} device groups; use a multiple "
                         f"of {n_groups} members or fewer devices")
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(MEMBERS)))


def replicate(tree, mesh: Mesh):
    """Put every leaf on every device of `mesh` (a single run trained data-parallel: `batch_placement` then splits
    each batch's examples over the `batch` axis)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def to_host(tree):
    """Every leaf as a numpy array in every process. An array spread over several processes' devices (a
    multi-process run) is gathered from all of them first (a collective: every process must call this)."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def from_process_0(value: int) -> int:
    """Process 0's `value` in every process (`value` itself in a single-process run): one decision about shared
    files (which checkpoint to resume from), taken by the one process that may change them (a collective)."""
    if jax.process_count() == 1:
        return value
    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def barrier(name: str) -> None:
    """Wait until every process reaches `name` (no-op in a single-process run)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def batch_placement(mesh: Mesh) -> Callable:
    """A `place_batch` for `toymi.train.step.train_step`: split each member's batch over the `batch` axis.

    Used inside `jax.vmap(..., spmd_axis_name="members")`, so the member axis stays split too. An array whose
    example count the axis does not divide is left to XLA to place.
    """
    n = mesh.shape[BATCH]

    def place(batch):
        def one(x):
            if n == 1 or x.ndim == 0 or x.shape[0] % n:
                return x
            return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(BATCH)))

        return jax.tree.map(one, batch)

    return place
