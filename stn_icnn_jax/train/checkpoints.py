"""Orbax checkpoints of a training stage: keep the last N and the best, resume exactly.

Each checkpoint holds three items: ``state`` (the :class:`~stn_icnn_jax.train.TrainState`:
step, parameters, BatchNorm statistics, optimiser state), ``layout`` (JSON: where each
leaf of the state lives, see below) and ``progress`` (JSON: epoch, batches done in that
epoch, every process's grain iterator state, the best validation score so far).
Together they are everything a step depends on, so a run killed at any point and
started again continues with bitwise the same parameters as an uninterrupted one. Saving is synchronous and
atomic (orbax writes a temporary directory and renames it), so a crash never leaves a
half-written checkpoint behind.

Several processes (a multi-host run, checkpoints in a directory every process shares):
process 0 alone writes, since the state is replicated; each process's orbax manager
sees only its own process, so orbax puts no barrier of its own between them. After each
save every process learns whether it succeeded
(:func:`~stn_icnn_jax.train.distributed.raise_if_any_failed`): a write that fails (disk
full on the host that writes) stops every process at that point, process 0 with its
:class:`CheckpointSaveError` and the others with ``process 0 stopped the run: could not
save checkpoint ...``, instead of the others waiting in a barrier of orbax's for a
process that has left it (which also desynchronised every later collective).

The state is stored packed: one 1-D array per dtype (``float32``, ``int32``) holding
every leaf's values back to back, and ``layout`` lists each leaf's key path, dtype,
shape and offset. Orbax spends ~1.5 ms per array it writes, and a stage's state has
~800 small leaves (parameters plus Adam moments): packed, a save takes ~40 ms instead
of ~1.2 s. ``layout`` also keeps each packed array's CRC-32, checked on every read.

Damage: a checkpoint that cannot be read (truncated, zeroed or missing files, a wrong
checksum) is reported in one line and moved to ``../unreadable_checkpoints/`` (never
deleted), and :meth:`StageCheckpoints.restore_latest` / :meth:`~StageCheckpoints.
restore_best` fall back to the newest (best) readable one. A failed save raises
:class:`CheckpointSaveError`; the earlier checkpoints stay as they were.
"""

from __future__ import annotations

import json
import logging
import sys
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_managers

from stn_icnn_jax.config.base import ADDED_KEYS
from stn_icnn_jax.errors import UsageError, UserError, one_line
from stn_icnn_jax.train import distributed


class ConfigMismatchError(UsageError, ValueError):
    """A work directory already holds a run with a different configuration."""


class ResumeMismatchError(UsageError, ValueError):
    """A mid-epoch checkpoint cannot be resumed exactly by this run (e.g. it was
    written by a different number of processes)."""


def _quiet_orbax(record: logging.LogRecord) -> bool:
    """Drops orbax's log records that only repeat what this module reports: a warning
    for each mid-epoch checkpoint (it has no validation score), and the traceback of a
    failed write in orbax's writer thread (re-raised in :meth:`StageCheckpoints.save`,
    which reports it as one line)."""
    message = record.getMessage()
    return not ("did not provide metrics" in message
                or "_SignalingThread.run() raised an exception" in message)


logging.getLogger("absl").addFilter(_quiet_orbax)

# Bookkeeping fields that never change what is computed: they may differ between the
# runs sharing a work directory (e.g. checkpoint more often after a crash).
OPERATIONAL_KEYS = ("train.log_every_steps", "train.checkpoint_every_steps",
                    "train.keep_checkpoints")


def check_or_write_config(workdir: Path, config_json: str) -> None:
    """Refuse a work directory made by a different configuration; record ours otherwise.

    Only the :data:`OPERATIONAL_KEYS` may differ; ``config.json`` keeps the first run's.
    A key the first run's file lacks because it was added to the configuration later
    (``config.base.ADDED_KEYS``) counts as that key's old implicit value.
    """
    path = Path(workdir) / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        new = json.loads(config_json)
        for key, value in ADDED_KEYS.items():
            if _lookup(old, key) == "<absent>":
                *parents, leaf = key.split(".")
                tree = old
                for part in parents:
                    tree = tree.setdefault(part, {})
                tree[leaf] = value
        diffs = sorted(k for k in _diff(old, new) if k not in OPERATIONAL_KEYS)
        if diffs:
            shown = "; ".join(
                f"{k}: {_lookup(old, k)!r} there, {_lookup(new, k)!r} now" for k in diffs[:10]
            )
            raise ConfigMismatchError(
                f"{workdir} holds a run with a different configuration ({path}); differing "
                f"keys: {shown}{' ...' if len(diffs) > 10 else ''}. Refusing to mix the two "
                "runs: use a new --workdir, or delete the old one to start over."
            )
        return
    Path(workdir).mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(config_json)
    tmp.replace(path)


def _lookup(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return "<absent>"
        tree = tree[key]
    return tree


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def best_rank(metrics: dict) -> tuple[float, int]:
    """BestN's sort key (the largest is kept): the higher selection score, and on a tie
    the *earlier* step, the same choice as the training loop's strict ``>`` (orbax alone would
    keep the later of two equal scores and delete the one the loop calls best)."""
    selection = float(metrics["selection"])
    if selection != selection:  # NaN never wins
        selection = float("-inf")
    return selection, -int(metrics.get("step", 0))


class CheckpointUnreadable(Exception):
    """One checkpoint cannot be read (truncated, zeroed or missing files, bad checksum)."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"checkpoint {path} is unreadable: {reason}")


class NoReadableCheckpointError(UserError):
    """Every checkpoint of a stage (or every one with a validation score) is unreadable."""


class CheckpointSaveError(UserError):
    """Writing a checkpoint failed (disk full, permissions, I/O error)."""


SET_ASIDE_DIR = "unreadable_checkpoints"


def _short(exc: BaseException, limit: int = 300) -> str:
    text = one_line(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class StageCheckpoints:
    """A CheckpointManager keeping the latest ``keep`` checkpoints plus the best one.

    "Best" is the highest ``selection`` passed to :meth:`save`, the earliest on a tie.
    """

    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        # This process alone, to orbax: no barriers of orbax's between the processes
        # (process 0 writes; :meth:`save` tells the others how that went).
        own = jax.process_index()
        policy = ocp_managers.AnyPreservationPolicy([
            ocp_managers.LatestN(n=keep),
            ocp_managers.BestN(get_metric_fn=best_rank, n=1, keep_checkpoints_without_metrics=False),
        ])
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy, enable_async_checkpointing=False, create=False,
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    primary_host=own, active_processes={own}),
                # best_fn makes orbax write each checkpoint's metrics to disk, so the
                # scores survive a restart (BestN and best_scored_step read them).
                best_fn=best_rank,
            ),
            item_names=("state", "layout", "progress"),
        )

    def save(self, step: int, state: Any, progress: dict, selection: float | None = None) -> None:
        """Writes checkpoint ``step`` (atomically: a failed save leaves the earlier ones
        as they were). Several processes: every process calls it with the same
        arguments (a collective); process 0 writes, and all of them return or raise
        together.

        Raises:
          CheckpointSaveError: the write failed (disk full, permissions, I/O error).
          distributed.OtherProcessFailed: on the other processes, when process 0's
            write failed (its message).
        """
        failure = self._write(step, state, progress, selection) if jax.process_index() == 0 \
            else None
        distributed.raise_if_any_failed(failure)
        if jax.process_index() != 0:
            self._manager.reload()  # the steps process 0 wrote and deleted

    def _write(self, step: int, state: Any, progress: dict,
               selection: float | None) -> Exception | None:
        """Writes checkpoint ``step`` (this process); the failure, if any, as the error
        to raise: :class:`CheckpointSaveError` for a failed write, the packing error as
        it is for a state that cannot be packed."""
        metrics = None if selection is None else {"selection": float(selection), "step": int(step)}
        previous = self.latest_step()
        try:
            packed, layout = pack(state)
        except Exception as exc:  # noqa: BLE001 - e.g. a state sharded across hosts
            return exc
        try:
            self._manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(packed), layout=ocp.args.JsonSave(layout),
                    progress=ocp.args.JsonSave(progress),
                ),
                metrics=metrics,
            )
            self._manager.wait_until_finished()
        except Exception as exc:  # noqa: BLE001 - every write failure is reported alike
            kept = (f"the previous checkpoint, step {previous}, is intact in "
                    f"{self.directory / str(previous)}" if previous is not None else
                    "no earlier checkpoint of this stage exists")
            error = CheckpointSaveError(
                f"could not save checkpoint {self.directory / str(step)} ({_short(exc)}); "
                f"training stopped; {kept}. Free disk space (or fix the directory's "
                "permissions) and re-run the same command to resume.")
            error.__cause__ = exc
            return error
        return None

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, step: int, template: Any, partial: bool = False) -> tuple[Any, dict]:
        """``(state, progress)`` of checkpoint ``step``; ``template`` gives the state's
        structure (its values are not used), numpy leaves come back. ``partial``: the
        template holds only some of the state's leaves (:func:`unpack`).

        Raises:
          CheckpointUnreadable: the checkpoint's files are damaged or missing.
          ValueError: it holds a different model's state (the message names the
            checkpoint).
        """
        packed, layout, progress = self._read_checked(step)
        try:
            return unpack(packed, layout, template, partial), progress
        except ValueError as exc:
            raise ValueError(f"{self.directory / str(step)}: {exc}") from None

    def read(self, step: int) -> tuple[dict[str, np.ndarray], dict]:
        """``({key path: array}, progress)`` of checkpoint ``step``, without a template."""
        packed, layout, progress = self._read_checked(step)
        return {leaf["path"]: _leaf(packed, leaf) for leaf in layout["leaves"]}, progress

    def read_progress(self, step: int) -> tuple[dict, dict]:
        """``(layout, progress)`` of checkpoint ``step`` (no arrays are read)."""
        return self._read_json(step)

    def _read_checked(self, step: int) -> tuple[dict[str, np.ndarray], dict, dict]:
        """``(packed, layout, progress)``, checksums verified; any failure to read is
        :class:`CheckpointUnreadable`."""
        try:
            layout, progress = self._read_json(step)
            packed = self._read_packed(step, layout)
            check_sums(packed, layout)
        except Exception as exc:  # noqa: BLE001 - whatever the storage layer raises
            raise CheckpointUnreadable(self.directory / str(step), _short(exc)) from exc
        return packed, layout, progress

    def _read_json(self, step: int) -> tuple[dict, dict]:
        restored = self._manager.restore(
            int(step), args=ocp.args.Composite(layout=ocp.args.JsonRestore(),
                                               progress=ocp.args.JsonRestore()),
        )
        return dict(restored["layout"]), dict(restored["progress"])

    def _read_packed(self, step: int, layout: dict) -> dict[str, np.ndarray]:
        target = {dtype: np.zeros((size,), dtype) for dtype, size in layout["sizes"].items()}
        restored = self._manager.restore(
            int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        return {k: np.asarray(v) for k, v in restored["state"].items()}

    # ------------------------------------------------------------ damaged checkpoints

    def restore_latest(self, template: Any) -> tuple[int, Any, dict] | None:
        """``(step, state, progress)`` of the newest readable checkpoint (None if there
        is none). Each newer unreadable one is reported in one line and moved aside
        (:meth:`set_aside`).

        Raises:
          NoReadableCheckpointError: checkpoints exist but none is readable.
        """
        steps = self.all_steps()
        for step in sorted(steps, reverse=True):
            try:
                return (step, *self.restore(step, template))
            except CheckpointUnreadable as bad:
                self.set_aside(bad, "falling back to the previous checkpoint")
        if steps:
            raise NoReadableCheckpointError(
                f"none of the {len(steps)} checkpoints in {self.directory} is readable (moved "
                f"to {self.directory.parent / SET_ASIDE_DIR}); restore the directory from a "
                "copy, or delete it to train this stage again")
        return None

    def restore_best(self, template: Any, step: int | None,
                     partial: bool = False) -> tuple[int, Any]:
        """``(step, state)`` of checkpoint ``step`` (the run's best) if it is readable,
        else of the best readable checkpoint by its saved validation score (reported
        in one line, the unreadable ones moved aside). ``template`` and ``partial`` as
        in :meth:`restore`.

        Raises:
          NoReadableCheckpointError: no checkpoint with a validation score is readable.
        """
        tried = []
        while True:
            if step is None or step not in self.all_steps():
                step = self.best_scored_step()
            if step is None:
                break
            try:
                return step, self.restore(step, template, partial)[0]
            except CheckpointUnreadable as bad:
                tried.append(step)
                self.set_aside(bad, "falling back to the best readable epoch-end checkpoint")
                step = None
        raise NoReadableCheckpointError(
            f"no readable checkpoint with a validation score is left in {self.directory}"
            + (f" (unreadable: steps {', '.join(map(str, tried))}, moved to "
               f"{self.directory.parent / SET_ASIDE_DIR})" if tried else "")
            + "; restore the directory from a copy, or delete it to train this stage again")

    def best_scored_step(self) -> int | None:
        """The checkpoint with the best saved validation score (:func:`best_rank`)."""
        scored = [(best_rank(m), s) for s in self.all_steps()
                  if (m := self._manager.metrics(s))]
        return max(scored)[1] if scored else None

    def set_aside(self, bad: CheckpointUnreadable, then: str) -> Path:
        """Moves an unreadable checkpoint to ``../unreadable_checkpoints/STEP`` (never
        deletes it) and says so in one line; returns where it went."""
        aside_dir = self.directory.parent / SET_ASIDE_DIR
        target = aside_dir / bad.path.name
        n = 1
        while target.exists():
            n += 1
            target = aside_dir / f"{bad.path.name}.{n}"
        failure = None
        if jax.process_index() == 0:
            try:
                aside_dir.mkdir(parents=True, exist_ok=True)
                bad.path.rename(target)
            except OSError as exc:  # every process must hear of it
                failure = exc
            else:
                print(f"warning: {bad}; moved it to {target}, {then}", file=sys.stderr,
                      flush=True)
        distributed.raise_if_any_failed(failure)  # and a barrier: the move is done
        self._manager.reload()
        return target

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def close(self) -> None:
        self._manager.close()


# --------------------------------------------------------------------------- packing


def _host(x: Any) -> np.ndarray:
    """A leaf's values on the host (jax arrays must be fully replicated or addressable)."""
    if isinstance(x, jax.Array):
        if x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        raise ValueError(f"cannot checkpoint a {x.shape} array sharded across hosts; "
                         "training state is expected to be replicated")
    return np.asarray(x)


def pack(state: Any) -> tuple[dict[str, np.ndarray], dict]:
    """``state`` -> ``({dtype: 1-D array}, layout)``; exact (values are copied, not cast)."""
    leaves, sizes, chunks = [], {}, {}
    for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
        value = _host(x)
        dtype = value.dtype.name
        offset = sizes.get(dtype, 0)
        leaves.append({"path": jax.tree_util.keystr(path), "dtype": dtype,
                       "shape": list(value.shape), "offset": offset})
        chunks.setdefault(dtype, []).append(value.ravel())
        sizes[dtype] = offset + value.size
    packed = {dtype: np.concatenate(parts) for dtype, parts in chunks.items()}
    crc32 = {dtype: zlib.crc32(memoryview(np.ascontiguousarray(v)).cast("B"))
             for dtype, v in packed.items()}
    return packed, {"sizes": sizes, "leaves": leaves, "crc32": crc32}


def check_sums(packed: dict[str, np.ndarray], layout: dict) -> None:
    """Raises ``ValueError`` if a packed array's CRC-32 differs from the saved one (a
    checkpoint written before checksums were kept has none to check)."""
    for dtype, want in layout.get("crc32", {}).items():
        got = zlib.crc32(memoryview(np.ascontiguousarray(packed[dtype])).cast("B"))
        if got != want:
            raise ValueError(f"the {dtype} arrays' CRC-32 is {got:#010x}, saved {want:#010x} "
                             "(the data changed after it was written)")


def _leaf(packed: dict[str, np.ndarray], leaf: dict) -> np.ndarray:
    size = int(np.prod(leaf["shape"], dtype=np.int64))
    flat = packed[leaf["dtype"]][leaf["offset"] : leaf["offset"] + size]
    return flat.reshape(leaf["shape"]).copy()


def unpack(packed: dict[str, np.ndarray], layout: dict, template: Any,
           partial: bool = False) -> Any:
    """The inverse of :func:`pack`: ``template``'s structure (arrays or
    ``jax.ShapeDtypeStruct`` leaves; values unused) filled with the saved leaves of the
    same key path, each checked for dtype and shape.

    ``partial=False``: the template is the whole saved state (every saved leaf is used).
    ``partial=True``: it holds some of the state's leaves, e.g. a ``TrainState`` whose
    ``step`` and ``opt_state`` are None (the parameters and BatchNorm statistics alone:
    no optimiser state need be built to read them).
    """
    saved = {leaf["path"]: leaf for leaf in layout["leaves"]}
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    if not partial and len(saved) != len(flat):
        raise ValueError(f"checkpoint has {len(saved)} arrays, the model's state {len(flat)}; "
                         "was it written by a different model configuration?")
    leaves = []
    for path, x in flat:
        want = (jax.tree_util.keystr(path), np.dtype(x.dtype).name, list(np.shape(x)))
        leaf = saved.get(want[0])
        got = None if leaf is None else (leaf["path"], leaf["dtype"], list(leaf["shape"]))
        if want != got:
            raise ValueError(
                f"the model's array {want} is " + ("not in the checkpoint" if got is None else
                                                   f"saved as {got}")
                + "; was it written by a different model configuration?")
        leaves.append(_leaf(packed, leaf))
    return jax.tree_util.tree_unflatten(treedef, leaves)
