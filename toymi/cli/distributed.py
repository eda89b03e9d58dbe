"""`--distributed` and its options, shared by `toymi train` and `toymi sweep`."""

from __future__ import annotations

import argparse

from toymi.errors import ToymiError


def add_distributed_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() first, "
                        f"{what} (multi-host: run the same command in every process)")
    parser.add_argument("--coordinator", help="with --distributed: process 0's host:port (default: from the cluster "
                        "or JAX_COORDINATOR_ADDRESS)")
    parser.add_argument("--num-processes", type=int, help="with --distributed: how many (default: from the cluster)")
    parser.add_argument("--process-id", type=int, help="with --distributed: this one's index (default: from the "
                        "cluster)")


def start_distributed(args) -> None:
    """JAX's own multi-process runtime, before anything touches a device. Every process runs the same command;
    unset arguments come from the cluster (SLURM, Open MPI, TPU pods, Kubernetes) or JAX_COORDINATOR_ADDRESS."""
    import jax

    given = [f"--{k.replace('_', '-')}" for k in ("coordinator", "num_processes", "process_id")
             if getattr(args, k) is not None]
    if given and not args.distributed:
        raise ToymiError(f"{', '.join(given)} only apply with --distributed")
    if args.distributed:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
