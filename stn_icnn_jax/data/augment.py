"""The paper's data augmentation (section 2.5.1), deterministic given a seed.

Four random operations: (a) rotation, (b) shift, (c) scale, (d) Gaussian noise on the
image only. Each training image is augmented into ``copies`` (5) images; under the
paper's scheme copy ``i`` applies ``i`` of the 4 operations, chosen at random (copy 0 is
the original). The authors' scheme (docs/authors-code.md §3.5) groups and ranges them differently;
``AugmentConfig.scheme`` switches between the two.

Image and soft labels go through the same affine warp: the image bilinear (or nearest,
as the authors' torchvision defaults), the soft label maps bilinear, after which the
background channel is recomputed as 255 minus the others, so labels stay a partition.

Optionally (``AugmentConfig.photometric``, off by default: not the paper's), every copy's
image then goes through the photometric operations of :mod:`stn_icnn_jax.data.photometric`
(colour, gamma, blur, JPEG); the labels never do.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import cv2
import numpy as np

from stn_icnn_jax.data import photometric as photometric_lib

OPS = ("rotate", "shift", "scale", "noise")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the four operations.

    Attributes:
      scheme: ``"paper"`` (copy i applies i random ops of 4) or ``"authors"`` (the
        reference code's groups, docs/authors-code.md §3.5).
      copies: augmented copies per image (5 in both).
      max_rotation_deg: (a) angle uniform in +-this.
      max_shift: (b) shift uniform in +-this fraction of width / height.
      scale_range: (c) zoom factor uniform in this range, about the image centre.
      noise_std: (d) std of the Gaussian noise on the [0, 1] image.
      noise_on_nonzero_only: add noise only where the image is not black (the
        authors', which keeps padding black).
      image_interpolation: ``"bilinear"`` or ``"nearest"`` for the image warp.
      photometric: colour / gamma / blur / JPEG operations applied to every copy's image
        (copy 0 included) after the scheme's operations, or None (the paper: none).
    """

    scheme: Literal["paper", "authors"] = "paper"
    copies: int = 5
    max_rotation_deg: float = 15.0
    max_shift: float = 0.2
    scale_range: tuple[float, float] = (0.2, 1.2)
    noise_std: float = 0.1
    noise_on_nonzero_only: bool = False
    image_interpolation: Literal["bilinear", "nearest"] = "bilinear"
    photometric: photometric_lib.PhotometricConfig | None = None

    @classmethod
    def authors(cls) -> "AugmentConfig":
        """The reference code's Stage1Augmentation settings (docs/authors-code.md §3.5)."""
        return cls(
            scheme="authors",
            max_shift=0.1,
            scale_range=(0.9, 1.2),
            noise_on_nonzero_only=True,
            image_interpolation="nearest",
        )


def affine_matrix(
    size: tuple[int, int], angle_deg: float = 0.0, shift: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
) -> np.ndarray:
    """2x3 forward map (input pixel -> output pixel) for cv2.warpAffine.

    Rotation by ``angle_deg`` (counter-clockwise in the image) and zoom by ``scale``
    about the image centre, then a shift of ``shift = (dy, dx)`` pixels.
    """
    h, w = size
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, scale)
    matrix[0, 2] += shift[1]
    matrix[1, 2] += shift[0]
    return matrix


def _choose_ops(copy_index: int, config: AugmentConfig, rng: np.random.Generator) -> list[dict]:
    """The list of operation steps (applied in order) for one copy."""

    def rotate():
        return {"angle": rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)}

    def shift(limit=config.max_shift):
        return {"shift": tuple(rng.uniform(-limit, limit, size=2))}

    def scale(lo_hi=config.scale_range):
        return {"scale": rng.uniform(*lo_hi)}

    if config.scheme == "paper":
        if not 0 <= copy_index < config.copies:
            raise ValueError(f"copy_index {copy_index} outside [0, {config.copies})")
        count = min(copy_index, len(OPS))
        chosen = sorted(rng.choice(len(OPS), size=count, replace=False))
        steps = []
        geometric = {}
        for k in chosen:
            geometric |= {"rotate": rotate, "shift": shift, "scale": scale}.get(
                OPS[k], lambda: {}
            )()
        if geometric:
            steps.append(geometric)
        if "noise" in [OPS[k] for k in chosen]:
            steps.append({"noise": True})
        return steps
    if config.scheme != "authors":
        raise ValueError(f"unknown augmentation scheme {config.scheme!r}; use 'paper' or 'authors'")
    rst = lambda: rotate() | shift() | scale()  # noqa: E731
    if copy_index == 0:
        return []
    if copy_index == 1:
        return [[{"noise": True}], [rst()], [{"noise": True}, rst()]][rng.integers(3)]
    if copy_index == 2:
        return [[rotate()], [scale((0.8, 1.5))], [shift(0.3)]][rng.integers(3)]
    if copy_index == 3:
        return [[rotate() | shift()], [rotate() | scale()], [scale() | shift()]][rng.integers(3)]
    if copy_index == 4:
        return [rst()]
    raise ValueError(f"copy_index {copy_index} outside [0, 5) for the authors' scheme")


def augment(
    image: np.ndarray, soft_labels: np.ndarray, copy_index: int, config: AugmentConfig,
    seed: int | np.random.SeedSequence,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented copy of an image and its soft labels.

    Args:
      image: ``(H, W, 3)`` uint8 RGB.
      soft_labels: ``(H, W, K)`` uint8 soft maps (0..255), channel 0 background.
      copy_index: which of the ``config.copies`` copies (0 = original under both schemes,
        before any photometric operations).
      config: ranges and scheme.
      seed: makes the result deterministic. One generator, ``default_rng(seed)``, draws
        the scheme's operations and then, with ``config.photometric``, the photometric
        ones: those come after every draw of the scheme, so the warp and the noise (and
        so the labels) are the same with and without them.

    Returns:
      ``(image (H, W, 3) uint8, soft_labels (H, W, K) uint8)`` of the same size.
    """
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if soft_labels.shape[:2] != image.shape[:2] or soft_labels.dtype != np.uint8:
        raise ValueError(
            f"soft_labels must be (H, W, K) uint8 matching the image {image.shape[:2]}, "
            f"got {soft_labels.shape} {soft_labels.dtype}"
        )
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out_image = image.astype(np.float32)
    out_labels = soft_labels.astype(np.float32)
    interp = cv2.INTER_LINEAR if config.image_interpolation == "bilinear" else cv2.INTER_NEAREST
    for step in _choose_ops(copy_index, config, rng):
        if step.get("noise"):
            noise = rng.normal(0.0, config.noise_std * 255.0, size=out_image.shape)
            if config.noise_on_nonzero_only:
                noise *= out_image.any(axis=-1, keepdims=True)
            out_image = np.clip(out_image + noise, 0.0, 255.0)
            continue
        dy, dx = step.get("shift", (0.0, 0.0))
        matrix = affine_matrix(
            (h, w), step.get("angle", 0.0), (dy * h, dx * w), step.get("scale", 1.0)
        )
        out_image = cv2.warpAffine(out_image, matrix, (w, h), flags=interp, borderValue=0)
        foreground = cv2.warpAffine(
            np.ascontiguousarray(out_labels[..., 1:]), matrix, (w, h),
            flags=cv2.INTER_LINEAR, borderValue=0,
        ).reshape(h, w, -1)
        background = np.clip(255.0 - foreground.sum(-1, keepdims=True), 0.0, 255.0)
        out_labels = np.concatenate([background, foreground], axis=-1)
    if config.photometric is not None:
        out_image = photometric_lib.apply(out_image, config.photometric, rng)
    return (
        np.clip(np.rint(out_image), 0, 255).astype(np.uint8),
        np.clip(np.rint(out_labels), 0, 255).astype(np.uint8),
    )


def applied_ops(copy_index: int, config: AugmentConfig, seed) -> list[str]:
    """Names of the operations copy ``copy_index`` applies (for tests and logs)."""
    steps = _choose_ops(copy_index, config, np.random.default_rng(seed))
    names = []
    for step in steps:
        names += [n for n, key in (("rotate", "angle"), ("shift", "shift"), ("scale", "scale"),
                                   ("noise", "noise")) if key in step]
    return names
