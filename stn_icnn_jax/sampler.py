"""Differentiable affine sampling (the STN's grid transformer), pure jnp, NHWC.

Everything here is a pure function of arrays; ``size``, ``window``, ``mode``,
``align_corners`` and ``method`` are static (Python values), so every function can be
wrapped in ``jax.jit`` and differentiated with ``jax.grad`` / ``jax.vjp``.

Conventions (the same as ``torch.nn.functional.affine_grid`` / ``grid_sample``):

* A grid holds normalised source coordinates ``(x, y)`` in ``[-1, 1]`` (x = column).
* ``align_corners=True``: -1 and +1 are the centres of the first and last pixel,
  ``pixel = (coord + 1) / 2 * (size - 1)``.
* ``align_corners=False``: -1 and +1 are the outer edges of the image,
  ``pixel = ((coord + 1) * size - 1) / 2``.
* Pixel ``c`` has its centre at pixel coordinate ``c``.
* Bilinear uses ``floor`` and ``floor + 1`` as torch does, so the gradient with respect
  to a coordinate that sits exactly on a pixel is torch's one-sided one
  ``v[c + 1] - v[c]`` (dm-pix uses ``ceil`` for the upper neighbour and gets 0 there).
  Nearest rounds half to even (``torch.nearbyint``); its coordinate gradient is 0.
* Zero padding only: neighbours outside the image contribute 0 to values and gradients.

Images must have a floating dtype.  Integer images (e.g. label maps) are rejected with
a ``ValueError``; cast them explicitly (``labels.astype(jnp.float32)``, or one-hot) so
that nothing is silently rounded.  Coordinates are computed in
``promote_types(theta.dtype, float32)``; outputs have the image's dtype.

Theta conventions used by the model (paper eq. 15): ``[[sx, 0, tx], [0, sy, ty]]`` maps
the normalised output grid of a crop to normalised coordinates of the source image.
``crop`` samples the parts; ``paste`` / ``paste_window`` apply the inverse (eq. 5).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = [
    "affine_grid",
    "grid_sample",
    "crop",
    "paste",
    "paste_window",
    "invert_theta",
    "theta_from_centers",
    "align_corners_for",
    "theta_to_frame",
]

Mode = Literal["bilinear", "nearest"]
Method = Literal["auto", "general", "separable"]
Convention = Literal["paper", "authors"]

_MODES = ("bilinear", "nearest")
_METHODS = ("auto", "general", "separable")
_CONVENTIONS = ("paper", "authors")
_HI = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------
# Validation helpers (clear ValueErrors at the public boundary).
# --------------------------------------------------------------------------------------
def _check_float(x, name: str, what: str = "array") -> None:
    if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
        raise ValueError(
            f"{name} must have a floating dtype, got {jnp.asarray(x).dtype}. Integer "
            f"{what}s are not supported: cast explicitly, e.g. {name}.astype(jnp.float32) "
            "(for label maps use a one-hot float encoding and mode='nearest')."
        )


def _check_rank(x, rank: int, name: str, layout: str) -> None:
    if jnp.ndim(x) != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {jnp.shape(x)}")


def _check_theta(theta, lead: tuple, name: str = "theta") -> None:
    """theta must be (*lead, 2, 3); entries of ``lead`` that are None are free."""
    shape = jnp.shape(theta)
    want = "(" + ", ".join("?" if d is None else str(d) for d in lead) + ", 2, 3)"
    if len(shape) != len(lead) + 2 or shape[-2:] != (2, 3):
        raise ValueError(f"{name} must have shape {want}, got {shape}")
    for d, s in zip(lead, shape):
        if d is not None and d != s:
            raise ValueError(f"{name} must have shape {want}, got {shape}")
    _check_float(theta, name, "theta")


def _check_size(size, name: str = "size") -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
        ok = all(int(s) == s for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of positive ints (h, w), got {size!r}") from None
    if not ok or h < 1 or w < 1:
        raise ValueError(f"{name} must be a pair of positive ints (h, w), got {size!r}")
    return h, w


def _check_mode(mode) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


# --------------------------------------------------------------------------------------
# Coordinate helpers.
# --------------------------------------------------------------------------------------
def _coord_dtype(*arrays):
    dt = jnp.float32
    for a in arrays:
        dt = jnp.promote_types(dt, jnp.asarray(a).dtype)
    return dt


def _base_coords(n: int, align_corners: bool, dtype) -> jax.Array:
    """Normalised centres of n output pixels, as torch's ``linspace_from_neg_one``."""
    if n <= 1:
        v = np.zeros((max(n, 1),), np.float64)
    else:
        v = np.linspace(-1.0, 1.0, n, dtype=np.float64)
        if not align_corners:
            v = v * (n - 1) / n
    return jnp.asarray(v, dtype=dtype)


def _unnormalize(coord, size: int, align_corners: bool):
    """Normalised coordinate -> pixel coordinate (torch's ``grid_sampler_unnormalize``)."""
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return (_prod(coord + 1, size) - 1) / 2  # no FMA: same bits in every path


def _barrier(x):
    return jax.lax.optimization_barrier(x)


def _prod(a, b):
    # An optimisation barrier keeps XLA from contracting the product with the following
    # add into an FMA.  The general (2-D) and separable (1-D) paths then compute
    # bit-identical coordinates, so they take the same side of every integer kink.
    return jax.lax.optimization_barrier(a * b)


# --------------------------------------------------------------------------------------
# Public: affine_grid / grid_sample (general 2-D path).
# --------------------------------------------------------------------------------------
def affine_grid(
    theta: Float[Array, "N 2 3"], size, align_corners: bool = False
) -> Float[Array, "N h w 2"]:
    """Sampling grid of an affine map, as ``torch.nn.functional.affine_grid``.

    theta (N, 2, 3) maps normalised output coordinates (x, y, 1) to normalised source
    coordinates; size = (h, w) of the output.  Returns (N, h, w, 2) with (x, y) last.
    """
    _check_theta(theta, (None,))
    h, w = _check_size(size)
    return _affine_grid(jnp.asarray(theta), (h, w), bool(align_corners))


def _affine_grid(theta, size, align_corners):
    h, w = size
    dt = _coord_dtype(theta)
    theta = theta.astype(dt)
    xt = _base_coords(w, align_corners, dt)[None, None, :]
    yt = _base_coords(h, align_corners, dt)[None, :, None]
    t = theta[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    # (diagonal term + shift) + off-diagonal term: with a zero off-diagonal this is
    # bit-identical to the separable path's coordinates.
    gx = _barrier(_prod(xt, t[:, 0, 0]) + t[:, 0, 2]) + _prod(yt, t[:, 0, 1])
    gy = _barrier(_prod(yt, t[:, 1, 1]) + t[:, 1, 2]) + _prod(xt, t[:, 1, 0])
    return jnp.stack([gx, gy], axis=-1)


def grid_sample(
    image: Float[Array, "N H W C"],
    grid: Float[Array, "N h w 2"],
    mode: Mode = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> Float[Array, "N h w C"]:
    """Sample ``image`` at ``grid``, as ``torch.nn.functional.grid_sample`` (NHWC).

    image (N, H, W, C) floating; grid (N, h, w, 2) normalised (x, y).  Returns
    (N, h, w, C) with the same values and the same gradients (image and grid) as torch
    on the NCHW transpose.  Only ``padding_mode="zeros"`` is supported.
    """
    _check_rank(image, 4, "image", "(N, H, W, C)")
    _check_float(image, "image", "image")
    _check_rank(grid, 4, "grid", "(N, h, w, 2)")
    _check_float(grid, "grid", "grid")
    if jnp.shape(grid)[-1] != 2 or jnp.shape(grid)[0] != jnp.shape(image)[0]:
        raise ValueError(
            f"grid must have shape (N, h, w, 2) with N = image's {jnp.shape(image)[0]}, "
            f"got {jnp.shape(grid)}"
        )
    _check_mode(mode)
    if padding_mode != "zeros":
        raise ValueError(f"only padding_mode='zeros' is supported, got {padding_mode!r}")
    return _grid_sample(jnp.asarray(image), jnp.asarray(grid), mode, bool(align_corners))


def _floor_index(f, size):
    # Clip before the int cast (huge / inf coordinates); clipped indices are outside the
    # image anyway, so they are masked and neither values nor gradients change.
    return jnp.clip(f, -2, size + 1).astype(jnp.int32)


def _grid_sample(image, grid, mode, align_corners):
    n, hh, ww, c = image.shape
    dt = _coord_dtype(grid)
    grid = grid.astype(dt)
    ix = _unnormalize(grid[..., 0], ww, align_corners)
    iy = _unnormalize(grid[..., 1], hh, align_corners)
    b = jnp.arange(n)[:, None, None]

    def corner(yi, xi):
        valid = (xi >= 0) & (xi < ww) & (yi >= 0) & (yi < hh)
        v = image[b, jnp.clip(yi, 0, hh - 1), jnp.clip(xi, 0, ww - 1)]
        return jnp.where(valid[..., None], v, jnp.zeros((), image.dtype))

    if mode == "nearest":
        return corner(_floor_index(jnp.round(iy), hh), _floor_index(jnp.round(ix), ww))

    x0 = jnp.floor(ix)
    y0 = jnp.floor(iy)
    wx1 = ix - x0
    wx0 = (x0 + 1) - ix
    wy1 = iy - y0
    wy0 = (y0 + 1) - iy
    xi = _floor_index(x0, ww)
    yi = _floor_index(y0, hh)
    out = (
        corner(yi, xi) * (wx0 * wy0)[..., None]
        + corner(yi, xi + 1) * (wx1 * wy0)[..., None]
        + corner(yi + 1, xi) * (wx0 * wy1)[..., None]
        + corner(yi + 1, xi + 1) * (wx1 * wy1)[..., None]
    )
    return out.astype(image.dtype)


# --------------------------------------------------------------------------------------
# Separable core, NHWC: src (B, S, T, C) -> out (B, h, w, C) with
#   out[b, i, j] = sum_{a, e} wy_a[b, i] wx_e[b, j] src[b, ry[b, i] + a, rx[b, j] + e]
# (wy_0 = 1 - fy, wy_1 = fy; likewise x) and zero padding.  The forward pass and the
# coordinate gradients are 1-D gathers (rows = contiguous slices of T*C values, then
# columns = slices of C); the source gradient is two small weighted one-hot matmuls
# (Ay^T g Ax) instead of a scatter-add.
# --------------------------------------------------------------------------------------
def _rows(src, r, nb=None):
    """src (B, S, T, C), r (B, h) int -> (B, h, T, C); rows outside [0, S) are 0.

    With nb (B,), src is (N, S, T, C) and part b reads face nb[b] (no per-part copy).
    """
    s = src.shape[1]
    valid = (r >= 0) & (r < s)
    b = (jnp.arange(src.shape[0]) if nb is None else nb)[:, None]
    v = src[b, jnp.clip(r, 0, s - 1)]
    return jnp.where(valid[:, :, None, None], v, jnp.zeros((), src.dtype))


def _cols(x, r):
    """x (B, h, T, C), r (B, w) int -> (B, h, w, C); columns outside [0, T) are 0."""
    t = x.shape[2]
    valid = (r >= 0) & (r < t)
    v = jax.vmap(lambda xb, rb: xb[:, rb])(x, jnp.clip(r, 0, t - 1))
    return jnp.where(valid[:, None, :, None], v, jnp.zeros((), x.dtype))


def _onehot(r, w0, w1, n, dtype):
    """(B, k) indices and weights -> (B, k, n) interpolation matrix."""
    k = jnp.arange(n, dtype=r.dtype)
    m = w0[..., None].astype(dtype) * (r[..., None] == k).astype(dtype)
    if w1 is not None:
        m = m + w1[..., None].astype(dtype) * (r[..., None] + 1 == k).astype(dtype)
    return m


def _src_grad(g, ry, rx, wy, wx, shape):
    """Transpose of the separable interpolation: Ay^T g Ax, g (B, h, w, C) -> shape."""
    b, s, t, c = shape
    h = g.shape[1]
    ax = _onehot(rx, *wx, t, g.dtype)  # (B, w, T)
    ay = _onehot(ry, *wy, s, g.dtype)  # (B, h, S)
    d_t = jnp.einsum("bijc,bjt->bitc", g, ax, precision=_HI)  # (B, h, T, C)
    d = jnp.einsum("bis,bik->bsk", ay, d_t.reshape(b, h, t * c), precision=_HI)
    return d.reshape(shape)


def _rows_interp(src, ry, fy, nb=None):
    fy = fy[:, :, None, None]
    return _rows(src, ry, nb) * (1 - fy) + _rows(src, ry + 1, nb) * fy


def _d_fx(src, ry, rx, fy, g, nb=None):
    t = _rows_interp(src, ry, fy, nb)
    return jnp.sum(g * (_cols(t, rx + 1) - _cols(t, rx)), axis=(1, 3))


def _d_fy(src, ry, rx, fx, g, nb=None):
    d = _rows(src, ry + 1, nb) - _rows(src, ry, nb)
    fx = fx[:, None, :, None]
    return jnp.sum(g * (_cols(d, rx) * (1 - fx) + _cols(d, rx + 1) * fx), axis=(2, 3))


@jax.custom_vjp
def _sep_bilinear(src, ry, rx, fy, fx):
    """Bilinear; fy / fx = coordinate - floor(coordinate) are the differentiable inputs."""
    t = _rows_interp(src, ry, fy)
    fx_ = fx[:, None, :, None]
    return (_cols(t, rx) * (1 - fx_) + _cols(t, rx + 1) * fx_).astype(src.dtype)


def _sep_bilinear_fwd(src, ry, rx, fy, fx):
    return _sep_bilinear(src, ry, rx, fy, fx), (src, ry, rx, fy, fx)


def _sep_bilinear_bwd(res, g):
    src, ry, rx, fy, fx = res
    d_fx = _d_fx(src, ry, rx, fy, g)
    # A barrier gives the second reduction its own copy of the gathers: XLA then fuses
    # each gather into its reduction instead of materialising the gathered rows, which
    # on CPU costs far more (fresh temp buffers) than gathering twice.
    src2, ry2, rx2, g2 = jax.lax.optimization_barrier((src, ry, rx, g))
    d_fy = _d_fy(src2, ry2, rx2, fx, g2)
    d_src = _src_grad(g, ry, rx, (1 - fy, fy), (1 - fx, fx), src.shape).astype(src.dtype)
    return d_src, None, None, d_fy.astype(fy.dtype), d_fx.astype(fx.dtype)


_sep_bilinear.defvjp(_sep_bilinear_fwd, _sep_bilinear_bwd)


@jax.custom_vjp
def _sep_nearest(src, ry, rx):
    return _cols(_rows(src, ry), rx)


def _sep_nearest_fwd(src, ry, rx):
    return _sep_nearest(src, ry, rx), (src, ry, rx)


def _sep_nearest_bwd(res, g):
    src, ry, rx = res
    one_y = jnp.ones(ry.shape, g.dtype)
    one_x = jnp.ones(rx.shape, g.dtype)
    d_src = _src_grad(g, ry, rx, (one_y, None), (one_x, None), src.shape)
    return d_src.astype(src.dtype), None, None


_sep_nearest.defvjp(_sep_nearest_fwd, _sep_nearest_bwd)


def _taps(coord, size, mode):
    """Pixel coordinates (B, k) -> (integer index, fraction) of the 1-D interpolation."""
    if mode == "nearest":
        return _floor_index(jnp.round(coord), size), None
    f = jnp.floor(coord)
    return _floor_index(f, size), coord - f


def _sep_sample(src, iy, ix, mode, oy=None, ox=None, frame=None):
    """Separable sampling of src (B, S, T, C) at rows iy (B, h) and columns ix (B, w).

    iy / ix are pixel coordinates in a frame of size ``frame`` (defaults to src's own);
    src is the sub-block of that frame starting at integer offsets (oy, ox) (B,).
    """
    s, t = src.shape[1:3]
    fh, fw = frame if frame is not None else (s, t)
    ry, fy = _taps(iy, fh, mode)
    rx, fx = _taps(ix, fw, mode)
    if oy is not None:
        ry = ry - oy[:, None]
        rx = rx - ox[:, None]
    if mode == "nearest":
        return _sep_nearest(src, ry, rx)
    return _sep_bilinear(src, ry, rx, fy, fx)


# --------------------------------------------------------------------------------------
# Public: crop (the STN's hot path).
# --------------------------------------------------------------------------------------
def default_window(size, image_size) -> tuple[int, int]:
    """Default static source window of the separable crop: fits |s| up to 1.125x 1:1.

    For an output of h rows, a crop whose source footprint spans up to
    ``ceil(1.125 (h - 1))`` pixels (+2 for the bilinear neighbours) is computed from a
    window of the image; never larger than the image itself.
    """
    h, w = size
    hh, ww = image_size
    return (
        min(hh, math.ceil(1.125 * (h - 1)) + 2),
        min(ww, math.ceil(1.125 * (w - 1)) + 2),
    )


def crop(
    image: Float[Array, "N H W C"],
    theta: Float[Array, "N P 2 3"],
    size,
    mode: Mode = "bilinear",
    align_corners: bool = True,
    method: Method = "auto",
    window=None,
) -> Float[Array, "N P h w C"]:
    """All P parts of each image: ``out[n, p] = grid_sample(image[n], affine_grid(theta[n, p]))``.

    image (N, H, W, C) floating, theta (N, P, 2, 3), size = (h, w) -> (N, P, h, w, C).
    The image is never copied per part.

    method:
      * "general": affine_grid + 2-D gathers; any theta.
      * "separable": for the model's constrained theta (eq. 15) [[sx, 0, tx], [0, sy, ty]].
        The off-diagonal entries theta[..., 0, 1] and theta[..., 1, 0] are IGNORED
        (treated as 0; their gradient is 0).  Source x then depends only on the output
        column and source y only on the output row, so the crop is two 1-D
        interpolations of a static ``window`` (wh, ww) of the image around each part
        (default ``default_window(size, (H, W))``).  If some part's footprint does not
        fit its window (|s| more than ~1.125x the 1:1 scale), a ``lax.cond`` falls back
        to sampling the whole faces (slower: the image gradient becomes a scatter-add)
        for the whole batch, so the result is always exact.  Values and gradients (image
        and theta) equal the general path's to float rounding.  Parts are processed in
        chunks (a ``lax.scan``) to keep temporaries small; when only theta needs a
        gradient the image gradient is not computed.
      * "auto": "separable" (the model's theta is always constrained).
    """
    _check_rank(image, 4, "image", "(N, H, W, C)")
    _check_float(image, "image", "image")
    _check_theta(theta, (jnp.shape(image)[0], None))
    h, w = _check_size(size)
    _check_mode(mode)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    hh, ww = jnp.shape(image)[1:3]
    win = default_window((h, w), (hh, ww)) if window is None else _check_size(window, "window")
    win = (min(win[0], hh), min(win[1], ww))
    return _crop(
        jnp.asarray(image), jnp.asarray(theta), (h, w), mode, bool(align_corners),
        "general" if method == "general" else "separable", win,
    )


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _crop(image, theta, size, mode, align_corners, method, window):
    if method == "general":
        return _crop_general(image, theta, size, mode, align_corners)
    return _crop_separable(image, theta, size, mode, align_corners, window)


def _crop_general(image, theta, size, mode, align_corners):
    n, p = theta.shape[:2]
    h, w = size
    grid = _affine_grid(theta.reshape(n * p, 2, 3), size, align_corners)
    grid = grid.reshape(n, p * h, w, 2)
    out = _grid_sample(image, grid, mode, align_corners)
    return out.reshape(n, p, h, w, image.shape[-1])


def _separable_coords(theta, size, frame, align_corners):
    """Pixel coordinates of the output rows (..., h) and columns (..., w)."""
    h, w = size
    fh, fw = frame
    dt = _coord_dtype(theta)
    theta = theta.astype(dt)
    xt = _base_coords(w, align_corners, dt)
    yt = _base_coords(h, align_corners, dt)
    gx = _barrier(_prod(xt, theta[..., 0, 0, None]) + theta[..., 0, 2, None])
    gy = _barrier(_prod(yt, theta[..., 1, 1, None]) + theta[..., 1, 2, None])
    return _unnormalize(gy, fh, align_corners), _unnormalize(gx, fw, align_corners)


def _window_origin(coord, size, win, mode):
    """Static-size window origin covering the in-image taps of coord (B, k); fits flag."""
    idx = _taps(coord, size, mode)[0]
    hi = jnp.max(idx, axis=-1) + (0 if mode == "nearest" else 1)
    lo = jnp.maximum(jnp.min(idx, axis=-1), 0)
    o = jnp.clip(lo, 0, size - win)
    fits = jnp.minimum(hi, size - 1) < o + win
    return o, fits


# Parts are processed in chunks of _CHUNK (a lax.scan) so that every temporary of the
# window path stays small: XLA:CPU allocates its temporaries afresh on every call, and
# glibc serves blocks of 32 MB or more with a fresh mmap whose page faults (~0.5 ms/MB
# on a VM) cost more than the arithmetic; smaller blocks are recycled from the heap.
_CHUNK = 16


def _chunks(x, k):
    """(B, ...) -> (ceil(B / k), k, ...), zero-padded."""
    b = x.shape[0]
    m = -(-b // k)
    x = jnp.pad(x, [(0, m * k - b)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(m, k, *x.shape[1:])


def _unchunk(x, b):
    return x.reshape(-1, *x.shape[2:])[:b]


def _windows(image, nb, starts, window):
    """image (N, H, W, C), nb (K,) face index, starts (K, 2) -> (K, wh, ww, C)."""
    c = image.shape[-1]
    zero = jnp.zeros((), starts.dtype)
    slc = lambda i, s: jax.lax.dynamic_slice(image, (i, s[0], s[1], zero), (1, *window, c))[0]
    return jax.vmap(slc)(nb, starts)


def _source(image, nb, starts, window):
    """What a chunk samples from: its parts' windows, or (window None) the faces via nb."""
    if window is None:
        return image, nb
    return _windows(image, nb, starts, window), None


def _bilinear_values(src, ry, rx, fy, fx, nb=None):
    t = _rows_interp(src, ry, fy, nb)
    fx = fx[:, None, :, None]
    return _cols(t, rx) * (1 - fx) + _cols(t, rx + 1) * fx


def _scatter_taps(acc, nb, ry, rx, wy, wx, g):
    """acc (N, H, W, C) += the transpose of separable sampling at taps (ry + a, rx + e)."""
    _, hh, ww, _ = acc.shape
    b = nb[:, None, None]
    for a, wya in enumerate(wy):
        if wya is None:
            continue
        yi = ry + a
        wya = jnp.where((yi >= 0) & (yi < hh), wya, 0)
        for e, wxe in enumerate(wx):
            if wxe is None:
                continue
            xi = rx + e
            wxe = jnp.where((xi >= 0) & (xi < ww), wxe, 0)
            upd = g * (wya[:, :, None, None] * wxe[:, None, :, None]).astype(g.dtype)
            yc = jnp.clip(yi, 0, hh - 1)[:, :, None]
            xc = jnp.clip(xi, 0, ww - 1)[:, None, :]
            acc = acc.at[b, yc, xc].add(upd.astype(acc.dtype))  # invalid taps add 0
    return acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _window_crop(image, nb, starts, ry, rx, fyx, window, mode):
    """Separable sampling of image (N, H, W, C) for B parts, chunked over parts.

    nb (B,) face of each part.  With a static ``window`` (wh, ww), part b samples the
    window of its face at origin starts[b] and ry / rx (B, h) / (B, w) are tap indices
    relative to that window (taps outside it read 0); with ``window=None`` it samples the
    whole face (ry / rx absolute, starts unused).  fyx = (fy, fx) fractions for bilinear,
    None for nearest.
    """
    k = _CHUNK
    b = ry.shape[0]
    fy, fx = fyx if fyx is not None else (jnp.zeros(ry.shape), jnp.zeros(rx.shape))
    xs = tuple(_chunks(a, k) for a in (nb, starts, ry, rx, fy, fx))

    def step(_, x):
        nb_, st, ry_, rx_, fy_, fx_ = x
        src, sb = _source(image, nb_, st, window)
        if mode == "nearest":
            return None, _cols(_rows(src, ry_, sb), rx_)
        return None, _bilinear_values(src, ry_, rx_, fy_, fx_, sb)

    return _unchunk(jax.lax.scan(step, None, xs)[1], b).astype(image.dtype)


def _window_crop_fwd(image, nb, starts, ry, rx, fyx, window, mode):
    out = _window_crop(image, nb, starts, ry, rx, fyx, window, mode)
    return out, (image, nb, starts, ry, rx, fyx)


def _window_crop_bwd(window, mode, res, g):
    image, nb, starts, ry, rx, fyx = res
    k = _CHUNK
    b = ry.shape[0]
    c = image.shape[-1]
    bilinear = fyx is not None
    fy, fx = fyx if bilinear else (jnp.zeros(ry.shape), jnp.zeros(rx.shape))
    xs = tuple(_chunks(a, k) for a in (nb, starts, ry, rx, fy, fx, g))

    # Coordinate gradients: a scan with small outputs, separate from the image gradient's
    # scan, so that XLA drops the latter when only theta needs a gradient.
    d_fyx = None
    if bilinear:
        def coord_step(_, x):
            nb_, st, ry_, rx_, fy_, fx_, g_ = x
            src, sb = _source(image, nb_, st, window)
            d_fx = _d_fx(src, ry_, rx_, fy_, g_, sb)
            # A barrier gives the second reduction its own copy of the gathers: XLA then
            # fuses each gather into its consumer instead of keeping the rows alive.
            src2, ry2, rx2, g2 = jax.lax.optimization_barrier((src, ry_, rx_, g_))
            return None, (_d_fy(src2, ry2, rx2, fx_, g2, sb), d_fx)

        d_fy, d_fx = jax.lax.scan(coord_step, None, xs)[1]
        d_fyx = (_unchunk(d_fy, b).astype(fy.dtype), _unchunk(d_fx, b).astype(fx.dtype))

    # Image gradient, accumulated in place in an image-sized carry.  Windows: per chunk
    # the window gradients Ay^T g Ax (small matmuls), each added with a
    # dynamic_update_slice (no scatter).  Whole faces: a scatter-add of the taps.
    def image_step(acc, x):
        nb_, st, ry_, rx_, fy_, fx_, g_ = x
        if bilinear:
            wy, wx = (1 - fy_, fy_), (1 - fx_, fx_)
        else:
            wy = (jnp.ones(ry_.shape, g_.dtype), None)
            wx = (jnp.ones(rx_.shape, g_.dtype), None)
        if window is None:
            return _scatter_taps(acc, nb_, ry_, rx_, wy, wx, g_), None
        d_win = _src_grad(g_, ry_, rx_, wy, wx, (k, *window, c)).astype(acc.dtype)

        def add(i, acc):
            at = (nb_[i], st[i, 0], st[i, 1], jnp.zeros((), st.dtype))
            cur = jax.lax.dynamic_slice(acc, at, (1, *window, c))
            return jax.lax.dynamic_update_slice(acc, cur + d_win[i][None], at)

        return jax.lax.fori_loop(0, k, add, acc), None

    d_image = jax.lax.scan(image_step, jnp.zeros_like(image), xs)[0]
    return d_image, None, None, None, None, d_fyx


_window_crop.defvjp(_window_crop_fwd, _window_crop_bwd)


def _crop_window(image, theta, size, mode, align_corners, window):
    """Separable crop from a static window per part; exact iff every part fits."""
    n, hh, ww, c = image.shape
    p = theta.shape[1]
    h, w = size
    iy, ix = _separable_coords(theta.reshape(n * p, 2, 3), size, (hh, ww), align_corners)
    ry, fy = _taps(iy, hh, mode)
    rx, fx = _taps(ix, ww, mode)
    if window is None:  # whole faces: always exact
        starts = jnp.zeros((n * p, 2), jnp.int32)
        fits = jnp.asarray(True)
    else:
        oy, fits_y = _window_origin(iy, hh, window[0], mode)
        ox, fits_x = _window_origin(ix, ww, window[1], mode)
        ry = ry - oy[:, None]
        rx = rx - ox[:, None]
        starts = jax.lax.stop_gradient(jnp.stack([oy, ox], -1))
        fits = jnp.all(fits_y) & jnp.all(fits_x)
        window = tuple(window)
    nb = jnp.repeat(jnp.arange(n, dtype=starts.dtype), p)
    fyx = None if mode == "nearest" else (fy, fx)
    out = _window_crop(image, nb, starts, ry, rx, fyx, window, mode)
    return out.reshape(n, p, h, w, c), fits


def _crop_separable(image, theta, size, mode, align_corners, window):
    if tuple(window) == tuple(image.shape[1:3]):  # the window is the whole image: always fits
        return _crop_window(image, theta, size, mode, align_corners, None)[0]
    return _crop_sep_exact(image, theta, size, mode, align_corners, window)


def _fits(image, theta, size, mode, align_corners, window):
    n, hh, ww, _ = image.shape
    iy, ix = _separable_coords(theta.reshape(-1, 2, 3), size, (hh, ww), align_corners)
    return jnp.all(_window_origin(iy, hh, window[0], mode)[1]) & jnp.all(
        _window_origin(ix, ww, window[1], mode)[1]
    )


# The window / whole-face choice is a lax.cond wrapped in a custom VJP whose backward pass
# is another cond.  Differentiating through a plain lax.cond would make the forward pass
# emit (zero-filled) residuals for BOTH branches, which dominated the run time on CPU.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _crop_sep_exact(image, theta, size, mode, align_corners, window):
    fast = lambda i, t: _crop_window(i, t, size, mode, align_corners, window)[0]
    slow = lambda i, t: _crop_window(i, t, size, mode, align_corners, None)[0]
    fits = _fits(image, theta, size, mode, align_corners, window)
    return jax.lax.cond(fits, fast, slow, image, theta)


def _crop_sep_exact_fwd(image, theta, size, mode, align_corners, window):
    return _crop_sep_exact(image, theta, size, mode, align_corners, window), (image, theta)


def _crop_sep_exact_bwd(size, mode, align_corners, window, res, g):
    image, theta = res
    fast = lambda i, t: _crop_window(i, t, size, mode, align_corners, window)[0]
    slow = lambda i, t: _crop_window(i, t, size, mode, align_corners, None)[0]
    fits = _fits(image, theta, size, mode, align_corners, window)
    vjp = lambda f: (lambda i, t, g: jax.vjp(f, i, t)[1](g))
    return jax.lax.cond(fits, vjp(fast), vjp(slow), image, theta, g)


_crop_sep_exact.defvjp(_crop_sep_exact_fwd, _crop_sep_exact_bwd)


# --------------------------------------------------------------------------------------
# Public: paste (inverse transform, eq. 5).
# --------------------------------------------------------------------------------------
def invert_theta(theta: Float[Array, "... 2 3"]) -> Float[Array, "... 2 3"]:
    """Inverse of the affine map [[a, b, tx], [c, d, ty]] (differentiable), (..., 2, 3)."""
    if jnp.ndim(theta) < 2 or jnp.shape(theta)[-2:] != (2, 3):
        raise ValueError(f"theta must have shape (..., 2, 3), got {jnp.shape(theta)}")
    _check_float(theta, "theta", "theta")
    theta = jnp.asarray(theta)
    a, b, tx = theta[..., 0, 0], theta[..., 0, 1], theta[..., 0, 2]
    c, d, ty = theta[..., 1, 0], theta[..., 1, 1], theta[..., 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    itx = -(ia * tx + ib * ty)
    ity = -(ic * tx + id_ * ty)
    return jnp.stack(
        [jnp.stack([ia, ib, itx], -1), jnp.stack([ic, id_, ity], -1)], axis=-2
    )


def _check_parts(parts, theta):
    _check_rank(parts, 5, "parts", "(N, P, h, w, C)")
    _check_float(parts, "parts", "image")
    _check_theta(theta, tuple(jnp.shape(parts)[:2]))


def paste(
    parts: Float[Array, "N P h w C"],
    theta: Float[Array, "N P 2 3"],
    size,
    mode: Mode = "nearest",
    align_corners: bool = True,
) -> Float[Array, "N P H W C"]:
    """Reference paste-back: each part mapped onto the full (H, W) canvas.

    parts (N, P, h, w, C), theta (N, P, 2, 3) the CROP theta, size = (H, W).
    ``out[n, p] = grid_sample(parts[n, p], affine_grid(invert_theta(theta[n, p]), (H, W)))``
    with zero padding (0 outside the patch).  Full canvas per part: for tests and small
    sizes; the pipeline uses ``paste_window``.
    """
    _check_parts(parts, theta)
    hh, ww = _check_size(size)
    _check_mode(mode)
    return _paste(jnp.asarray(parts), jnp.asarray(theta), (hh, ww), mode, bool(align_corners))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _paste(parts, theta, size, mode, align_corners):
    n, p, h, w, c = parts.shape
    hh, ww = size
    inv = invert_theta(theta).reshape(n * p, 2, 3)
    grid = _affine_grid(inv, size, align_corners)
    out = _grid_sample(parts.reshape(n * p, h, w, c), grid, mode, align_corners)
    return out.reshape(n, p, hh, ww, c)


def paste_window(
    parts: Float[Array, "N P h w C"],
    theta: Float[Array, "N P 2 3"],
    size,
    window,
    mode: Mode = "nearest",
    align_corners: bool = True,
) -> tuple[Float[Array, "N P wh ww C"], Int[Array, "N P 2"]]:
    """Paste-back computed only on a static window of the canvas around each part.

    parts (N, P, h, w, C), theta (N, P, 2, 3) the crop theta (constrained, eq. 15: the
    off-diagonal entries are IGNORED), size = (H, W) canvas, window = (wh, ww).
    Returns ``values`` (N, P, wh, ww, C) and ``origin`` (N, P, 2) int32 = (row, col) of
    the window's top-left canvas pixel, centred on the patch centre (the canvas pixel
    that theta maps the crop's centre to), so that
    ``values[n, p] == paste(...)[n, p, oy:oy + wh, ox:ox + ww]`` wherever that slice
    lies inside the canvas.  Canvas pixels outside the window are not produced: this is
    exact whenever the patch's footprint (pixels where it is non-zero) fits in the
    window; for the model's 1:1 scale the footprint is h x w (nearest) or (h+1) x (w+1)
    (bilinear), so ``window = (h + 2, w + 2)`` is enough.  Origins may be negative or
    run past the canvas edge; values at positions outside the canvas are set to 0 and
    the consumer must clip.  Cost: O(N P wh ww C), independent of (H, W).
    """
    _check_parts(parts, theta)
    hh, ww = _check_size(size)
    win = _check_size(window, "window")
    _check_mode(mode)
    return _paste_window(
        jnp.asarray(parts), jnp.asarray(theta), (hh, ww), win, mode, bool(align_corners)
    )


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _paste_window(parts, theta, size, window, mode, align_corners):
    n, p, h, w, c = parts.shape
    hh, ww = size
    wh, wwin = window
    dt = _coord_dtype(theta)
    theta = theta.reshape(n * p, 2, 3).astype(dt)
    inv = invert_theta(theta)
    # Patch centre in canvas pixels: theta maps the crop's normalised centre (0, 0) to (tx, ty).
    cy = _unnormalize(theta[:, 1, 2], hh, align_corners)
    cx = _unnormalize(theta[:, 0, 2], ww, align_corners)
    cy = jax.lax.stop_gradient(cy)
    cx = jax.lax.stop_gradient(cx)
    oy = jnp.floor(cy - (wh - 1) / 2 + 0.5)
    ox = jnp.floor(cx - (wwin - 1) / 2 + 0.5)
    oy = jnp.clip(oy, -2 * wh - hh, 2 * wh + hh).astype(jnp.int32)
    ox = jnp.clip(ox, -2 * wwin - ww, 2 * wwin + ww).astype(jnp.int32)
    rows = oy[:, None] + jnp.arange(wh, dtype=jnp.int32)  # canvas rows (B, wh)
    cols = ox[:, None] + jnp.arange(wwin, dtype=jnp.int32)
    # Canvas normalised coordinates taken from the same table as affine_grid, so the
    # window equals the full-canvas paste bit for bit.
    yc = _base_coords(hh, align_corners, dt)[jnp.clip(rows, 0, hh - 1)]
    xc = _base_coords(ww, align_corners, dt)[jnp.clip(cols, 0, ww - 1)]
    gy = _barrier(_prod(yc, inv[:, 1, 1, None]) + inv[:, 1, 2, None])
    gx = _barrier(_prod(xc, inv[:, 0, 0, None]) + inv[:, 0, 2, None])
    iy = _unnormalize(gy, h, align_corners)
    ix = _unnormalize(gx, w, align_corners)
    vals = _sep_sample(parts.reshape(n * p, h, w, c), iy, ix, mode)
    inside = ((rows >= 0) & (rows < hh))[:, :, None, None] & (
        (cols >= 0) & (cols < ww)
    )[:, None, :, None]
    vals = jnp.where(inside, vals, jnp.zeros((), vals.dtype))
    origin = jnp.stack([oy, ox], axis=-1).reshape(n, p, 2)
    return vals.reshape(n, p, wh, wwin, c), origin


# --------------------------------------------------------------------------------------
# Public: theta helpers.
# --------------------------------------------------------------------------------------
def align_corners_for(convention: Convention) -> bool:
    """The align_corners value a theta convention is meant for (paper False, authors True)."""
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {_CONVENTIONS}, got {convention!r}")
    return convention == "authors"


def theta_from_centers(
    centers: Float[Array, "... 2"],
    crop_size,
    canvas_size,
    convention: Convention = "paper",
) -> Float[Array, "... 2 3"]:
    """Crop theta (eq. 21) of a (h̄, w̄) window centred on ``centers`` (..., 2) = (y, x).

    Centres are pixel-index coordinates (pixel c has its centre at c). ``canvas_size`` =
    (H, W) is either a static pair of ints or an array whose last axis is (H, W) and
    which broadcasts against ``centers`` (per-example image sizes, e.g. (N, 1, 2)).

    * "paper" (use with align_corners=False): sx = w̄/W, tx = -1 + 2 (x + 0.5)/W, i.e.
      eq. 21 with x measured in continuous coordinates where pixel c spans [c, c + 1].
    * "authors" (use with align_corners=True): sx = (w̄ - 1)/(W - 1), tx = -1 + 2x/(W - 1).

    With either, an odd crop at an integer centre samples exactly the integer pixels
    c - (w̄ - 1)/2 ... c + (w̄ - 1)/2 (paper Fig. 7/8).
    """
    if jnp.ndim(centers) < 1 or jnp.shape(centers)[-1] != 2:
        raise ValueError(f"centers must have shape (..., 2) as (y, x), got {jnp.shape(centers)}")
    hb, wb = _check_size(crop_size, "crop_size")
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {_CONVENTIONS}, got {convention!r}")
    centers = jnp.asarray(centers)
    dt = _coord_dtype(centers) if jnp.issubdtype(centers.dtype, jnp.floating) else jnp.float32
    if isinstance(canvas_size, (tuple, list)) and len(canvas_size) == 2 and all(
        isinstance(v, (int, np.integer)) for v in canvas_size
    ):
        hh, ww = (jnp.asarray(v, dt) for v in _check_size(canvas_size, "canvas_size"))
    else:
        sizes = jnp.asarray(canvas_size, dt)
        if sizes.ndim < 1 or sizes.shape[-1] != 2:
            raise ValueError(
                f"canvas_size must be (H, W) ints or an array (..., 2), got shape {sizes.shape}"
            )
        hh, ww = sizes[..., 0], sizes[..., 1]
    y = centers[..., 0].astype(dt)
    x = centers[..., 1].astype(dt)
    if convention == "paper":
        sx, sy = wb / ww, hb / hh
        tx = -1 + 2 * (x + 0.5) / ww
        ty = -1 + 2 * (y + 0.5) / hh
    else:
        sx = (wb - 1) / jnp.maximum(ww - 1, 1)
        sy = (hb - 1) / jnp.maximum(hh - 1, 1)
        tx = -1 + 2 * x / jnp.maximum(ww - 1, 1)
        ty = -1 + 2 * y / jnp.maximum(hh - 1, 1)
    z = jnp.zeros_like(x)
    return jnp.stack(
        [jnp.stack([z + sx, z, tx], -1), jnp.stack([z, z + sy, ty], -1)], axis=-2
    )


def theta_to_frame(
    theta: Float[Array, "N P 2 3"],
    src_origin: Int[Array, "N 2"],
    src_size: Int[Array, "N 2"],
    dst_size,
    align_corners: bool,
) -> Float[Array, "N P 2 3"]:
    """Re-express a sub-image theta in the normalised coordinates of a larger canvas.

    theta (N, P, 2, 3) samples the unpadded image n of size src_size[n] = (h, w), which
    sits at integer offset src_origin[n] = (top, left) inside a zero canvas of static
    size dst_size = (H, W).  Returns theta' such that cropping the canvas with theta'
    equals cropping the image (zero-padded) with theta.  Pure affine composition;
    src_origin / src_size may be traced (per-example) values.
    """
    _check_theta(theta, (None, None))
    n = jnp.shape(theta)[0]
    for name, a in (("src_origin", src_origin), ("src_size", src_size)):
        if jnp.shape(a) != (n, 2):
            raise ValueError(f"{name} must have shape (N, 2) = ({n}, 2), got {jnp.shape(a)}")
    hh, ww = _check_size(dst_size, "dst_size")
    theta = jnp.asarray(theta)
    dt = _coord_dtype(theta)
    theta = theta.astype(dt)
    org = jnp.asarray(src_origin).astype(dt)
    sz = jnp.asarray(src_size).astype(dt)
    canvas = jnp.asarray([hh, ww], dt)
    if align_corners:
        # pixel = (u + 1)/2 (s - 1); canvas u' = 2 (pixel + o)/(S - 1) - 1
        scale = (sz - 1) / (canvas - 1)
        shift = (sz - 1 + 2 * org) / (canvas - 1) - 1
    else:
        # pixel = ((u + 1) s - 1)/2; canvas u' = (2 (pixel + o) + 1)/S - 1
        scale = sz / canvas
        shift = (sz + 2 * org) / canvas - 1
    # (y, x) order in scale/shift; theta row 0 is x, row 1 is y.
    a = jnp.stack([scale[:, 1], scale[:, 0]], -1)[:, None, :, None]  # (N, 1, 2, 1)
    b = jnp.stack([shift[:, 1], shift[:, 0]], -1)[:, None, :]  # (N, 1, 2)
    out = theta * a
    return out.at[..., 2].add(b)
