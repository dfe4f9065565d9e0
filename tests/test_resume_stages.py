"""Exact resume of the later stages: a run stopped right after any checkpoint of the
part pre-training or the end-to-end stage (per-network optimisers, the canvas loader),
mid-epoch or at an epoch boundary, ends bitwise where an uninterrupted run ends.

A stop right after the save of step k is emulated by copying the uninterrupted run's
work directory and removing everything written after that save (the stage's later
checkpoints, the later stages, the results); every checkpoint is kept, so any step can
be the stopping point. The SIGKILL of a real process is tested in test_training.py.
"""

from __future__ import annotations

import json
import shutil

import pytest

from stn_icnn_jax.train import run as runner
from training_helpers import (assert_bitwise_equal, compilation_cache, read_checkpoint,
                              stage_checkpoints, tiny_training_config)

STAGES = ("rough", "localizer", "parts", "end_to_end")
EPOCHS = 2
STEPS_PER_EPOCH = 4  # 8 faces x 2 copies / batch 4

pytestmark = pytest.mark.slow


def _config():
    config = tiny_training_config(STAGES, EPOCHS, keep_checkpoints=100)
    config.stages.end_to_end.learning_rates = {"rough": 1e-3, "localizer": 1e-3, "parts": 1e-3}
    return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    workdir = tmp_path_factory.mktemp("reference") / "work"
    with compilation_cache(cache):
        results = runner.run(_config(), workdir, show_progress=False)
    return {"workdir": workdir, "results": results, "cache": cache}


def _stopped_after(reference_dir, workdir, stage: str, step: int) -> None:
    """``workdir`` as a run stopped right after saving ``stage``'s step ``step`` left it."""
    shutil.copytree(reference_dir, workdir)
    (workdir / "results.json").unlink()
    for later in STAGES[STAGES.index(stage) + 1:]:
        shutil.rmtree(workdir / later)
    checkpoints = workdir / stage / "checkpoints"
    ckpt = stage_checkpoints(workdir, stage)
    steps = ckpt.all_steps()
    ckpt.close()
    assert step in steps, f"no checkpoint of step {step} kept: {steps}"
    for s in steps:
        if s > step:
            shutil.rmtree(checkpoints / str(s))


@pytest.mark.parametrize("stage, step, where", [
    ("parts", 1, (0, 1)),                              # mid-epoch, first epoch
    ("parts", STEPS_PER_EPOCH, (1, 0)),                # right after the epoch-1 checkpoint
    ("end_to_end", STEPS_PER_EPOCH + 2, (1, 2)),       # mid-epoch, second epoch
])
def test_resume_after_a_stop_is_bitwise_exact(reference, tmp_path, stage, step, where):
    workdir = tmp_path / "work"
    _stopped_after(reference["workdir"], workdir, stage, step)
    _, progress, latest = read_checkpoint(workdir, stage)
    assert latest == step and (progress["epoch"], progress["batch_in_epoch"]) == where
    assert (progress["loader_state"] is not None) == (where[1] > 0)

    with compilation_cache(reference["cache"]):
        results = runner.run(_config(), workdir, show_progress=False)

    for name in STAGES:
        ours, our_progress, our_step = read_checkpoint(workdir, name)
        theirs, their_progress, their_step = read_checkpoint(reference["workdir"], name)
        assert our_step == their_step == EPOCHS * STEPS_PER_EPOCH
        assert our_progress == their_progress, name
        assert_bitwise_equal(ours, theirs, f"{name} final state (stopped at {stage} {step})")
        best = our_progress["best_step"]
        assert_bitwise_equal(read_checkpoint(workdir, name, best)[0],
                             read_checkpoint(reference["workdir"], name, best)[0],
                             f"{name} best state")
    assert json.loads(json.dumps(results["test"])) == json.loads(
        json.dumps(reference["results"]["test"]))
    # the stage did resume rather than start over: its first checkpoints are the copies
    for s in range(1, step + 1):
        assert (workdir / stage / "checkpoints" / str(s)).is_dir()
