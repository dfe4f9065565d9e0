"""Part centres from label maps, and the part label crops' classes.

The six parts and their classes are :data:`stn_icnn_jax.taxonomy.PART_NAMES` and
:data:`~stn_icnn_jax.taxonomy.PART_CLASSES` (brows 1, 2; eyes 3, 4; nose 5; mouth =
upper lip 6, inner mouth 7, lower lip 8).

Two conventions for the centre (docs/authors-code.md §2.3 vs the paper's eq. 21):

- ``"paper"``: the centroid of the part's soft mask (the mouth is the union of its three
  classes), rounded to the nearest pixel so an odd crop lands on the integer grid
  (paper section 3.3). A part absent from the labels (a brow under hair) has no
  centroid: ``present`` is False and its centre is ``fallback``.
- ``"authors"``: the reference code's ``calc_centroid``: weights ``label + 1e-10`` at
  every pixel (so an absent class sits at the map centre), floor; the mouth is the floor
  of the mean of the three floored lip/inner-mouth centroids (so a closed mouth, which
  has no inner mouth, is dragged a third of the way to the map centre).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from stn_icnn_jax.taxonomy import NUM_PARTS, PART_CLASSES

CenterConvention = Literal["paper", "authors"]


def _array_module(x):
    """numpy for numpy inputs (the host input pipeline), jax.numpy otherwise."""
    return np if isinstance(x, np.ndarray) else jnp


def _weighted_centroids(weights):
    """Centroids (y, x) of ``weights (N, H, W, K)`` -> ``(N, K, 2)`` and masses ``(N, K)``."""
    xp = _array_module(weights)
    _, h, w, _ = weights.shape
    mass = weights.sum(axis=(1, 2))
    ys = xp.arange(h, dtype=weights.dtype)
    xs = xp.arange(w, dtype=weights.dtype)
    cy = xp.einsum("nhwk,h->nk", weights, ys) / xp.maximum(mass, 1e-30)
    cx = xp.einsum("nhwk,w->nk", weights, xs) / xp.maximum(mass, 1e-30)
    return xp.stack([cy, cx], axis=-1), mass


def part_centroids(soft_labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Unrounded centroids of the six part masks (the mouth: union of its three classes).

    Args:
      soft_labels: ``(N, H, W, 9)`` class probabilities (or one-hot maps), numpy or jax.

    Returns:
      ``centroids (N, 6, 2)`` as (y, x) in pixel-index coordinates (meaningless where the
      mass is 0) and ``mass (N, 6)``, each part's summed probability in pixels.
    """
    xp = _array_module(soft_labels)
    masks = xp.stack(
        [soft_labels[..., list(classes)].sum(-1) for classes in PART_CLASSES], axis=-1
    )
    return _weighted_centroids(masks)


def part_centers(
    soft_labels: jax.Array,
    convention: CenterConvention = "paper",
    fallback: jax.Array | None = None,
    min_mass: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """Centres of the six parts.

    Works on numpy arrays (in the host input pipeline) and on jax arrays alike.

    Args:
      soft_labels: ``(N, H, W, 9)`` class probabilities in [0, 1] (channel 0 background).
      convention: ``"paper"`` or ``"authors"`` (see the module docstring).
      fallback: ``(6, 2)`` or ``(N, 6, 2)`` centres used for absent parts under
        ``"paper"``; default: the centre of the map.
      min_mass: a part with less soft mass (in pixels) than this is absent.

    Returns:
      ``centers (N, 6, 2)`` float32 as (y, x) integer-valued pixel indices, and
      ``present (N, 6)`` bool.
    """
    if soft_labels.ndim != 4 or soft_labels.shape[-1] != 9:
        raise ValueError(f"soft_labels must be (N, H, W, 9), got shape {soft_labels.shape}")
    xp = _array_module(soft_labels)
    soft_labels = soft_labels.astype(xp.float32)
    n, h, w, _ = soft_labels.shape
    centre = xp.array([(h - 1) // 2, (w - 1) // 2], xp.float32)
    if convention == "authors":
        cls, mass = _weighted_centroids(soft_labels[..., 1:] + 1e-10)
        cls = xp.floor(cls)
        single = cls[:, :5]
        mouth = xp.floor(cls[:, 5:8].mean(axis=1, keepdims=True))
        centers = xp.concatenate([single, mouth], axis=1)
        class_mass = soft_labels[..., 1:].sum(axis=(1, 2))
        present = xp.concatenate(
            [class_mass[:, :5] >= min_mass, (class_mass[:, 5:8].sum(-1) >= min_mass)[:, None]],
            axis=1,
        )
        return centers, present
    if convention != "paper":
        raise ValueError(f"unknown centre convention {convention!r}; use 'paper' or 'authors'")
    centers, mass = part_centroids(soft_labels)
    present = mass >= min_mass
    if fallback is None:
        fallback = xp.broadcast_to(centre, (n, NUM_PARTS, 2))
    fallback = xp.broadcast_to(xp.asarray(fallback, xp.float32), (n, NUM_PARTS, 2))
    centers = xp.where(present[..., None], xp.floor(centers + 0.5), fallback)
    return centers, present


def part_label_maps(label_crops: jax.Array) -> tuple[jax.Array, ...]:
    """Per-part class maps from crops of the 9-class label map.

    Args:
      label_crops: ``(N, 6, h, w)`` integer 9-class labels cropped with each part's theta.

    Returns:
      six ``(N, h, w)`` int32 maps: 0/1 (background/part) for brows, eyes and nose;
      0..3 (background, upper lip, inner mouth, lower lip) for the mouth.
    """
    if label_crops.ndim != 4 or label_crops.shape[1] != NUM_PARTS:
        raise ValueError(f"label_crops must be (N, 6, h, w), got shape {label_crops.shape}")
    out = []
    for p, classes in enumerate(PART_CLASSES):
        crop = label_crops[:, p].astype(jnp.int32)
        part = jnp.zeros_like(crop)
        for k, c in enumerate(classes, start=1):
            part = jnp.where(crop == c, k, part)
        out.append(part)
    return tuple(out)
