"""Parity of stn_icnn_jax.sampler with torch.nn.functional.affine_grid / grid_sample."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from stn_icnn_jax import sampler as S  # noqa: E402
from stn_icnn_jax.theta_geometry import theta_from_centers  # noqa: E402

ATOL = 1e-5


def _nchw(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64).permute(0, 3, 1, 2).contiguous()


def _nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def _grid(seed, n, h, w, hh, ww, ac):
    """Random grid mixing generic points, points exactly on pixels, and points outside."""
    r = np.random.default_rng(seed)
    g = r.uniform(-1.3, 1.3, (n, h, w, 2))
    # exact pixel positions (representable: pixel k of size S)
    kx = r.integers(-1, ww + 1, (n, h, w))
    ky = r.integers(-1, hh + 1, (n, h, w))
    if ac:
        px, py = 2 * kx / (ww - 1) - 1, 2 * ky / (hh - 1) - 1
    else:
        px, py = (2 * kx + 1) / ww - 1, (2 * ky + 1) / hh - 1
    on = r.random((n, h, w)) < 0.4
    g[..., 0] = np.where(on, px, g[..., 0])
    g[..., 1] = np.where(on, py, g[..., 1])
    return g.astype(np.float32)


@pytest.mark.parametrize("ac", [True, False])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("seed", [0, 1])
def test_grid_sample_values_and_grads(ac, mode, seed):
    # sizes with power-of-two (S - 1) or S make the on-pixel grid points exact in float32
    hh, ww = (9, 17) if ac else (8, 16)
    x = np.random.default_rng(seed).random((2, hh, ww, 3)).astype(np.float32)
    g = _grid(seed, 2, 5, 6, hh, ww, ac)
    w = np.random.default_rng(seed + 7).standard_normal((2, 5, 6, 3)).astype(np.float32)

    loss = lambda x, g: jnp.sum(S.grid_sample(x, g, mode=mode, align_corners=ac) * w)
    val, (gx, gg) = jax.value_and_grad(loss, (0, 1))(x, g)

    tx = _nchw(x).requires_grad_()
    tg = torch.tensor(g, dtype=torch.float64, requires_grad=True)
    out = F.grid_sample(tx, tg, mode=mode, padding_mode="zeros", align_corners=ac)
    tl = (out * _nchw(w)).sum()
    tl.backward()

    np.testing.assert_allclose(S.grid_sample(x, g, mode=mode, align_corners=ac), _nhwc(out), atol=ATOL)
    np.testing.assert_allclose(val, tl.item(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gx, _nhwc(tx.grad), atol=ATOL)
    if mode == "bilinear":
        np.testing.assert_allclose(gg, tg.grad.numpy(), rtol=1e-5, atol=2e-4)
    else:
        assert np.all(np.asarray(gg) == 0) and np.all(tg.grad.numpy() == 0)


def test_one_sided_gradient_at_integer_pixels():
    """At a coordinate exactly on pixel c the x-gradient is v[c+1] - v[c] (torch), not 0."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 9, 1) ** 2
    g = np.array([[[[2 * 3 / 8 - 1, -1.0]]]], np.float32)  # pixel 3 exactly
    d = jax.grad(lambda g: S.grid_sample(x, g, align_corners=True).sum())(g)
    tg = torch.tensor(g, requires_grad=True)
    F.grid_sample(_nchw(x).float(), tg, align_corners=True).sum().backward()
    np.testing.assert_allclose(d[..., 0], (16 - 9) * 8 / 2)
    np.testing.assert_allclose(d, tg.grad.numpy(), rtol=1e-6)


def test_nearest_rounds_half_to_even():
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 8, 1)
    pix = np.array([0.5, 1.5, 2.5, 3.5, 6.5])
    g = np.zeros((1, 1, 5, 2), np.float32)
    g[0, 0, :, 0] = 2 * pix / 7 - 1
    g[0, 0, :, 1] = -1
    out = np.asarray(S.grid_sample(x, g, mode="nearest", align_corners=True))[0, 0, :, 0]
    t = F.grid_sample(_nchw(x).float(), torch.tensor(g), mode="nearest", align_corners=True)
    np.testing.assert_array_equal(out, t.numpy()[0, 0, 0])


@pytest.mark.parametrize("ac", [True, False])
def test_affine_grid(ac):
    th = np.random.default_rng(0).uniform(-1, 1, (3, 2, 3)).astype(np.float32)
    for size in [(5, 7), (1, 4), (6, 1)]:
        ours = S.affine_grid(th, size, align_corners=ac)
        ref = F.affine_grid(torch.tensor(th), [3, 1, *size], align_corners=ac).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("ac", [True, False])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("method", ["general", "separable"])
def test_crop_matches_torch_formulation(ac, mode, method):
    """crop == per-part affine_grid + grid_sample (authors' affine_crop), values and grads."""
    n, p, hh, ww, h, w = 2, 6, 20, 24, 7, 5
    r = np.random.default_rng(3)
    x = r.random((n, hh, ww, 3)).astype(np.float32)
    th = np.zeros((n, p, 2, 3), np.float32)
    th[..., 0, 0] = r.uniform(0.2, 0.5, (n, p))
    th[..., 1, 1] = r.uniform(0.2, 0.5, (n, p))
    th[..., :, 2] = r.uniform(-1.1, 1.1, (n, p, 2))
    wgt = r.standard_normal((n, p, h, w, 3)).astype(np.float32)
    loss = lambda x, t: jnp.sum(S.crop(x, t, (h, w), mode=mode, align_corners=ac, method=method) * wgt)
    val, (gx, gt) = jax.value_and_grad(loss, (0, 1))(x, th)

    tx = _nchw(x).requires_grad_()
    tt = torch.tensor(th, dtype=torch.float64, requires_grad=True)
    tl = 0
    for i in range(p):
        grid = F.affine_grid(tt[:, i], [n, 3, h, w], align_corners=ac)
        out = F.grid_sample(tx, grid, mode=mode, padding_mode="zeros", align_corners=ac)
        tl = tl + (out * torch.tensor(wgt[:, i], dtype=torch.float64).permute(0, 3, 1, 2)).sum()
    tl.backward()
    np.testing.assert_allclose(val, tl.item(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gx, _nhwc(tx.grad), atol=ATOL)
    mask = np.array([[1, 0, 1], [0, 1, 1]])
    want = tt.grad.numpy() * (mask if method == "separable" else 1)
    np.testing.assert_allclose(gt, want, rtol=1e-4, atol=1e-3)


def test_crop_integer_centres_authors_way():
    """The authors' GT theta on a padded canvas: crop == torch == integer slice."""
    hh = ww = 64
    r = np.random.default_rng(5)
    x = r.random((1, hh, ww, 3)).astype(np.float32)
    centers = np.stack([r.integers(8, 56, (1, 6)), r.integers(8, 56, (1, 6))], -1).astype(np.float32)
    th = np.asarray(theta_from_centers(centers, (9, 9), (hh, ww), "authors"))
    ours = np.asarray(S.crop(x, th, (9, 9), align_corners=True))
    for i in range(6):
        grid = F.affine_grid(torch.tensor(th[:, i]), [1, 3, 9, 9], align_corners=True)
        ref = _nhwc(F.grid_sample(_nchw(x).float(), grid, align_corners=True))
        np.testing.assert_allclose(ours[:, i], ref, atol=ATOL)
        cy, cx = centers[0, i].astype(int)
        np.testing.assert_allclose(ours[0, i], x[0, cy - 4 : cy + 5, cx - 4 : cx + 5], atol=ATOL)


@pytest.mark.parametrize("ac", [True, False])
def test_paste_matches_torch_mapback(ac):
    """paste == authors' affine_mapback: torch.inverse of the 3x3, nearest grid_sample."""
    n, p, h, w, hh, ww = 1, 6, 7, 7, 30, 26
    r = np.random.default_rng(8)
    parts = r.random((n, p, h, w, 2)).astype(np.float32)
    th = np.zeros((n, p, 2, 3), np.float32)
    th[..., 0, 0] = (w - 1) / (ww - 1) if ac else w / ww
    th[..., 1, 1] = (h - 1) / (hh - 1) if ac else h / hh
    th[..., :, 2] = r.uniform(-0.9, 0.9, (n, p, 2))
    ours = np.asarray(S.paste(parts, th, (hh, ww), mode="nearest", align_corners=ac))
    vals, org = S.paste_window(parts, th, (hh, ww), (h + 2, w + 2), align_corners=ac)
    for i in range(p):
        m = torch.zeros(n, 3, 3, dtype=torch.float64)
        m[:, :2] = torch.tensor(th[:, i], dtype=torch.float64)
        m[:, 2, 2] = 1
        inv = torch.inverse(m)[:, :2].float()
        grid = F.affine_grid(inv, [n, 2, hh, ww], align_corners=ac)
        src = torch.tensor(parts[:, i]).permute(0, 3, 1, 2)
        ref = _nhwc(F.grid_sample(src, grid, mode="nearest", align_corners=ac))
        # float32 inverses may differ by an ulp; allow a handful of boundary pixels
        bad = np.abs(ours[:, i] - ref) > 1e-5
        assert bad.mean() < 0.002, bad.sum()
        oy, ox = np.asarray(org)[0, i]
        sl = ours[0, i, max(oy, 0) : oy + h + 2, max(ox, 0) : ox + w + 2]
        np.testing.assert_array_equal(
            np.asarray(vals)[0, i, max(-oy, 0) : max(-oy, 0) + sl.shape[0], max(-ox, 0) : max(-ox, 0) + sl.shape[1]],
            sl,
        )
        assert np.count_nonzero(ours[0, i]) == np.count_nonzero(sl)
