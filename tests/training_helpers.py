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


def load_module(path: Path, name: str | None = None):
    """The Python file ``path`` (an experiments script or config) loaded as a module."""
    spec = importlib.util.spec_from_file_location(name or f"_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def experiment_script(name: str):
    """``experiments/<name>.py`` loaded as a module (its ``main(argv)`` callable)."""
    return load_module(REPO / "experiments" / f"{name}.py")


def tiny_training_config(stage_order: tuple[str, ...], epochs: int,
                         keep_checkpoints: int | None = None):
    """The smoke config shrunk: 8 / 4 / 4 faces of 64-96 px on a 96 canvas, rough size
    32, crop 15, batch 4, a checkpoint and a log record every step."""
    c = load_module(SMOKE, "_smoke_config").get_config()
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


def tiny_config_source(stage_order: tuple[str, ...], epochs: int) -> str:
    """The text of a config file whose ``get_config()`` is
    ``tiny_training_config(stage_order, epochs)``, for ``stn-icnn train --config`` in a
    subprocess (it loads this module by path)."""
    return f'''
import importlib.util

spec = importlib.util.spec_from_file_location("_training_helpers", {str(Path(__file__))!r})
helpers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helpers)


def get_config():
    return helpers.tiny_training_config({tuple(stage_order)!r}, {epochs})
'''


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


def write_fake_run(config, workdir: Path, stages: tuple[str, ...] | None = None,
                   seed: int = 0, noise: float = 0.05) -> dict:
    """A work directory as a finished run leaves it, without training (fast): for each
    stage in turn, the variables after the previous one with every parameter of the
    networks the stage trains moved by ``noise`` x N(0, 1) (seeded), saved through the
    training loop's own ``StageRun`` checkpoints as the stage's finished best step.

    Returns ``{stage: variables after it}`` (numpy).
    """
    import jax

    from stn_icnn_jax.config import build
    from stn_icnn_jax.data.sources import load_sources
    from stn_icnn_jax.train import checkpoints, distributed, loop, run
    from stn_icnn_jax.train.stages import get

    workdir = Path(workdir)
    checkpoints.check_or_write_config(workdir, config.to_json(sort_keys=True))
    mesh = distributed.make_mesh()
    sources = load_sources(config, show_progress=False)
    _, variables = run.initial_variables(config, sources, mesh)
    variables = jax.tree_util.tree_map(np.asarray, dict(variables))
    rng = np.random.default_rng(seed)
    after = {}
    for step, name in enumerate(stages or tuple(config.stage_order), start=1):
        stage_config = build.stage_config(config, name)
        params = {net: jax.tree_util.tree_map(
                      lambda x: (x + noise * rng.standard_normal(x.shape)).astype(x.dtype), tree)
                  if stage_config.trains(net) else tree
                  for net, tree in variables["params"].items()}
        variables = {"params": params, "batch_stats": variables["batch_stats"]}
        stage_run = loop.StageRun(get(name), config, variables, sources, workdir, mesh)
        try:
            state = stage_run.state.replace(step=np.asarray(step, np.int32))
            progress = dict(stage_run.progress, epoch=stage_run.config.epochs,
                            best_step=step, best_selection=0.5)
            stage_run.ckpt.save(step, state, progress, selection=0.5)
        finally:
            stage_run.ckpt.close()
        after[name] = variables
    return after

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


@contextlib.contextmanager
def disk_full_at_step(step: int):
    """Inside it, the disk fills while this process writes checkpoint ``step``: orbax's
    write of the checkpoint's ``progress`` item stops half-written with ``ENOSPC``."""
    import errno
    import json
    import os

    from orbax.checkpoint._src.handlers import json_checkpoint_handler as json_handler

    write = json_handler.JsonCheckpointHandler._save_fn

    async def disk_full(self, x, directory):
        # orbax writes item "progress" of step S to S.orbax-checkpoint-tmp/progress...
        if (directory.name.split(".")[0] == "progress"
                and directory.parent.name.split(".")[0] == str(step)):
            (directory / "metadata").write_text(json.dumps(x)[:10])  # half written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "metadata"))
        return await write(self, x, directory)

    json_handler.JsonCheckpointHandler._save_fn = disk_full
    try:
        yield
    finally:
        json_handler.JsonCheckpointHandler._save_fn = write
