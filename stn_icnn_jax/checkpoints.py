"""Orbax checkpoints of a training stage: keep the last N and the best, resume exactly.

Each checkpoint holds two items: ``state`` (the :class:`~stn_icnn_jax.train.TrainState`:
step, parameters, BatchNorm statistics, optimiser state) and ``progress`` (JSON: epoch,
batches done in that epoch, the grain iterator's state, the best validation score so
far). Together they are everything a step depends on, so a run killed at any point and
started again continues with bitwise the same parameters as an uninterrupted one.
Saving is synchronous and atomic (orbax writes a temporary directory and renames it),
so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_managers


class ConfigMismatchError(ValueError):
    """A work directory already holds a run with a different configuration."""


def check_or_write_config(workdir: Path, config_json: str) -> None:
    """Refuse a work directory made by a different configuration; record ours otherwise."""
    path = Path(workdir) / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        new = json.loads(config_json)
        if old != new:
            diffs = sorted(_diff(old, new))
            raise ConfigMismatchError(
                f"{workdir} holds a run with a different configuration ({path}); differing "
                f"keys: {', '.join(diffs[:10])}{' ...' if len(diffs) > 10 else ''}. "
                "Use a new --workdir, or delete the old one to start over."
            )
        return
    Path(workdir).mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(config_json)
    tmp.replace(path)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class StageCheckpoints:
    """A CheckpointManager keeping the latest ``keep`` checkpoints plus the best one."""

    def __init__(self, directory: Path, keep: int = 3):
        policy = ocp_managers.AnyPreservationPolicy([
            ocp_managers.LatestN(n=keep),
            ocp_managers.BestN(
                get_metric_fn=lambda m: m["selection"], n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ])
        self._manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy, enable_async_checkpointing=False, create=True,
            ),
            item_names=("state", "progress"),
        )

    def save(self, step: int, state: Any, progress: dict, selection: float | None = None) -> None:
        metrics = None if selection is None else {"selection": float(selection)}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)
            ),
            metrics=metrics,
        )
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, step: int, template: Any) -> tuple[Any, dict]:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self._manager.restore(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["progress"])

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def close(self) -> None:
        self._manager.close()
