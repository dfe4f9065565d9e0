"""The iCNN baseline's cropper: part windows at the centroids of K's rough mask, checked
on hand-worked masks (including the fallback for a part missing from the mask), and
the inverse of eq. 21's translation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax import theta_geometry
from stn_icnn_jax.config import build
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.model.localizer import DEFAULT_INIT_PARAMS

# An 8x8 rough label map (9 classes): two pixels per brow, one per eye, two nose pixels,
# the mouth as upper lip + inner mouth + lower lip (its centroid is the union's).
ROUGH = np.zeros((8, 8), np.int32)
ROUGH[1, 1] = ROUGH[1, 2] = 1   # brow_L: centroid (1, 1.5)
ROUGH[1, 5] = ROUGH[1, 6] = 2   # brow_R: (1, 5.5)
ROUGH[3, 1] = 3                 # eye_L: (3, 1)
ROUGH[3, 6] = 4                 # eye_R: (3, 6)
ROUGH[4, 3] = ROUGH[5, 4] = 5   # nose: (4.5, 3.5)
ROUGH[6, 3] = 6                 # upper lip
ROUGH[6, 4] = 7                 # inner mouth
ROUGH[7, 3] = ROUGH[7, 4] = 8   # lower lip -> mouth: (6.5, 3.5)
IMAGE = (40, 24)  # (h, w): the 8x8 map is 5x taller and 3x wider than its pixels
# y = round((y_r + 0.5) * 5 - 0.5), x = round((x_r + 0.5) * 3 - 0.5), worked by hand:
#   brow_L (1, 1.5) -> (7, 5.5) -> (7, 6);   brow_R (1, 5.5) -> (7, 17.5) -> (7, 18)
#   eye_L (3, 1) -> (17, 4);                 eye_R (3, 6) -> (17, 19)
#   nose (4.5, 3.5) -> (24.5, 11.5) -> (25, 12);  mouth (6.5, 3.5) -> (34.5, 11.5) -> (35, 12)
EXPECTED = np.array([[7, 6], [7, 18], [17, 4], [17, 19], [25, 12], [35, 12]], np.float32)
# The fallback for eye_R: a localiser init box with (tx, ty) = (0.5, -0.2) sits, in a
# 40x24 image (eq. 21, paper: tx = -1 + 2 (x + 0.5) / W), at x = 1.5 * 12 - 0.5 = 17.5
# -> 18 and y = 0.8 * 20 - 0.5 = 15.5 -> 16.
FALLBACK_EYE_R = np.array([16, 18], np.float32)


def _config(theta_frame="image", crop_size=5):
    init = list(DEFAULT_INIT_PARAMS)
    init[3] = (0.2, 0.2, 0.5, -0.2)
    base = build.model_config(build.load_config("experiments/configs/smoke.py"))
    return dataclasses.replace(
        base, crop_size=crop_size, theta_frame=theta_frame, canvas_size=64,
        localizer=dataclasses.replace(base.localizer, init_params=tuple(init)))


def _batch(maps):
    logits = 5.0 * jax.nn.one_hot(jnp.asarray(maps), 9)
    n = len(maps)
    origin = np.array([[(64 - IMAGE[0]) // 2, (64 - IMAGE[1]) // 2]] * n, np.int32)
    return logits, {"image_size": np.array([IMAGE] * n, np.int32), "image_origin": origin}


def test_centroid_theta_centres_on_hand_worked_centroids_and_falls_back():
    without_eye_r = np.where(ROUGH == 4, 0, ROUGH)
    logits, batch = _batch([ROUGH, without_eye_r])
    cfg = _config()
    theta, present = jax.jit(lambda l, b: stn_icnn.centroid_theta(l, b, cfg))(logits, batch)
    want = np.stack([EXPECTED, EXPECTED])
    want[1, 3] = FALLBACK_EYE_R
    np.testing.assert_array_equal(np.asarray(present),
                                  [[True] * 6, [True, True, True, False, True, True]])
    got = np.asarray(theta_geometry.centers_from_theta(theta, np.array(IMAGE, np.float32)))
    np.testing.assert_allclose(got, want, atol=1e-4)
    # eq. 21 in full: scale crop / side, translation -1 + 2 (c + 0.5) / side
    h, w = IMAGE
    np.testing.assert_allclose(np.asarray(theta[..., 0, 0]), 5 / w, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(theta[..., 1, 1]), 5 / h, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(theta[..., 0, 2]), -1 + 2 * (want[..., 1] + 0.5) / w,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(theta[..., 1, 2]), -1 + 2 * (want[..., 0] + 0.5) / h,
                               atol=1e-6)


def test_canvas_frame_centroid_theta_crops_the_same_pixels():
    without_eye_r = np.where(ROUGH == 4, 0, ROUGH)
    logits, batch = _batch([ROUGH, without_eye_r])
    image_theta, _ = stn_icnn.centroid_theta(logits, batch, _config("image"))
    cfg = _config("canvas")
    # the canvas config's fallback box is the same box expressed on the 64 canvas
    params = np.array(cfg.localizer.init_params, np.float32)
    params[3, 2] = -1 + 2 * (FALLBACK_EYE_R[1] + batch["image_origin"][0, 1] + 0.5) / 64
    params[3, 3] = -1 + 2 * (FALLBACK_EYE_R[0] + batch["image_origin"][0, 0] + 0.5) / 64
    cfg = dataclasses.replace(cfg, localizer=dataclasses.replace(
        cfg.localizer, init_params=tuple(map(tuple, params.tolist()))))
    canvas_theta, present = stn_icnn.centroid_theta(logits, batch, cfg)
    assert not bool(present[1, 3])
    from_image = stn_icnn.to_canvas_theta(image_theta, batch, _config("image"))
    np.testing.assert_allclose(np.asarray(canvas_theta), np.asarray(from_image), atol=1e-5)


@pytest.mark.parametrize("convention", ["paper", "authors"])
def test_centers_from_theta_inverts_eq21(convention):
    rng = np.random.default_rng(0)
    centers = rng.integers(0, 300, size=(3, 6, 2)).astype(np.float32)
    sizes = rng.integers(300, 600, size=(3, 1, 2)).astype(np.float32)
    theta = theta_geometry.theta_from_centers(centers, (81, 81), sizes, convention)
    back = theta_geometry.centers_from_theta(theta, sizes, convention)
    np.testing.assert_allclose(np.asarray(back), centers, atol=2e-3)


def test_background_logit_drops_weak_part_pixels_before_the_centroid():
    """A weak brow_L pixel at (2, 1) (brow logit 1, background 0) joins the brow in K's
    map and pulls its centroid to (4/3, 4/3) -> image (round(8.67), round(5.0)) = (9, 5);
    with log(10) added to the background logit it is background and the centroid is the
    strong pixels' (1, 1.5) -> (7, 6). The strong pixels (logit 5) stay."""
    logits, batch = _batch([ROUGH])
    logits = logits.at[0, 2, 1, 1].set(1.0).at[0, 2, 1, 0].set(0.0)
    for bias, want_brow_l in ((0.0, [9, 5]), (float(np.log(10.0)), [7, 6])):
        cfg = dataclasses.replace(_config(), rough_background_logit=bias)
        theta, present = stn_icnn.centroid_theta(logits, batch, cfg)
        got = np.asarray(theta_geometry.centers_from_theta(theta, np.array(IMAGE, np.float32)))
        want = EXPECTED.copy()
        want[0] = want_brow_l
        np.testing.assert_allclose(got[0], want, atol=1e-4)
        assert np.asarray(present).all()


def test_read_rough_map_shifts_only_the_background_logit():
    logits = jax.random.normal(jax.random.key(0), (2, 4, 4, 9))
    cfg = dataclasses.replace(_config(), rough_background_logit=1.5)
    read = np.asarray(stn_icnn.read_rough_map(logits, cfg))
    np.testing.assert_allclose(read[..., 0], np.asarray(logits[..., 0]) + 1.5, rtol=1e-6)
    np.testing.assert_array_equal(read[..., 1:], np.asarray(logits[..., 1:]))
    assert stn_icnn.read_rough_map(logits, _config()) is logits


def test_localiser_reads_k_map_with_the_background_logit():
    """L's input is the softmax of K's logits as read: with a background logit b, L sees
    what it would see without b on logits whose background channel is shifted by b."""
    base = _config()
    shifted = dataclasses.replace(base, rough_background_logit=2.0)
    r = base.rough_size
    logits = jax.random.normal(jax.random.key(1), (2, r, r, 9))
    model = stn_icnn.STNiCNN(base)
    variables = model.init(jax.random.key(0), logits, False, method=stn_icnn.STNiCNN.localize)
    # L's last layer starts at zero (theta = its init box whatever the input): perturb it
    leaves, tree = jax.tree.flatten(variables["params"])
    keys = jax.random.split(jax.random.key(2), len(leaves))
    variables = {**variables, "params": jax.tree.unflatten(tree, [
        p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])}
    with_b = stn_icnn.STNiCNN(shifted).apply(variables, logits, False,
                                             method=stn_icnn.STNiCNN.localize)
    by_hand = model.apply(variables, logits.at[..., 0].add(2.0), False,
                          method=stn_icnn.STNiCNN.localize)
    plain = model.apply(variables, logits, False, method=stn_icnn.STNiCNN.localize)
    np.testing.assert_allclose(np.asarray(with_b), np.asarray(by_hand), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(with_b), np.asarray(plain), atol=1e-4)
