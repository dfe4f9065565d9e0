"""The end-to-end gradient (paper eq. 17 through eqs. 3-4): d L_F / d(K, L) computed by
JAX through the sampler equals central finite differences of L_F.

L_F depends on K and L only through theta -> the bilinear crop of the image. The label
crops are nearest samples (piecewise constant in theta, no gradient by design), so the
check uses a canvas label map that is constant around every crop: the finite
differences then see only the image path that the gradient claims to follow. The
comparison runs in float64 (``jax.enable_x64``) with a step of 1e-6: L_F is piecewise
smooth (bilinear sampling, ReLU, max pooling), and a step this small crosses no kink, so
the two agree to ~1e-7 relative; in float32 the loss's rounding swamps any step small
enough to avoid the kinks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax.config import build
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.train import distributed, stages
from stn_icnn_jax.train import run as runner
from stn_icnn_jax.train import step as train_step
from training_helpers import tiny_training_config


@pytest.fixture(scope="module")
def setup():
    config = tiny_training_config(("rough", "localizer", "parts", "end_to_end"), epochs=1)
    sources = load_sources(config, show_progress=False)
    mesh = distributed.make_mesh(1)
    model, variables = runner.initial_variables(config, sources, mesh)
    variables = jax.device_get(variables)
    batch = next(iter(input_pipeline.make_loader(
        sources["train"], stages.STAGES["end_to_end"].features,
        build.input_config(config, 4, training=True), num_epochs=1)))
    # every pixel the nose class: the nose crop's target is all foreground, the other
    # parts' all background, whatever theta is
    batch = dict(batch, canvas_label=np.full_like(batch["canvas_label"], 5))
    # L's dense head starts at zero (theta = the mean boxes whatever K says); give it
    # weights so that the gradient reaches L's features and K
    rng = np.random.default_rng(0)
    fc = variables["params"]["localizer"]["fc"]
    fc["kernel"] = (0.05 * rng.standard_normal(fc["kernel"].shape)).astype(np.float32)
    return model, variables, batch


def _float64(tree):
    return jax.tree.map(
        lambda x: np.asarray(x, np.float64) if np.asarray(x).dtype == np.float32 else x, tree)


def test_gradient_through_the_crop_matches_finite_differences(setup):
    model, variables, batch = setup
    stage = stages.STAGES["end_to_end"]
    config = stages.StageConfig(learning_rates={"rough": 1e-3, "localizer": 1e-3, "parts": 1e-3})
    with jax.enable_x64(True):
        variables = _float64(variables)
        batch = {k: np.asarray(v, np.float64) / 255.0 if k in ("canvas", "rough_image") else v
                 for k, v in _float64(batch).items()}

        def loss(params):
            return train_step.stage_loss(model, stage, config, params,
                                         variables["batch_stats"], batch)[0]

        params = jax.tree.map(jnp.asarray, variables["params"])
        loss_at = jax.jit(loss)
        assert loss_at(params).dtype == jnp.float64
        grad = jax.jit(jax.grad(loss))(params)
        rng = np.random.default_rng(1)
        eps = 1e-6
        for network in ("localizer", "rough"):
            # a random unit direction in this network's parameters only
            direction = jax.tree.map(lambda x: rng.standard_normal(x.shape), params[network])
            norm = np.sqrt(sum(float(np.sum(d * d)) for d in jax.tree.leaves(direction)))
            direction = jax.tree.map(lambda d: d / norm, direction)
            analytic = sum(float(jnp.vdot(g, d)) for g, d in
                           zip(jax.tree.leaves(grad[network]), jax.tree.leaves(direction)))
            assert abs(analytic) > 1e-4, f"{network}: no gradient reaches it through the crop"

            def shifted(sign):
                p = dict(params)
                p[network] = jax.tree.map(lambda x, d: x + sign * eps * d, params[network],
                                          direction)
                return float(loss_at(p))

            numeric = (shifted(1) - shifted(-1)) / (2 * eps)
            np.testing.assert_allclose(analytic, numeric, rtol=1e-4, err_msg=network)
