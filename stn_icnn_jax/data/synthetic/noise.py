"""Random draws and noise fields (textures), and a fast Gaussian blur.

Every function that draws takes the numpy ``Generator`` to draw from; the number and
order of its draws are part of the generator's determinism (same seed, same bytes).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def uniform(rng, low, high):
    """One uniform draw in [low, high) as a Python float."""
    return float(rng.uniform(low, high))


def value_noise(rng, height, width, cell):
    """Smooth value noise, roughly N(0, 0.6), float32 (height, width); ``cell`` in pixels."""
    cell = max(float(cell), 1.0)
    grid_h, grid_w = int(height / cell) + 3, int(width / cell) + 3
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    big = cv2.resize(grid, (int(grid_w * cell), int(grid_h * cell)), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(1, big.shape[0] - height)))
    ox = int(rng.integers(0, max(1, big.shape[1] - width)))
    return big[oy : oy + height, ox : ox + width]


def streak_noise(rng, height, width, cell_along, cell_across, angle):
    """Streaky noise (hair strands) along direction ``angle`` (radians, image frame)."""
    side = int(math.ceil(math.hypot(height, width))) + 2
    rows = max(2, int(side / cell_across) + 2)
    cols = max(2, int(side / cell_along) + 2)
    square = cv2.resize(value_noise(rng, rows, cols, 1), (side, side), interpolation=cv2.INTER_LINEAR)
    m = cv2.getRotationMatrix2D((side / 2, side / 2), -math.degrees(angle), 1.0)
    m[0, 2] += width / 2 - side / 2
    m[1, 2] += height / 2 - side / 2
    return cv2.warpAffine(square, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def blur(image, sigma):
    """Gaussian blur; large sigmas are done on a downscaled copy (fast, smooth)."""
    if sigma < 2.5:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = image.shape[:2]
    factor = sigma / 1.5
    small_w, small_h = max(2, int(round(w / factor))), max(2, int(round(h / factor)))
    small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
