"""The stage registry, the typed configs built from a ConfigDict, and the one evaluation
path: the F1 that ``train.evaluate`` reports equals an independent numpy count."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from stn_icnn_jax import metrics, taxonomy
from stn_icnn_jax.config import base_config, build
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.train import distributed, evaluate, run, stages
from training_helpers import tiny_training_config


def test_registry_order_features_and_networks():
    assert stages.STAGE_NAMES == ("rough", "localizer", "parts", "end_to_end")
    for stage in stages.STAGES.values():
        assert set(stage.features) <= set(input_pipeline.FEATURES), stage.name
        assert set(stage.eval_features) <= set(input_pipeline.FEATURES), stage.name
        assert set(stage.networks) <= set(stages.NETWORKS), stage.name
    assert stages.STAGES["end_to_end"].networks == stages.NETWORKS
    assert stages.STAGES["localizer"].selection == "theta_loss"
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        stages.get("nope")


def test_train_modes_follow_learning_rates_and_the_frozen_stats_switch():
    e2e = stages.STAGES["end_to_end"]
    config = stages.StageConfig(learning_rates={"parts": 1e-3})
    assert e2e.train_modes(config) == {"rough": False, "localizer": False, "parts": True}
    thawed = dataclasses.replace(config, update_frozen_batch_stats=True)
    assert e2e.train_modes(thawed) == {"rough": True, "localizer": True, "parts": True}
    # A stage never puts a network it does not run (here the parts) in train mode.
    loc = stages.STAGES["localizer"]
    assert loc.train_modes(dataclasses.replace(thawed, learning_rates={"localizer": 1.0})) == {
        "rough": True, "localizer": True, "parts": False}


def test_a_stage_refuses_to_train_a_network_it_does_not_run():
    c = base_config()
    c.stages.rough.learning_rates = {"rough": 1e-3, "parts": 1e-3}
    with pytest.raises(ValueError, match="stage rough does not run network 'parts'"):
        build.stage_config(c, "rough")
    c.stages.rough.learning_rates = {"rough": 1e-3, "prats": 0.0}
    with pytest.raises(ValueError, match="unknown network 'prats'"):
        build.stage_config(c, "rough")


def test_stage_config_is_the_config_section_and_refuses_unknown_fields():
    c = base_config()
    built = build.stage_config(c, "end_to_end")
    assert dataclasses.asdict(built) == c.stages.end_to_end.to_dict()
    c.stages.parts.epoch = 3  # a typo of "epochs"
    with pytest.raises(ValueError, match=r"config.stages.parts: unknown fields \['epoch'\]"):
        build.stage_config(c, "parts")


def test_base_config_defaults_are_the_typed_defaults():
    c = base_config()
    model = build.model_config(c)
    assert model == dataclasses.replace(stn_icnn.STNiCNNConfig(), localizer=model.localizer)
    assert model.localizer.channels == tuple(c.model.localizer_channels)
    inputs = build.input_config(c, 4, training=True)
    assert (inputs.rough_size, inputs.canvas_size) == (model.rough_size, model.canvas_size)
    assert inputs.augment.copies == 5 and inputs.shuffle and inputs.drop_remainder


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def tiny_run():
    config = tiny_training_config(stages.STAGE_NAMES, epochs=1)
    config.data.num_validation = 5  # batch 4: the last batch is short (padded, then cut)
    mesh = distributed.make_mesh()
    sources = load_sources(config, show_progress=False)
    model, variables = run.initial_variables(config, sources, mesh)
    # Random part models, so that the parse predicts some foreground.
    variables = jax.device_get(variables)
    return config, mesh, sources, model, variables


def _numpy_region_confusion(pred: np.ndarray, batch: dict) -> np.ndarray:
    """The pooled [target, pred] counts over each example's own image region."""
    total = np.zeros((taxonomy.NUM_CLASSES,) * 2, np.int64)
    for k in range(pred.shape[0]):
        (top, left), (h, w) = batch["image_origin"][k], batch["image_size"][k]
        target = batch["canvas_label"][k, top : top + h, left : left + w]
        np.add.at(total, (target.ravel(), pred[k, top : top + h, left : left + w].ravel()), 1)
    return total


@pytest.mark.parametrize("stage_name", ["rough", "parts", "end_to_end"])
def test_reported_f1_equals_an_independent_numpy_count(tiny_run, stage_name):
    config, mesh, sources, model, variables = tiny_run
    stage = stages.STAGES[stage_name]
    eval_input = build.input_config(config, 4, training=False)
    reported = evaluate.evaluate(stage, evaluate.EvalFunctions(model, mesh)(stage), variables,
                                 sources["validation"], eval_input, mesh)
    expected = np.zeros((taxonomy.NUM_CLASSES,) * 2, np.int64)
    source = "ground_truth" if stage_name == "parts" else "predicted"
    for batch in input_pipeline.make_loader(sources["validation"], stage.eval_features,
                                            eval_input):
        if stage_name == "rough":
            logits = model.apply(variables, batch["rough_image"], False,
                                 method=stn_icnn.STNiCNN.rough_logits)
            pred = np.asarray(np.argmax(logits, -1))
            np.add.at(expected, (batch["rough_label"].ravel(), pred.ravel()), 1)
        else:
            pred = np.asarray(stn_icnn.parse(model, variables, batch, theta_source=source)["labels"])
            expected += _numpy_region_confusion(pred, batch)
    assert reported["pixels"] == expected.sum()
    np.testing.assert_equal(reported["f1"], metrics.f1_scores(expected))
    if stage_name != "rough":  # the padding of the canvas is not scored
        sizes = [np.prod(dict(r)["image"].shape[:2]) for r in sources["validation"]]
        assert reported["pixels"] == sum(sizes)


def test_localizer_reports_the_mean_theta_loss_over_all_examples(tiny_run):
    config, mesh, sources, model, variables = tiny_run
    stage = stages.STAGES["localizer"]
    eval_input = build.input_config(config, 4, training=False)
    reported = evaluate.evaluate(stage, evaluate.EvalFunctions(model, mesh)(stage), variables,
                                 sources["validation"], eval_input, mesh)
    losses = []
    for batch in input_pipeline.make_loader(sources["validation"], stage.eval_features,
                                            eval_input):
        logits = model.apply(variables, batch["rough_image"], False,
                             method=stn_icnn.STNiCNN.rough_logits)
        theta = np.asarray(model.apply(variables, logits, False, method=stn_icnn.STNiCNN.localize))
        target = np.asarray(stn_icnn.ground_truth_theta(batch, model.config))
        d = np.abs(theta - target)
        losses += list(np.where(d < 1, 0.5 * d**2, d - 0.5).mean(axis=(1, 2, 3)))
    assert len(losses) == 5
    assert reported["theta_loss"] == pytest.approx(float(np.mean(losses)), rel=1e-5)


def test_mask_outside_keeps_only_each_image_region():
    label = np.arange(2 * 4 * 5).reshape(2, 4, 5)
    out = np.asarray(metrics.mask_outside(label, np.array([[1, 2], [0, 0]]),
                                          np.array([[2, 2], [4, 5]])))
    expected = np.full_like(label, -1)
    expected[0, 1:3, 2:4] = label[0, 1:3, 2:4]
    expected[1] = label[1]
    np.testing.assert_array_equal(out, expected)


def test_localizer_starts_at_the_training_sets_mean_boxes(tiny_run):
    """L's head starts at zero, so its theta for any input is the mean over the training
    records of their ground-truth theta (eq. 21)."""
    config, mesh, sources, model, variables = tiny_run
    layout = input_pipeline.Layout(build.input_config(config, 1, training=False),
                                   ("image_size", "image_origin", "centers"))
    truths = []
    for record in sources["train"]:
        row = {k: v[None] for k, v in layout.map(dict(record)).items()}
        truths.append(np.asarray(stn_icnn.ground_truth_theta(row, model.config))[0])
    rough = np.random.default_rng(0).random((2, config.model.rough_size,
                                              config.model.rough_size, 3), np.float32)
    logits = model.apply(variables, rough, False, method=stn_icnn.STNiCNN.rough_logits)
    theta = np.asarray(model.apply(variables, logits, False, method=stn_icnn.STNiCNN.localize))
    for k in range(2):
        np.testing.assert_allclose(theta[k], np.mean(truths, axis=0), atol=1e-6)
