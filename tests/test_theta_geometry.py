"""The theta geometry (stn_icnn_jax.theta_geometry): eq. 21's formulas worked by hand,
crops at the thetas it makes (integer slices), inverses, and frames checked by
cropping a zero-padded canvas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampler_helpers import SETTINGS, random_image, random_theta, seeds
from stn_icnn_jax import sampler as S
from stn_icnn_jax import theta_geometry as G

MODES = ("bilinear", "nearest")


# -------------------------------------------------------- paper Fig. 7/8: odd crops
@SETTINGS
@given(
    seed=seeds,
    convention=st.sampled_from(G.CONVENTIONS),
    k=st.sampled_from([1, 3, 5]),
    mode=st.sampled_from(MODES),
)
def test_odd_crop_at_integer_centre_is_integer_slice(seed, convention, k, mode):
    hh, ww, size = 17, 19, 2 * k + 1
    r = np.random.default_rng(seed)
    centers = np.stack([r.integers(-2, hh + 2, (2, 3)), r.integers(-2, ww + 2, (2, 3))], -1)
    x = random_image(seed, (2, hh, ww, 3))
    th = G.theta_from_centers(centers.astype(np.float32), (size, size), (hh, ww), convention)
    ac = G.align_corners_for(convention)
    pad = np.pad(x, ((0, 0), (k + 3, k + 3), (k + 3, k + 3), (0, 0)))
    for method in ("general", "separable"):
        out = np.asarray(S.crop(x, th, (size, size), mode=mode, align_corners=ac, method=method))
        for n in range(2):
            for p in range(3):
                cy, cx = centers[n, p] + k + 3
                want = pad[n, cy - k : cy + k + 1, cx - k : cx + k + 1]
                np.testing.assert_allclose(out[n, p], want, atol=2e-5)


def test_align_corners_for():
    assert G.align_corners_for("paper") is False
    assert G.align_corners_for("authors") is True
    with pytest.raises(ValueError):
        G.align_corners_for("nope")


def test_theta_from_centers_formulas():
    th = G.theta_from_centers(np.array([[10.0, 20.0]]), (81, 81), (1024, 1024), "authors")
    want = [[80 / 1023, 0, -1 + 40 / 1023], [0, 80 / 1023, -1 + 20 / 1023]]
    np.testing.assert_allclose(th[0], want, rtol=1e-6)
    th = G.theta_from_centers(np.array([[10.0, 20.0]]), (81, 81), (1024, 1024), "paper")
    want = [[81 / 1024, 0, -1 + 41 / 1024], [0, 81 / 1024, -1 + 21 / 1024]]
    np.testing.assert_allclose(th[0], want, rtol=1e-6)


def test_centers_from_theta_hand_worked():
    """The translations of the formulas above back to the (y, x) = (10, 20) centre; the
    scale is not used."""
    authors = np.array([[[0.5, 0, -1 + 40 / 1023], [0, 0.25, -1 + 20 / 1023]]])
    paper = np.array([[[0.5, 0, -1 + 41 / 1024], [0, 0.25, -1 + 21 / 1024]]])
    for th, convention in ((authors, "authors"), (paper, "paper")):
        got = G.centers_from_theta(th, (1024, 1024), convention)
        np.testing.assert_allclose(np.asarray(got), [[10.0, 20.0]], atol=1e-4)


# ------------------------------------------------------------------ theta helpers
@SETTINGS
@given(seed=seeds)
def test_invert_theta_round_trip(seed):
    r = np.random.default_rng(seed)
    th = r.uniform(-1, 1, (4, 2, 3)).astype(np.float64)
    th[:, 0, 0] += 2.0
    th[:, 1, 1] += 2.0
    inv = np.asarray(G.invert_theta(th))
    m = lambda t: np.concatenate([t, np.tile([[[0, 0, 1.0]]], (len(t), 1, 1))], 1)
    np.testing.assert_allclose(m(inv) @ m(th), np.tile(np.eye(3), (4, 1, 1)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(G.invert_theta(inv)), th, atol=1e-5)


@SETTINGS
@given(seed=seeds, ac=st.booleans(), mode=st.sampled_from(MODES))
def test_theta_to_frame_crop_of_padded_canvas(seed, ac, mode):
    hh, ww = 20, 22
    sizes = np.array([[11, 14], [20, 9]])
    origin = np.array([[4, 3], [0, 13]])
    canvas = np.zeros((2, hh, ww, 2), np.float32)
    imgs = [random_image(seed + i, (*sizes[i], 2)) for i in range(2)]
    th = random_theta(seed + 5, 2, 3, scale=(0.3, 0.9))
    th2 = np.asarray(G.theta_to_frame(th, origin, sizes, (hh, ww), ac))
    for i in range(2):
        (t, l), (a, b) = origin[i], sizes[i]
        canvas[i, t : t + a, l : l + b] = imgs[i]
    crop = lambda x, t: S.crop(x, t, (5, 6), mode=mode, align_corners=ac, method="general")
    got = np.asarray(crop(canvas, th2))
    for i in range(2):
        np.testing.assert_allclose(got[i], crop(imgs[i][None], th[i : i + 1])[0], atol=2e-5)
    # traced per-example sizes work under jit
    f = jax.jit(lambda t, o, s: G.theta_to_frame(t, o, s, (hh, ww), ac))
    np.testing.assert_allclose(f(th, origin, sizes), th2, rtol=1e-5, atol=1e-6)


def test_theta_from_centers_accepts_per_example_sizes():
    centers = jnp.array([[[10.0, 20.0], [3.0, 4.0]], [[7.0, 9.0], [0.0, 1.0]]])
    sizes = jnp.array([[40, 50], [33, 61]])
    for convention in ("paper", "authors"):
        batched = G.theta_from_centers(centers, (15, 15), sizes[:, None, :], convention)
        for n in range(2):
            one = G.theta_from_centers(centers[n], (15, 15), tuple(int(v) for v in sizes[n]),
                                       convention)
            np.testing.assert_allclose(np.asarray(batched[n]), np.asarray(one), rtol=1e-6)
    with pytest.raises(ValueError, match="canvas_size"):
        G.theta_from_centers(centers, (15, 15), jnp.zeros((2, 3)))


def test_coord_dtype_is_at_least_float32():
    assert G.coord_dtype(np.zeros(2, np.float16)) == jnp.float32
    assert G.coord_dtype(np.zeros(2, np.int32)) == jnp.float32
    with jax.enable_x64(True):
        assert G.coord_dtype(np.zeros(2, np.float32), np.zeros(2, np.float64)) == jnp.float64


def test_errors_name_the_argument():
    th = np.zeros((1, 2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="convention"):
        G.theta_from_centers(np.zeros((2,)), (3, 3), (8, 8), "torch")
    with pytest.raises(ValueError, match="convention"):
        G.centers_from_theta(th, (8, 8), "torch")
    with pytest.raises(ValueError, match=r"centers must have shape \(\.\.\., 2\)"):
        G.theta_from_centers(np.zeros((2, 3)), (3, 3), (8, 8))
    with pytest.raises(ValueError, match="crop_size"):
        G.theta_from_centers(np.zeros((2,)), (3, 0), (8, 8))
    with pytest.raises(ValueError, match="src_origin"):
        G.theta_to_frame(th, np.zeros((2, 2)), np.ones((1, 2)), (8, 8), False)
    with pytest.raises(ValueError, match="dst_size"):
        G.theta_to_frame(th, np.zeros((1, 2)), np.ones((1, 2)), (8, -8), False)
    with pytest.raises(ValueError, match="floating"):
        G.invert_theta(th.astype(np.int32))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, 3\)"):
        G.invert_theta(th[..., :2])
