"""Affine theta geometry of the STN: crop thetas from part centres and back, inverse
thetas, and re-expressing a theta in another frame. Pure ``jnp`` functions of arrays,
differentiable and jit-able; the sampling itself is ``sampler``'s.

Conventions:

* A theta (..., 2, 3) ``[[sx, b, tx], [c, sy, ty]]`` maps the normalised coordinates
  ``(x, y, 1)`` of a crop's output grid to normalised coordinates of the image it is
  sampled from (x = column, each in ``[-1, 1]`` across the image).  The model's thetas
  are constrained (paper eq. 15): ``b = c = 0``.
* Normalised and pixel coordinates (pixel c has its centre at pixel coordinate c) are
  related by ``align_corners`` as in ``torch.nn.functional.affine_grid`` /
  ``grid_sample``: ``False``: -1 and +1 are the image's outer edges,
  ``pixel = ((u + 1) * size - 1) / 2``; ``True``: they are the centres of the first and
  last pixel, ``pixel = (u + 1) / 2 * (size - 1)``.
* Two theta conventions (:func:`theta_from_centers`), each meant for one
  ``align_corners`` (:func:`align_corners_for`): ``"paper"`` (eq. 21, s = w̄/W,
  align_corners=False) and ``"authors"`` (their code, s = (w̄ - 1)/(W - 1),
  align_corners=True).  Both put an odd crop at an integer centre on the integer pixel
  grid (paper Figs. 7/8).
* Frames: a theta is relative to the image it samples.  The model's theta is relative
  to each example's unpadded image (``theta_frame="image"``, eq. 21 with W the image
  width) or to the zero-padded canvas the pipeline batches images on (``"canvas"``);
  :func:`theta_to_frame` turns the former into the latter from the image's size and
  offset on the canvas.

Coordinates are computed in ``promote_types(theta.dtype, float32)`` (:func:`coord_dtype`).
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from stn_icnn_jax.array_checks import check_float, check_size, check_theta

__all__ = [
    "Convention",
    "CONVENTIONS",
    "align_corners_for",
    "theta_from_centers",
    "centers_from_theta",
    "theta_to_frame",
    "invert_theta",
    "coord_dtype",
]

Convention = Literal["paper", "authors"]
CONVENTIONS = ("paper", "authors")


def coord_dtype(*arrays):
    """The dtype coordinates are computed in: ``promote_types(float32, *dtypes)``."""
    dt = jnp.float32
    for a in arrays:
        dt = jnp.promote_types(dt, jnp.asarray(a).dtype)
    return dt


def _check_convention(convention) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def align_corners_for(convention: Convention) -> bool:
    """The align_corners value a theta convention is meant for (paper False, authors True)."""
    _check_convention(convention)
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
    hb, wb = check_size(crop_size, "crop_size")
    _check_convention(convention)
    centers = jnp.asarray(centers)
    dt = coord_dtype(centers) if jnp.issubdtype(centers.dtype, jnp.floating) else jnp.float32
    if isinstance(canvas_size, (tuple, list)) and len(canvas_size) == 2 and all(
        isinstance(v, (int, np.integer)) for v in canvas_size
    ):
        hh, ww = (jnp.asarray(v, dt) for v in check_size(canvas_size, "canvas_size"))
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


def centers_from_theta(
    theta: Float[Array, "... 2 3"],
    canvas_size,
    convention: Convention = "paper",
) -> Float[Array, "... 2"]:
    """The (y, x) pixel-index centre of each crop window: the inverse of
    :func:`theta_from_centers` in its translation (the scale is not used).

    ``canvas_size`` = (H, W) ints or an array broadcasting against ``theta[..., 0, 0]``'s
    leading axes plus a last axis (H, W), e.g. (N, 1, 2).
    """
    if jnp.ndim(theta) < 2 or jnp.shape(theta)[-2:] != (2, 3):
        raise ValueError(f"theta must have shape (..., 2, 3), got {jnp.shape(theta)}")
    _check_convention(convention)
    theta = jnp.asarray(theta)
    sizes = jnp.asarray(canvas_size, theta.dtype)
    hh, ww = sizes[..., 0], sizes[..., 1]
    tx, ty = theta[..., 0, 2], theta[..., 1, 2]
    if convention == "paper":  # tx = -1 + 2 (x + 0.5) / W
        x, y = (tx + 1) * ww / 2 - 0.5, (ty + 1) * hh / 2 - 0.5
    else:  # tx = -1 + 2 x / (W - 1)
        x, y = (tx + 1) * jnp.maximum(ww - 1, 1) / 2, (ty + 1) * jnp.maximum(hh - 1, 1) / 2
    return jnp.stack([y, x], axis=-1)


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
    check_theta(theta, (None, None))
    n = jnp.shape(theta)[0]
    for name, a in (("src_origin", src_origin), ("src_size", src_size)):
        if jnp.shape(a) != (n, 2):
            raise ValueError(f"{name} must have shape (N, 2) = ({n}, 2), got {jnp.shape(a)}")
    hh, ww = check_size(dst_size, "dst_size")
    theta = jnp.asarray(theta)
    dt = coord_dtype(theta)
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


def invert_theta(theta: Float[Array, "... 2 3"]) -> Float[Array, "... 2 3"]:
    """Inverse of the affine map [[a, b, tx], [c, d, ty]] (differentiable), (..., 2, 3)."""
    if jnp.ndim(theta) < 2 or jnp.shape(theta)[-2:] != (2, 3):
        raise ValueError(f"theta must have shape (..., 2, 3), got {jnp.shape(theta)}")
    check_float(theta, "theta", "theta")
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
