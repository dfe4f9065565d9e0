"""The canvas: the picture and the soft-label stack, drawn on box by box.

Regions are polygons in image pixels, rasterised with ``supersample`` x ``supersample``
supersampling into exact coverage (0..1) inside their bounding box only. A *box* is
``(x0, y0, x1, y1)`` in pixels (x1, y1 exclusive) clipped to the image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.channels import BACKGROUND
from stn_icnn_jax.taxonomy import NUM_SMITH_CLASSES


def box_slices(box):
    """The (rows, columns) slices of a box, for indexing (H, W[, C]) arrays."""
    x0, y0, x1, y1 = box
    return slice(y0, y1), slice(x0, x1)


def crop_to_box(small_box, big_box, coverage_on_big):
    """``coverage_on_big`` (defined on ``big_box``) cropped to ``small_box`` (0 outside)."""
    x0, y0, x1, y1 = small_box
    big_x0, big_y0, big_x1, big_y1 = big_box
    out = np.zeros((y1 - y0, x1 - x0), np.float32)
    ix0, iy0 = max(x0, big_x0), max(y0, big_y0)
    ix1, iy1 = min(x1, big_x1), min(y1, big_y1)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = coverage_on_big[
            iy0 - big_y0 : iy1 - big_y0, ix0 - big_x0 : ix1 - big_x0
        ]
    return out


class Canvas:
    """Picture (H, W, 3 float32, 0..1) and labels (11, H, W float32, a partition of 1).

    ``used_channels`` lists the label channels that hold mass somewhere (in the order they
    were first painted), so painting only touches those.
    """

    def __init__(self, height, width, supersample):
        self.height, self.width, self.supersample = height, width, supersample
        self.picture = np.zeros((height, width, 3), np.float32)
        self.labels = np.zeros((NUM_SMITH_CLASSES, height, width), np.float32)
        self.labels[BACKGROUND] = 1.0
        self.used_channels = [BACKGROUND]

    def bounding_box(self, polygons, pad=1.0):
        """The box around all points of ``polygons`` (+ ``pad`` px), or None if off the image."""
        points = np.concatenate([np.asarray(q).reshape(-1, 2) for q in polygons])
        x0 = max(int(math.floor(points[:, 0].min() - pad)), 0)
        y0 = max(int(math.floor(points[:, 1].min() - pad)), 0)
        x1 = min(int(math.ceil(points[:, 0].max() + pad)) + 1, self.width)
        y1 = min(int(math.ceil(points[:, 1].max() + pad)) + 1, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return (x0, y0, x1, y1)

    def coverage(self, polygons, pad=1.0, box=None):
        """Area coverage (float32 on the box) of the union of polygons (pixels) and the box.

        The box is ``box`` if given, else the polygons' bounding box; (None, None) when
        there is nothing to draw on the image.
        """
        if isinstance(polygons, np.ndarray):
            polygons = [polygons]
        polygons = [p for p in polygons if len(p) >= 3]
        if not polygons:
            return None, None
        if box is None:
            box = self.bounding_box(polygons, pad)
            if box is None:
                return None, None
        x0, y0, x1, y1 = box
        s = self.supersample
        area = (x1 - x0) * (y1 - y0)
        while s > 2 and area * s * s > 1_500_000:
            s -= 1  # very large shapes: coarser (still >= 2x2) supersampling
        mask = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
        offset = np.array([x0, y0], np.float64)
        for p in polygons:
            q = ((np.asarray(p, np.float64) - offset + 0.5) * s - 0.5) * 16.0  # 4 bit subpixels
            q = np.clip(q, -1e6, 1e6)
            cv2.fillPoly(mask, [np.round(q).astype(np.int32)], 255, cv2.LINE_8, 4)
        if s > 1:
            mask = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        return mask.astype(np.float32) * (1.0 / 255.0), box

    def soft_coverage(self, polygons, sigma, pad=None):
        """Blurred coverage of polygons (for shading blobs), box padded by 3 sigma."""
        sigma = max(float(sigma), 0.3)
        pad = 3.0 * sigma + 2 if pad is None else pad
        coverage, box = self.coverage(polygons, pad=pad)
        if coverage is None:
            return None, None
        return cv2.GaussianBlur(coverage, (0, 0), sigma), box

    def paint(self, coverage, box, colour=None, alpha=None, label=None):
        """Blend ``colour`` in with opacity coverage * alpha; paint ``label`` with the coverage.

        The label is painted over the stack (``label = label * (1 - cov) + onehot * cov``),
        so it removes the labels of what it covers. No-op when ``coverage`` is None.
        """
        if coverage is None:
            return
        rows, cols = box_slices(box)
        if colour is not None:
            opacity = coverage if alpha is None else coverage * alpha
            colour = np.asarray(colour, np.float32)
            region = self.picture[rows, cols]
            region += (colour - region) * opacity[..., None]
        if label is not None:
            keep = 1.0 - coverage
            for c in self.used_channels:
                self.labels[c, rows, cols] *= keep
            self.labels[label, rows, cols] += coverage
            self._mark_used(label)

    def move_labels(self, coverage, box, sources, destination):
        """Move the label mass of channels ``sources`` to ``destination`` with weight coverage."""
        if coverage is None:
            return
        rows, cols = box_slices(box)
        for c in sources:
            if c not in self.used_channels:
                continue
            moved = self.labels[c, rows, cols] * coverage
            self.labels[c, rows, cols] -= moved
            self.labels[destination, rows, cols] += moved
        self._mark_used(destination)

    def shade(self, box, factor):
        """Multiply the picture on the box by ``factor`` (scalar, (h, w) or (h, w, 3))."""
        rows, cols = box_slices(box)
        factor = np.asarray(factor, np.float32)
        if factor.ndim == 2:
            factor = factor[..., None]
        self.picture[rows, cols] *= factor

    def _mark_used(self, channel):
        if channel not in self.used_channels:
            self.used_channels.append(channel)


def quantise_labels(labels):
    """(11, H, W) float partition of unity -> (H, W, 11) uint8 summing to exactly 255.

    Each channel is rounded; where the rounded channels do not sum to 255 (only at soft
    borders) the difference goes to the largest channel of that pixel.
    """
    t = labels * np.float32(255.0)
    t += np.float32(0.5)
    np.clip(t, 0, 255, out=t)
    q = t.astype(np.uint8)
    total = q.sum(0, dtype=np.int16)
    iy, ix = np.nonzero(total != 255)
    if iy.size:
        largest = labels[:, iy, ix].argmax(0)
        v = q[largest, iy, ix].astype(np.int16) + (255 - total[iy, ix])
        q[largest, iy, ix] = np.clip(v, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(q.transpose(1, 2, 0))
