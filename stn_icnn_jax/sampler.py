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

The thetas (paper eq. 15: ``[[sx, 0, tx], [0, sy, ty]]`` maps the normalised output
grid of a crop to normalised coordinates of the source image), their conventions and
frames are ``theta_geometry``'s.  ``crop`` samples the parts; ``paste`` /
``paste_window`` apply the inverse (eq. 5).  ``crop``, ``paste``, ``paste_window``
(like ``affine_grid`` / ``grid_sample``) default to ``align_corners=False``, the
paper's convention (``theta_geometry.align_corners_for("paper")``); thetas of the
"authors" convention need ``align_corners=True`` passed explicitly.

This module is the public API (argument checks, coordinates, the general 2-D path); the
separable kernel with its custom VJP, shared by ``crop`` and ``paste_window``, lives in
``sampler_kernels``.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from stn_icnn_jax import sampler_kernels as K
from stn_icnn_jax.array_checks import check_float, check_rank, check_size, check_theta
from stn_icnn_jax.theta_geometry import coord_dtype, invert_theta
from stn_icnn_jax.sampler_kernels import DEFAULT_CHUNK_SIZE

__all__ = [
    "affine_grid",
    "grid_sample",
    "crop",
    "paste",
    "paste_window",
    "default_window",
    "DEFAULT_CHUNK_SIZE",
]

Mode = Literal["bilinear", "nearest"]
Method = Literal["separable", "general"]

_MODES = ("bilinear", "nearest")
_METHODS = ("separable", "general")


# --------------------------------------------------------------------------------------
# Validation of the sampler's own arguments (the shared checks are ``array_checks``).
# --------------------------------------------------------------------------------------
def _check_mode(mode) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def _check_chunk_size(chunk_size) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return int(chunk_size)


# --------------------------------------------------------------------------------------
# Coordinate helpers.
# --------------------------------------------------------------------------------------
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
    check_theta(theta, (None,))
    h, w = check_size(size)
    return _affine_grid(jnp.asarray(theta), (h, w), bool(align_corners))


def _affine_grid(theta, size, align_corners):
    h, w = size
    dt = coord_dtype(theta)
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
    check_rank(image, 4, "image", "(N, H, W, C)")
    check_float(image, "image", "image")
    check_rank(grid, 4, "grid", "(N, h, w, 2)")
    check_float(grid, "grid", "grid")
    if jnp.shape(grid)[-1] != 2 or jnp.shape(grid)[0] != jnp.shape(image)[0]:
        raise ValueError(
            f"grid must have shape (N, h, w, 2) with N = image's {jnp.shape(image)[0]}, "
            f"got {jnp.shape(grid)}"
        )
    _check_mode(mode)
    if padding_mode != "zeros":
        raise ValueError(f"only padding_mode='zeros' is supported, got {padding_mode!r}")
    return _grid_sample(jnp.asarray(image), jnp.asarray(grid), mode, bool(align_corners))


def _grid_sample(image, grid, mode, align_corners):
    n, hh, ww, c = image.shape
    dt = coord_dtype(grid)
    grid = grid.astype(dt)
    ix = _unnormalize(grid[..., 0], ww, align_corners)
    iy = _unnormalize(grid[..., 1], hh, align_corners)
    b = jnp.arange(n)[:, None, None]

    def corner(yi, xi):
        valid = (xi >= 0) & (xi < ww) & (yi >= 0) & (yi < hh)
        v = image[b, jnp.clip(yi, 0, hh - 1), jnp.clip(xi, 0, ww - 1)]
        return jnp.where(valid[..., None], v, jnp.zeros((), image.dtype))

    if mode == "nearest":
        return corner(K.floor_index(jnp.round(iy), hh), K.floor_index(jnp.round(ix), ww))

    x0 = jnp.floor(ix)
    y0 = jnp.floor(iy)
    wx1 = ix - x0
    wx0 = (x0 + 1) - ix
    wy1 = iy - y0
    wy0 = (y0 + 1) - iy
    xi = K.floor_index(x0, ww)
    yi = K.floor_index(y0, hh)
    out = (
        corner(yi, xi) * (wx0 * wy0)[..., None]
        + corner(yi, xi + 1) * (wx1 * wy0)[..., None]
        + corner(yi + 1, xi) * (wx0 * wy1)[..., None]
        + corner(yi + 1, xi + 1) * (wx1 * wy1)[..., None]
    )
    return out.astype(image.dtype)


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
    align_corners: bool = False,
    method: Method = "separable",
    window=None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Float[Array, "N P h w C"]:
    """All P parts of each image: ``out[n, p] = grid_sample(image[n], affine_grid(theta[n, p]))``.

    image (N, H, W, C) floating, theta (N, P, 2, 3), size = (h, w) -> (N, P, h, w, C).
    The image is never copied per part.  ``align_corners`` defaults to False, the
    model's "paper" convention (``theta_geometry.align_corners_for``); pass True for "authors" thetas.

    method:
      * "separable" (default): for the model's constrained theta (eq. 15)
        [[sx, 0, tx], [0, sy, ty]].  The off-diagonal entries theta[..., 0, 1] and
        theta[..., 1, 0] are IGNORED (treated as 0; their gradient is 0).  Source x then
        depends only on the output column and source y only on the output row, so the
        crop is two 1-D interpolations (``sampler_kernels``) of a static ``window``
        (wh, ww) of the image around each part (default ``default_window(size, (H, W))``).
        If some part's footprint does not fit its window (|s| more than ~1.125x the 1:1
        scale), a ``lax.cond`` falls back to sampling the whole faces (slower: the image
        gradient becomes a scatter-add) for the whole batch, so the result is always
        exact.  Values and gradients (image and theta) equal the general path's to float
        rounding.  Parts are processed ``chunk_size`` at a time (a ``lax.scan``; None:
        all parts in one step) to keep temporaries small; the default 16 is tuned for
        XLA:CPU's allocator (temporaries under 32 MB are recycled, larger ones
        page-fault afresh on every call); accelerators may prefer larger chunks.  When
        only theta needs a gradient the image gradient is not computed.
      * "general": affine_grid + 2-D gathers; any theta (``window`` / ``chunk_size``
        unused).

    There is no "auto": the method cannot be chosen from theta's values (they are traced
    under jit), and only the caller knows whether its theta is constrained.
    """
    check_rank(image, 4, "image", "(N, H, W, C)")
    check_float(image, "image", "image")
    check_theta(theta, (jnp.shape(image)[0], None))
    h, w = check_size(size)
    _check_mode(mode)
    if method not in _METHODS:
        raise ValueError(
            f"method must be one of {_METHODS}, got {method!r}"
            + (" ('auto' was an alias of 'separable')" if method == "auto" else "")
        )
    chunk = _check_chunk_size(chunk_size)
    hh, ww = jnp.shape(image)[1:3]
    win = default_window((h, w), (hh, ww)) if window is None else check_size(window, "window")
    win = (min(win[0], hh), min(win[1], ww))
    return _crop(
        jnp.asarray(image), jnp.asarray(theta), (h, w), mode, bool(align_corners), method,
        win, chunk,
    )


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6, 7))
def _crop(image, theta, size, mode, align_corners, method, window, chunk_size):
    if method == "general":
        return _crop_general(image, theta, size, mode, align_corners)
    if window == tuple(image.shape[1:3]):  # the window is the whole image: always fits
        return _crop_window(image, theta, size, mode, align_corners, None, chunk_size)
    return _crop_sep_exact(image, theta, size, mode, align_corners, window, chunk_size)


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
    dt = coord_dtype(theta)
    theta = theta.astype(dt)
    xt = _base_coords(w, align_corners, dt)
    yt = _base_coords(h, align_corners, dt)
    gx = _barrier(_prod(xt, theta[..., 0, 0, None]) + theta[..., 0, 2, None])
    gy = _barrier(_prod(yt, theta[..., 1, 1, None]) + theta[..., 1, 2, None])
    return _unnormalize(gy, fh, align_corners), _unnormalize(gx, fw, align_corners)


def _crop_window(image, theta, size, mode, align_corners, window, chunk_size):
    """Separable crop, each part from a static window of its face (None: the whole face)."""
    n, hh, ww, c = image.shape
    p = theta.shape[1]
    iy, ix = _separable_coords(theta.reshape(n * p, 2, 3), size, (hh, ww), align_corners)
    faces = jnp.repeat(jnp.arange(n, dtype=jnp.int32), p)
    out = K.sample(image, iy, ix, mode=mode, faces=faces, window=window, chunk_size=chunk_size)
    return out.reshape(n, p, *size, c)


# The window / whole-face choice is a lax.cond wrapped in a custom VJP whose backward pass
# is another cond.  Differentiating through a plain lax.cond would make the forward pass
# emit (zero-filled) residuals for BOTH branches, which dominated the run time on CPU.
def _crop_cond(image, theta, g, size, mode, align_corners, window, chunk_size):
    """The window crop if every part fits its window, else the whole-face crop; given a
    cotangent g, the VJP (d_image, d_theta) of the same branch instead."""

    def branch(win):
        f = lambda i, t: _crop_window(i, t, size, mode, align_corners, win, chunk_size)
        return f if g is None else (lambda i, t, g: jax.vjp(f, i, t)[1](g))

    hh, ww = image.shape[1:3]
    iy, ix = _separable_coords(theta.reshape(-1, 2, 3), size, (hh, ww), align_corners)
    fits = K.windows_fit(iy, ix, (hh, ww), window, mode)
    args = (image, theta) if g is None else (image, theta, g)
    return jax.lax.cond(fits, branch(window), branch(None), *args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _crop_sep_exact(image, theta, size, mode, align_corners, window, chunk_size):
    return _crop_cond(image, theta, None, size, mode, align_corners, window, chunk_size)


def _crop_sep_exact_fwd(image, theta, *static):
    return _crop_sep_exact(image, theta, *static), (image, theta)


def _crop_sep_exact_bwd(*static_res_g):
    *static, (image, theta), g = static_res_g
    return _crop_cond(image, theta, g, *static)


_crop_sep_exact.defvjp(_crop_sep_exact_fwd, _crop_sep_exact_bwd)


# --------------------------------------------------------------------------------------
# Public: paste (inverse transform, eq. 5).
# --------------------------------------------------------------------------------------
def _check_parts(parts, theta):
    check_rank(parts, 5, "parts", "(N, P, h, w, C)")
    check_float(parts, "parts", "image")
    check_theta(theta, tuple(jnp.shape(parts)[:2]))


def paste(
    parts: Float[Array, "N P h w C"],
    theta: Float[Array, "N P 2 3"],
    size,
    mode: Mode = "nearest",
    align_corners: bool = False,
) -> Float[Array, "N P H W C"]:
    """Reference paste-back: each part mapped onto the full (H, W) canvas.

    parts (N, P, h, w, C), theta (N, P, 2, 3) the CROP theta, size = (H, W) ->
    (N, P, H, W, C).
    ``out[n, p] = grid_sample(parts[n, p], affine_grid(invert_theta(theta[n, p]), (H, W)))``
    with zero padding (0 outside the patch).  Full canvas per part: for tests and small
    sizes; the pipeline uses ``paste_window``.  ``align_corners`` defaults to False (the
    "paper" convention), as in ``crop``.
    """
    _check_parts(parts, theta)
    hh, ww = check_size(size)
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
    align_corners: bool = False,
    chunk_size: int | None = None,
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

    ``align_corners`` defaults to False (the "paper" convention), as in ``crop``.  The
    window values are sampled from the parts by the separable kernel shared with
    ``crop`` (``sampler_kernels``), ``chunk_size`` parts per ``lax.scan`` step.  The
    default None (all parts in one step, as the pipeline's forward-only paste wants)
    differs from crop's 16: on CPU (experiments/bench_sampler.py's paste case) the
    forward pass measured ~2x slower in chunks of 16, while a forward+backward pass
    measured ~1.8x faster in chunks of 16; pass ``chunk_size=16`` when differentiating.
    """
    _check_parts(parts, theta)
    hh, ww = check_size(size)
    win = check_size(window, "window")
    _check_mode(mode)
    chunk = _check_chunk_size(chunk_size)
    return _paste_window(
        jnp.asarray(parts), jnp.asarray(theta), (hh, ww), win, mode, bool(align_corners), chunk
    )


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _paste_window(parts, theta, size, window, mode, align_corners, chunk_size):
    n, p, h, w, c = parts.shape
    hh, ww = size
    wh, wwin = window
    dt = coord_dtype(theta)
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
    vals = K.sample(parts.reshape(n * p, h, w, c), iy, ix, mode=mode, chunk_size=chunk_size)
    inside = ((rows >= 0) & (rows < hh))[:, :, None, None] & (
        (cols >= 0) & (cols < ww)
    )[:, None, :, None]
    vals = jnp.where(inside, vals, jnp.zeros((), vals.dtype))
    origin = jnp.stack([oy, ox], axis=-1).reshape(n, p, 2)
    return vals.reshape(n, p, wh, wwin, c), origin
