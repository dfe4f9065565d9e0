"""Devices and hosts: a 1-D ``data`` mesh, batch sharding, multi-host initialisation.

Data parallelism is plain ``jax.jit`` over a ``Mesh`` with one axis ``"data"``: batches
are split along it (``NamedSharding(mesh, P("data"))``), parameters and optimiser
state are replicated (``P()``). XLA inserts the gradient all-reduce; BatchNorm
statistics are computed over the global batch because the step is written for the
global batch. The same code runs on one CPU, many GPUs or a TPU slice, and on several
hosts after :func:`initialize` (each host feeds its own shard of the data).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """``jax.distributed.initialize`` from arguments or the environment.

    Reads ``STN_ICNN_COORDINATOR`` / ``STN_ICNN_NUM_PROCESSES`` / ``STN_ICNN_PROCESS_ID``
    when the arguments are None; does nothing when neither gives a coordinator (one
    host). On clusters that JAX detects itself (SLURM, TPU pods) call
    ``jax.distributed.initialize()`` directly instead.
    """
    coordinator_address = coordinator_address or os.environ.get("STN_ICNN_COORDINATOR")
    if not coordinator_address:
        return
    num_processes = num_processes or int(os.environ["STN_ICNN_NUM_PROCESSES"])
    if process_id is None:
        process_id = int(os.environ["STN_ICNN_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all by default)."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"asked for {num_devices} devices, {len(devices)} available")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh) -> int:
    """The per-process batch size; the global batch must split evenly over devices."""
    devices = mesh.devices.size
    if global_batch % devices:
        raise ValueError(
            f"batch size {global_batch} does not split over {devices} devices; "
            f"use a multiple of {devices}"
        )
    return global_batch // jax.process_count()


def to_global(batch: dict, mesh: Mesh) -> dict:
    """This process's numpy batch -> global arrays sharded along ``data``."""
    sharding = batch_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()}
