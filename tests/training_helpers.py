"""Shared by the training tests and their subprocess workers: the tiny training
configuration and checkpoint reading / bitwise comparison.

Config files run by the ``stn-icnn`` CLI in a subprocess load this module by path (the
tests directory is not on their ``sys.path``)."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "experiments" / "configs" / "smoke.py"


def tiny_training_config(stage_order: tuple[str, ...], epochs: int,
                         keep_checkpoints: int | None = None):
    """The smoke config shrunk: 8 / 4 / 4 faces of 64-96 px on a 96 canvas, rough size
    32, crop 15, batch 4, a checkpoint and a log record every step."""
    spec = importlib.util.spec_from_file_location("_smoke_config", SMOKE)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    c = smoke.get_config()
    c.stage_order = tuple(stage_order)
    c.data.synthetic_size = (64, 96)
    c.data.num_train, c.data.num_validation, c.data.num_test = 8, 4, 4
    c.data.canvas_size = 96
    c.model.rough_size = 32
    c.model.crop_size = 15
    c.train.batch_size = 4
    c.train.eval_batch_size = 4
    c.train.checkpoint_every_steps = 1
    if keep_checkpoints is not None:
        c.train.keep_checkpoints = keep_checkpoints
    c.train.log_every_steps = 1
    for stage in c.stages.values():
        stage.epochs = epochs
    return c


def stage_checkpoints(workdir: Path, stage: str):
    from stn_icnn_jax.train import checkpoints

    return checkpoints.StageCheckpoints(Path(workdir) / stage / "checkpoints")


def read_checkpoint(workdir: Path, stage: str, step: int | None = None):
    """``({key path: array}, progress, step)`` of a stage's checkpoint (latest by default)."""
    ckpt = stage_checkpoints(workdir, stage)
    try:
        step = ckpt.latest_step() if step is None else step
        leaves, progress = ckpt.read(step)
        return leaves, progress, step
    finally:
        ckpt.close()


def assert_bitwise_equal(a: dict, b: dict, what: str) -> None:
    assert sorted(a) == sorted(b), what
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (what, key)
        assert np.array_equal(a[key], b[key]), f"{what}: {key} differs"


@contextlib.contextmanager
def compilation_cache(path: Path):
    """XLA's persistent compilation cache in ``path`` for the block (repeated runs in one
    test then compile each step once)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    old = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(path))
    cc.reset_cache()
    try:
        yield path
    finally:
        jax.config.update("jax_compilation_cache_dir", old)
        cc.reset_cache()
