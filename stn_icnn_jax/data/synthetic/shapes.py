"""Polygon builders (strokes, super-ellipses) and small interpolation helpers.

Pure functions of their arguments: no randomness, no canvas. Polygons are (N, 2)
float64 arrays in whatever frame the caller uses (usually face units).
"""

from __future__ import annotations

import math

import numpy as np


def smoothstep(edge0, edge1, x):
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1`` (edges may be reversed)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def mix(colour1, colour2, t):
    """Linear blend of two colours as float32: ``colour1`` at t=0, ``colour2`` at t=1."""
    return np.asarray(colour1, np.float32) * (1 - t) + np.asarray(colour2, np.float32) * t


def mirror_x(points):
    """The points mirrored about x = 0, in reverse order (the other half of an outline)."""
    return (points * np.array([-1, 1]))[::-1]


def stroke_polygon(points, half_widths):
    """Polygon of a polyline ``points`` (N, 2) with half widths ``half_widths`` (N,)."""
    points = np.asarray(points, np.float64)
    tangent = np.gradient(points, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    half_widths = np.broadcast_to(np.asarray(half_widths, np.float64), (len(points),))[:, None]
    return np.concatenate([points + normal * half_widths, (points - normal * half_widths)[::-1]])


def ellipse_points(cx, cy, rx, ry, n=48, rotation=0.0, power=2.0):
    """``n`` points of a (super-)ellipse: power 2 is an ellipse, larger is boxier."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    if power != 2.0:
        c = np.sign(c) * np.abs(c) ** (2.0 / power)
        s = np.sign(s) * np.abs(s) ** (2.0 / power)
    x, y = rx * c, ry * s
    cos_rot, sin_rot = math.cos(rotation), math.sin(rotation)
    return np.stack([cx + cos_rot * x - sin_rot * y, cy + sin_rot * x + cos_rot * y], 1)
