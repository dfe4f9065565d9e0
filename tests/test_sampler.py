"""Property tests of stn_icnn_jax.sampler (values and gradients)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

from sampler_helpers import SETTINGS, random_image, random_theta, seeds
from stn_icnn_jax import sampler as S
from stn_icnn_jax import theta_geometry as G

OFFDIAG = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


# ------------------------------------------------------------------------- identity
@SETTINGS
@given(seed=seeds, ac=st.booleans(), hw=st.sampled_from([(5, 7), (8, 8), (1, 4)]))
def test_identity_theta_returns_image(seed, ac, hw):
    x = random_image(seed, (2, *hw, 3))
    eye = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32), (2, 1, 1))
    out = S.grid_sample(x, S.affine_grid(eye, hw, align_corners=ac), align_corners=ac)
    np.testing.assert_allclose(out, x, atol=1e-5)
    for method in ("general", "separable"):
        out = S.crop(x, eye[:, None], hw, align_corners=ac, method=method)
        np.testing.assert_allclose(out[:, 0], x, atol=1e-5)


# ------------------------------------------------------------------- translations
@SETTINGS
@given(seed=seeds, dy=st.integers(-4, 4), dx=st.integers(-4, 4), mode=st.sampled_from(S._MODES))
def test_integer_translation_is_shifted_slice(seed, dy, dx, mode):
    hh, ww = 6, 7
    x = random_image(seed, (1, hh, ww, 2))
    th = np.array([[[[1.0, 0, 2 * dx / (ww - 1)], [0, 1.0, 2 * dy / (hh - 1)]]]], np.float32)
    want = np.zeros_like(x)
    ys, xs = np.meshgrid(np.arange(hh), np.arange(ww), indexing="ij")
    sy, sx = ys + dy, xs + dx
    ok = (sy >= 0) & (sy < hh) & (sx >= 0) & (sx < ww)
    want[0][ok] = x[0][sy[ok], sx[ok]]
    for method in ("general", "separable"):
        out = S.crop(x, th, (hh, ww), mode=mode, align_corners=True, method=method)
        np.testing.assert_allclose(out[:, 0], want, atol=2e-5)


# ----------------------------------------------------- separable == general (+ grads)
def _loss(method, mode, ac, size, window=None, chunk_size=S.DEFAULT_CHUNK_SIZE):
    def f(x, th):
        out = S.crop(x, th, size, mode=mode, align_corners=ac, method=method, window=window,
                     chunk_size=chunk_size)
        w = jnp.cos(jnp.arange(out.size, dtype=out.dtype).reshape(out.shape) * 0.37)
        return jnp.sum(out * w)

    return f


@SETTINGS
@given(
    seed=seeds,
    ac=st.booleans(),
    mode=st.sampled_from(S._MODES),
    window=st.sampled_from([None, (6, 6), (20, 20)]),
    scale=st.sampled_from([(0.2, 0.4), (0.5, 1.3)]),
)
def test_separable_equals_general(seed, ac, mode, window, scale):
    """Values and grads (image, theta) agree; (6, 6) windows exercise the fallback too."""
    x = random_image(seed, (2, 13, 11, 2))
    th = random_theta(seed + 1, 2, 3, scale=scale)
    size = (5, 4)
    vg, (gxg, gtg) = jax.value_and_grad(_loss("general", mode, ac, size), (0, 1))(x, th)
    vs, (gxs, gts) = jax.value_and_grad(_loss("separable", mode, ac, size, window), (0, 1))(x, th)
    np.testing.assert_allclose(vs, vg, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gxs, gxg, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gts, gtg * OFFDIAG, rtol=1e-4, atol=1e-4)
    # the separable path ignores off-diagonals (and gives them zero gradient)
    th2 = th.copy()
    th2[..., 0, 1] = 0.3
    th2[..., 1, 0] = -0.2
    np.testing.assert_array_equal(
        S.crop(x, th2, size, mode=mode, align_corners=ac, method="separable", window=window),
        S.crop(x, th, size, mode=mode, align_corners=ac, method="separable", window=window),
    )
    assert np.all(np.asarray(gts)[..., 0, 1] == 0) and np.all(np.asarray(gts)[..., 1, 0] == 0)


def test_separable_equals_general_at_integer_kinks():
    """Odd crops at integer centres sit on the kinks: both paths take the same side."""
    x = random_image(3, (2, 15, 15, 3))
    centers = np.array([[[7, 7], [3, 10], [12, 1]], [[0, 0], [14, 14], [5, 9]]], np.float32)
    for conv in G.CONVENTIONS:
        ac = G.align_corners_for(conv)
        th = np.asarray(G.theta_from_centers(centers, (5, 5), (15, 15), conv))
        gg = jax.grad(_loss("general", "bilinear", ac, (5, 5)), (0, 1))(x, th)
        gs = jax.grad(_loss("separable", "bilinear", ac, (5, 5), (9, 9)), (0, 1))(x, th)
        np.testing.assert_allclose(gs[0], gg[0], atol=1e-5)
        np.testing.assert_allclose(gs[1], gg[1] * OFFDIAG, rtol=1e-4, atol=1e-4)
        # gradient w.r.t. theta is not zero at integer points (floor/floor+1, not ceil)
        assert np.all(np.abs(np.asarray(gs[1])[..., 0, 2]) > 0)


# ------------------------------------------------------------------------- linearity
@SETTINGS
@given(seed=seeds, a=st.floats(-2, 2), b=st.floats(-2, 2), mode=st.sampled_from(S._MODES))
def test_crop_is_linear_in_image(seed, a, b, mode):
    x, y = random_image(seed, (2, 9, 10, 2)), random_image(seed + 1, (2, 9, 10, 2))
    th = random_theta(seed + 2, 2, 2)
    for method in ("general", "separable"):
        c = lambda im: np.asarray(
            S.crop(im, th, (4, 5), mode=mode, align_corners=True, method=method, window=(7, 7))
        )
        np.testing.assert_allclose(c(a * x + b * y), a * c(x) + b * c(y), atol=1e-5)


# ---------------------------------------------------------------- gradient checks
@SETTINGS
@given(seed=seeds, ac=st.booleans(), method=st.sampled_from(["general", "separable"]))
def test_check_grads_image_and_theta(seed, ac, method):
    """Finite differences (float64) for image and theta, away from integer kinks."""
    with jax.enable_x64(True):
        x = random_image(seed, (1, 7, 6, 2), np.float64)
        th = random_theta(seed + 1, 1, 2, dtype=np.float64)
        f = _loss(method, "bilinear", ac, (3, 4), window=(5, 5))
        check_grads(f, (x, th), order=1, modes=["rev"], eps=1e-6, atol=1e-4, rtol=1e-4)
        g = jax.grad(lambda t: f(x, t))(th)
        for idx in [(0, 0, 0, 0), (0, 1, 1, 1), (0, 0, 0, 2), (0, 1, 1, 2)]:
            e = np.zeros_like(th)
            e[idx] = 1e-6
            fd = (f(x, th + e) - f(x, th - e)) / 2e-6
            np.testing.assert_allclose(g[idx], fd, rtol=1e-4, atol=1e-5)


def test_paste_window_grads_flow():
    with jax.enable_x64(True):
        parts = random_image(5, (1, 2, 5, 5, 2), np.float64)
        th = np.asarray(G.theta_from_centers(np.array([[[6.3, 7.6], [3.2, 9.7]]]), (5, 5), (15, 16), "authors"))

        def f(p, t):
            v, _ = S.paste_window(p, t, (15, 16), (8, 8), mode="bilinear", align_corners=True)
            return jnp.sum(v * jnp.sin(jnp.arange(v.size).reshape(v.shape)))

        check_grads(f, (parts, th), order=1, modes=["rev"], eps=1e-6, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------ paste
@SETTINGS
@given(seed=seeds, k=st.sampled_from([1, 2, 3]))
def test_paste_of_crop_restores_window(seed, k):
    hh, ww, size = 16, 18, 2 * k + 1
    r = np.random.default_rng(seed)
    centers = np.stack([r.integers(k, hh - k, (1, 3)), r.integers(k, ww - k, (1, 3))], -1)
    x = random_image(seed, (1, hh, ww, 2))
    th = G.theta_from_centers(centers.astype(np.float32), (size, size), (hh, ww), "authors")
    parts = S.crop(x, th, (size, size), mode="nearest", align_corners=True)
    canvas = np.asarray(S.paste(parts, th, (hh, ww), mode="nearest", align_corners=True))
    for p in range(3):
        cy, cx = centers[0, p]
        mask = np.zeros((hh, ww), bool)
        mask[cy - k : cy + k + 1, cx - k : cx + k + 1] = True
        np.testing.assert_allclose(canvas[0, p][mask], x[0][mask], atol=1e-6)
        assert np.all(canvas[0, p][~mask] == 0)


@SETTINGS
@given(
    seed=seeds,
    ac=st.booleans(),
    mode=st.sampled_from(S._MODES),
    scale=st.sampled_from([0.9, 1.0, 1.1]),
    chunk=st.sampled_from([None, S.DEFAULT_CHUNK_SIZE, 4]),
)
def test_paste_window_equals_slice_of_paste(seed, ac, mode, scale, chunk):
    hh, ww, h, w = 14, 17, 5, 5
    r = np.random.default_rng(seed)
    th = np.zeros((2, 3, 2, 3), np.float32)
    # about the 1:1 crop scale, centres anywhere (windows run past the canvas edges)
    th[..., 0, 0] = scale * (w - 1) / (ww - 1) if ac else scale * w / ww
    th[..., 1, 1] = scale * (h - 1) / (hh - 1) if ac else scale * h / hh
    th[..., :, 2] = r.uniform(-1.1, 1.1, (2, 3, 2))
    parts = random_image(seed, (2, 3, h, w, 2))
    full = np.asarray(S.paste(parts, th, (hh, ww), mode=mode, align_corners=ac))
    vals, origin = S.paste_window(
        parts, th, (hh, ww), (h + 3, w + 3), mode=mode, align_corners=ac, chunk_size=chunk
    )
    vals, origin = np.asarray(vals), np.asarray(origin)
    assert origin.dtype == np.int32 and origin.shape == (2, 3, 2)
    for n in range(2):
        for p in range(3):
            oy, ox = origin[n, p]
            canvas = np.zeros((hh + 40, ww + 40, 2), np.float32)  # offset 20
            canvas[20 + oy : 20 + oy + h + 3, 20 + ox : 20 + ox + w + 3] = vals[n, p]
            got = canvas[20 : 20 + hh, 20 : 20 + ww]
            # exact where the window covers; everything outside the window is 0 in paste
            np.testing.assert_allclose(got, full[n, p], atol=1e-5)


# ---------------------------------------------------------------- errors and jit
def test_errors():
    x = np.zeros((1, 8, 8, 3), np.float32)
    th = np.zeros((1, 2, 2, 3), np.float32)
    grid = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="rank 4"):
        S.crop(x[0], th, (3, 3))
    with pytest.raises(ValueError, match="floating"):
        S.crop(x.astype(np.int32), th, (3, 3))
    with pytest.raises(ValueError, match="theta"):
        S.crop(x, th[:, :, :, :2], (3, 3))
    with pytest.raises(ValueError, match="mode"):
        S.crop(x, th, (3, 3), mode="bicubic")
    with pytest.raises(ValueError, match="method"):
        S.crop(x, th, (3, 3), method="fast")
    with pytest.raises(ValueError, match="'auto' was an alias of 'separable'"):
        S.crop(x, th, (3, 3), method="auto")
    for bad in (0, -1, 2.5, "16", True):
        with pytest.raises(ValueError, match="chunk_size"):
            S.crop(x, th, (3, 3), chunk_size=bad)
        with pytest.raises(ValueError, match="chunk_size"):
            S.paste_window(np.zeros((1, 2, 3, 3, 1), np.float32), th, (8, 8), (5, 5), chunk_size=bad)
    with pytest.raises(ValueError, match="size"):
        S.crop(x, th, (3, 0))
    with pytest.raises(ValueError, match="padding_mode"):
        S.grid_sample(x, grid, padding_mode="border")
    with pytest.raises(ValueError, match="grid"):
        S.grid_sample(x, grid[..., :1])
    with pytest.raises(ValueError, match="parts"):
        S.paste(x, th, (8, 8))


def test_jit_and_vmap():
    x = random_image(0, (2, 12, 12, 3))
    th = random_theta(1, 2, 6)
    f = jax.jit(lambda x, t: S.crop(x, t, (5, 5), align_corners=True))
    np.testing.assert_allclose(f(x, th), S.crop(x, th, (5, 5), align_corners=True), atol=1e-6)
    g = jax.jit(lambda p, t: S.paste_window(p, t, (12, 12), (7, 7), align_corners=True))
    v, o = g(f(x, th), th)
    assert v.shape == (2, 6, 7, 7, 3) and o.shape == (2, 6, 2)
    # vmap over faces (the fallback cond becomes a select; results unchanged)
    vm = jax.vmap(
        lambda xi, ti: S.crop(xi[None], ti[None], (5, 5), align_corners=True, window=(7, 7))[0]
    )(x, th)
    np.testing.assert_allclose(
        vm, S.crop(x, th, (5, 5), align_corners=True, method="general"), atol=1e-5
    )


def test_defaults_are_the_paper_convention():
    """crop / paste / paste_window default to align_corners=False (align_corners_for("paper"))."""
    assert G.align_corners_for("paper") is False
    x = random_image(0, (2, 12, 12, 3))
    th = random_theta(1, 2, 3)
    parts = random_image(2, (2, 3, 5, 5, 3))
    np.testing.assert_array_equal(S.crop(x, th, (5, 5)), S.crop(x, th, (5, 5), align_corners=False))
    np.testing.assert_array_equal(
        S.paste(parts, th, (12, 12)), S.paste(parts, th, (12, 12), align_corners=False)
    )
    for a, b in zip(
        S.paste_window(parts, th, (12, 12), (7, 7)),
        S.paste_window(parts, th, (12, 12), (7, 7), align_corners=False),
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("chunk_size", [S.DEFAULT_CHUNK_SIZE, 4, 1, 64, None])
def test_separable_many_parts_and_theta_only_grad(chunk_size):
    """More parts than one chunk (padded last chunk); the theta-only gradient equals the
    theta part of the joint gradient; both the window path and the whole-face fallback."""
    x = random_image(11, (3, 16, 14, 2))
    th = random_theta(12, 3, 7, scale=(0.3, 0.6))
    for window in [None, (4, 4)]:  # (4, 4) is too small: the fallback is taken
        f = _loss("separable", "bilinear", True, (5, 4), window, chunk_size)
        g_img, g_th = jax.jit(jax.grad(f, (0, 1)))(x, th)
        g_th_only = jax.jit(jax.grad(f, 1))(x, th)
        gg = jax.jit(jax.grad(_loss("general", "bilinear", True, (5, 4)), (0, 1)))(x, th)
        np.testing.assert_allclose(g_img, gg[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g_th, gg[1] * OFFDIAG, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(g_th_only, g_th, rtol=1e-6, atol=1e-6)
