"""Each epoch of a stage draws its own order and augmentation: the training loop gives
every epoch (and every stage) its own loader seed, and a loader with another seed
visits the same examples in another order with other augmentations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.train import run as runner
from stn_icnn_jax.train.stages import STAGES
from training_helpers import tiny_training_config

EPOCHS = 2


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The input configs of the loaders a two-stage run built (training ones only)."""
    config = tiny_training_config(("rough", "localizer"), EPOCHS)
    config.train.checkpoint_every_steps = 0
    made = []
    original = input_pipeline.make_loader

    def spy(source, features, input_config, *args, **kwargs):
        if input_config.shuffle:
            made.append((tuple(features), input_config))
        return original(source, features, input_config, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(input_pipeline, "make_loader", spy)
    try:
        runner.run(config, tmp_path_factory.mktemp("run") / "work", show_progress=False)
    finally:
        mp.undo()
    return config, made


def test_every_epoch_and_stage_has_its_own_seed(recorded):
    _, made = recorded
    assert [f for f, _ in made] == [STAGES["rough"].features] * EPOCHS \
        + [STAGES["localizer"].features] * EPOCHS
    seeds = [c.seed for _, c in made]
    assert len(set(seeds)) == len(seeds), seeds
    assert all(c.augment is not None for _, c in made)


def _epoch(source, input_config):
    batches = list(input_pipeline.make_loader(source, ("rough_image",), input_config))
    return np.concatenate([b["rough_image"] for b in batches])


def test_epochs_visit_the_same_examples_in_another_order_and_augmentation(recorded):
    config, made = recorded
    source = load_sources(config, show_progress=False)["train"]
    first, second = made[0][1], made[1][1]
    # the loop's own configs: another epoch, other images (augmented differently)
    a, b = _epoch(source, first), _epoch(source, second)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, _epoch(source, first))  # a seed repeats exactly
    assert not np.array_equal(a, b)
    # without augmentation the same examples come back, in another order
    plain = [_epoch(source, dataclasses.replace(c, augment=None)) for c in (first, second)]
    keys = [[x.tobytes() for x in p] for p in plain]
    assert sorted(keys[0]) == sorted(keys[1])
    assert keys[0] != keys[1]
    # and the augmentations differ, not just their order: the two epochs' augmented
    # images are not the same collection
    assert sorted(x.tobytes() for x in a) != sorted(x.tobytes() for x in b)
