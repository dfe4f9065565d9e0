"""Devices and hosts: a 1-D ``data`` mesh, batch sharding, multi-host initialisation.

Data parallelism is plain ``jax.jit`` over a ``Mesh`` with one axis ``"data"``: batches
are split along it (``NamedSharding(mesh, P("data"))``), parameters and optimiser
state are replicated (``P()``). XLA inserts the gradient all-reduce; BatchNorm
statistics are computed over the global batch because the step is written for the
global batch. The same code runs on one CPU, many GPUs or a TPU slice, and on several
hosts after :func:`initialize` (each host feeds its own shard of the data). Several
processes stay in step: :func:`connect_collectives` at start-up, and a failure of one
process (its checks, a damaged record of its shard) stops all of them
(:func:`raise_if_any_failed`, :func:`next_on_all_processes`).

:func:`compile_train_step` jits a stage's step for a mesh in one of two ways:

- global BatchNorm (default): the step sees the global batch, so BN statistics are
  those of the whole batch and the result does not depend on the number of devices;
- per-device BatchNorm (``per_device_batch_stats=True``, the authors' multi-GPU
  ``DataParallel`` runs): the step runs per device inside ``jax.shard_map``, BN
  normalises each device's slice with its own statistics, and gradients, metrics and
  the new running statistics are averaged over ``"data"`` (``pmean``), so every device
  keeps identical parameters.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from stn_icnn_jax.errors import EXIT_FAILURE, UserError, one_line

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


class OtherProcessFailed(UserError):
    """Another process's checks failed: this one stops too (with that process's exit
    status, so that every process of a run exits alike)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


def raise_if_any_failed(error: Exception | None, flag: bool = False) -> bool:
    """All processes stop together when one of them failed a check.

    A collective: every process calls it at the same point with the exception its own
    checks raised, or None. When some failed, the failed ones raise their own exception
    and the others :class:`OtherProcessFailed` (``process I stopped the run: MESSAGE``,
    the first failed process's one-line message), instead of waiting forever at the next
    sync point for a process that has gone. One process: raises ``error`` if given.

    Returns whether ``flag`` is True on any process (the same answer on all), gathered in
    the same collective.
    """
    if jax.process_count() == 1:
        if error is not None:
            raise error
        return bool(flag)
    message = b"" if error is None else (one_line(error) or type(error).__name__).encode()
    code = getattr(error, "exit_code", EXIT_FAILURE)
    header = np.asarray(multihost_utils.process_allgather(
        np.array([error is not None, len(message), code, bool(flag)], np.int32))).reshape(-1, 4)
    if not header[:, 0].any():
        return bool(header[:, 3].any())
    buffer = np.zeros(max(1, int(header[:, 1].max())), np.uint8)
    buffer[: len(message)] = np.frombuffer(message, np.uint8)
    messages = np.asarray(multihost_utils.process_allgather(buffer))
    if error is not None:
        raise error
    first = int(np.flatnonzero(header[:, 0])[0])
    text = bytes(messages[first, : header[first, 1]]).decode("utf-8", "replace")
    raise OtherProcessFailed(f"process {first} stopped the run: {text}",
                             int(header[first, 2]))


def next_on_all_processes(iterator: Iterator) -> tuple[Any, bool]:
    """``(next(iterator, None), whether any process got an item)``, with one outcome on
    every process (a collective: one all-gather of 4 int32 per call).

    Each process reads its own shard of the data, so a read can fail on one process only
    (a damaged record): then every process raises (:func:`raise_if_any_failed`), instead
    of the others waiting for the failed one in the next step's collective. The second
    value tells a process whose shard is done whether the others still have batches. One
    process: ``(next(iterator, None), item is not None)``.
    """
    try:
        item, failure = next(iterator, None), None
    except Exception as exc:  # noqa: BLE001 - every process must hear of it
        item, failure = None, exc
    return item, raise_if_any_failed(failure, item is not None)


def connect_collectives(mesh: Mesh) -> None:
    """Connects the processes for the collectives of a run while they are in step.

    On CPU, XLA's collectives (gloo) connect a group of devices at its first collective
    and fail (``Gloo context initialization failed ... timed out``) when another process
    arrives more than 30 seconds later; once connected, a collective waits up to 30
    minutes. Processes reach their first training step minutes apart when a compile or a
    checkpoint restore is slower on one host, so every process calls this at the same
    point of its start-up: one all-reduce over ``mesh`` (the group of the training step)
    and one :func:`~jax.experimental.multihost_utils.process_allgather` (the group of the
    sums over processes). One process: nothing to do.
    """
    if jax.process_count() == 1:
        return
    sharding = batch_sharded(mesh)
    ones = np.ones(len(sharding.addressable_devices), np.int32)
    total = jax.jit(lambda x: x.sum(), out_shardings=replicated(mesh))(
        jax.make_array_from_process_local_data(sharding, ones))
    jax.block_until_ready(total)
    multihost_utils.process_allgather(np.ones(1, np.int32))  # returns numpy: done


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


def shard_options():
    """grain's sharding of the records: each process reads its own shard."""
    import grain.python as grain

    if jax.process_count() == 1:
        return grain.NoSharding()
    return grain.ShardByJaxProcess(drop_remainder=True)


def to_global(batch: dict, mesh: Mesh) -> dict:
    """This process's numpy batch -> global arrays sharded along ``data``.

    Each process passes its own rows (``global batch / process count``); the global
    array's rows are the processes' rows in process order.
    """
    sharding = batch_sharded(mesh)
    local_devices = len(sharding.addressable_devices)
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] % local_devices:
            raise ValueError(
                f"batch feature {key!r} has shape {value.shape}: its {value.shape[0] if value.ndim else 0} "
                f"rows do not split over this process's {local_devices} devices of the "
                f"'{DATA_AXIS}' mesh; use a per-process batch that is a multiple of {local_devices}"
            )
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


# --------------------------------------------------------------------------- train steps

Step = Callable[[Any, dict], tuple[Any, dict]]


def _check_global_batch(batch: dict, mesh: Mesh) -> None:
    """Every feature's leading (global batch) axis splits over the mesh's devices."""
    devices = mesh.shape[DATA_AXIS]
    for key, value in batch.items():
        shape = np.shape(value)
        if not shape or shape[0] % devices:
            raise ValueError(
                f"batch feature {key!r} has shape {tuple(shape)}: batch size "
                f"{shape[0] if shape else 0} does not split over the {devices} devices of "
                f"the '{DATA_AXIS}' mesh; use a multiple of {devices}"
            )


def compile_train_step(
    make_step: Callable[..., Step], mesh: Mesh, *, per_device_batch_stats: bool = False,
    donate_state: bool = True,
) -> Step:
    """The jitted ``step(state, batch) -> (state, metrics)`` of one stage on ``mesh``.

    Args:
      make_step: builds the pure step; called as ``make_step(axis_name=None)`` (global
        BatchNorm) or ``make_step(axis_name="data")`` (per-device BatchNorm), e.g.
        ``functools.partial(train.make_train_step, model, stage_name, stage, tx)``.
        With an axis name the step must ``pmean`` its gradients, metrics and new BN
        statistics over it (``train.make_train_step`` does).
      mesh: a 1-D mesh with axis ``"data"`` (:func:`make_mesh`).
      per_device_batch_stats: False (default): BN statistics over the global batch,
        independent of the device count. True: each device normalises its own slice
        of the batch, as the authors' multi-GPU runs did; identical to False on one
        device.
      donate_state: donate the input state's buffers to the output (don't reuse the
        state you passed in).

    Returns:
      The jitted step. ``state`` comes in and goes out replicated (``P()``); the batch
      (numpy or :func:`to_global` arrays with a leading global-batch axis) is sharded
      along ``"data"``; metrics come out replicated. A batch that does not split over
      the mesh raises ``ValueError`` before anything runs. The jitted function
      itself is the ``jitted`` attribute (for ``.lower(...)`` / ``.compile()``).
    """
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"the mesh has axes {mesh.axis_names}; it needs a '{DATA_AXIS}' axis "
                         "(use distributed.make_mesh)")
    rep, sharded = replicated(mesh), batch_sharded(mesh)
    if per_device_batch_stats:
        local = make_step(axis_name=DATA_AXIS)
        # check_vma=False: with jax's varying-axes checks on, the transpose of the implicit
        # broadcast of the replicated parameters psums the gradients already, so the
        # step's own pmean would leave the device-count-times sum of the gradients.
        # Without them each device gets its local gradient (pmap semantics) and the
        # step's pmean makes them the global mean. The outputs are replicated because
        # the step pmeans everything it derives from the batch.
        mapped = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(DATA_AXIS)),
                               out_specs=(P(), P()), check_vma=False)
    else:
        mapped = make_step(axis_name=None)

    jitted = jax.jit(mapped, in_shardings=(rep, sharded), out_shardings=(rep, rep),
                     donate_argnums=(0,) if donate_state else ())

    def step(state, batch):
        _check_global_batch(batch, mesh)
        return jitted(state, batch)

    step.jitted = jitted
    return step


def replica_divergence(tree: Any) -> float:
    """The largest absolute difference between the device copies of each replicated
    array in ``tree`` (this process's copies); 0.0 when all replicas agree."""
    worst = 0.0
    for leaf in jax.tree.leaves(tree):
        if not isinstance(leaf, jax.Array):
            continue
        copies = [np.asarray(s.data) for s in leaf.addressable_shards]
        for other in copies[1:]:
            if other.shape != copies[0].shape:
                raise ValueError(f"array of shape {leaf.shape} is not replicated "
                                 f"(shards {copies[0].shape} and {other.shape})")
            if other.size:
                diff = np.abs(other.astype(np.float64) - copies[0].astype(np.float64))
                worst = max(worst, float(diff.max()))
    return worst
