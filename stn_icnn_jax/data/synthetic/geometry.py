"""The face frame, its depth, the yaw projection, the similarity to the image, the outline.

Face frame: unit = half width of the face at the cheekbones, origin at the midpoint
between the eyes, x to the image's right, y down. A face point (x, y) has a depth z on a
head ellipsoid (plus bumps the caller adds for nose and lips); yaw rotates that 3-D
point about the vertical axis and projects it orthographically to *view* coordinates;
a similarity transform (scale, in-plane rotation, translation) puts it into the image.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stn_icnn_jax.data.synthetic.shapes import smoothstep

#: face-frame point about which the body (neck base, shoulders) rotates
BODY_PIVOT_Y = 1.6


class FaceGeometry:
    """Projection face frame -> view (after yaw) -> image."""

    def __init__(self, centre_x, centre_y, scale, rotation, yaw, body_rotation):
        self.centre_x, self.centre_y, self.scale = centre_x, centre_y, scale
        self.cos_rot, self.sin_rot = math.cos(rotation), math.sin(rotation)
        self.cos_yaw, self.sin_yaw = math.cos(yaw), math.sin(yaw)
        self.yaw = yaw
        self.cos_body, self.sin_body = math.cos(body_rotation), math.sin(body_rotation)
        # pivot of the body transform: the image point of face point (0, BODY_PIVOT_Y)
        self.body_pivot = self.to_image(np.array([[0.0, BODY_PIVOT_Y]]))[0]
        # head ellipsoid used for depth and shading (view space): centre height, half
        # height, depth
        self.head_centre_y, self.head_half_height, self.head_depth = -0.15, 1.75, 1.0

    def to_image(self, view_points):
        """View coordinates (N, 2) -> image pixels (N, 2) (the similarity transform)."""
        v = np.asarray(view_points, np.float64)
        x = self.centre_x + self.scale * (self.cos_rot * v[:, 0] - self.sin_rot * v[:, 1])
        y = self.centre_y + self.scale * (self.sin_rot * v[:, 0] + self.cos_rot * v[:, 1])
        return np.stack([x, y], 1)

    def depth(self, x, y):
        """Depth of face point(s) (x, y) on the head ellipsoid (0 outside it)."""
        q = 1.0 - x**2 - ((y - self.head_centre_y) / self.head_half_height) ** 2
        return self.head_depth * np.sqrt(np.clip(q, 0.0, 1.0))

    def view(self, points, extra_depth=0.0):
        """Frontal face points (N, 2) (+ extra depth) -> view coordinates (N, 2)."""
        points = np.asarray(points, np.float64)
        x, y = points[:, 0], points[:, 1]
        z = self.depth(x, y) + extra_depth
        return np.stack([x * self.cos_yaw + z * self.sin_yaw, y], 1)

    def project(self, points, extra_depth=0.0):
        """Face points on the head surface (+ extra depth) -> image pixels."""
        return self.to_image(self.view(points, extra_depth))

    def project_at_depth(self, points, depth):
        """Face points at the given depth (not on the head ellipsoid) -> image pixels."""
        points = np.asarray(points, np.float64)
        return self.to_image(np.stack([points[:, 0] * self.cos_yaw + depth * self.sin_yaw, points[:, 1]], 1))

    def project_outline(self, points, depth):
        """Outline points: the near side rotates away, the far side stays the silhouette."""
        points = np.asarray(points, np.float64)
        x = points[:, 0]
        far = x * self.sin_yaw > 0
        turned_x = np.where(far, x, x * self.cos_yaw) + depth * self.sin_yaw
        return self.to_image(np.stack([turned_x, points[:, 1]], 1))

    def project_flat(self, points):
        """No yaw (things centred on the head axis: neck, hair silhouette, hat, occluders)."""
        return self.to_image(np.asarray(points, np.float64))

    def project_body(self, points):
        """Body points (face units): rotate about the body pivot with the body's rotation."""
        points = np.asarray(points, np.float64)
        dx, dy = points[:, 0], points[:, 1] - BODY_PIVOT_Y
        x = self.body_pivot[0] + self.scale * (self.cos_body * dx - self.sin_body * dy)
        y = self.body_pivot[1] + self.scale * (self.sin_body * dx + self.cos_body * dy)
        return np.stack([x, y], 1)

    def view_grid(self, box):
        """View coordinates (X, Y) (float32) of the pixel centres of a box."""
        x0, y0, x1, y1 = box
        px = np.arange(x0, x1, dtype=np.float32) - self.centre_x
        py = np.arange(y0, y1, dtype=np.float32) - self.centre_y
        inv = 1.0 / self.scale
        view_x = (self.cos_rot * px[None, :] + self.sin_rot * py[:, None]) * inv
        view_y = (-self.sin_rot * px[None, :] + self.cos_rot * py[:, None]) * inv
        return view_x.astype(np.float32), view_y.astype(np.float32)

    def direction_to_image(self, view_dx, view_dy):
        """A direction in view space -> image space (unit-less)."""
        return self.cos_rot * view_dx - self.sin_rot * view_dy, self.sin_rot * view_dx + self.cos_rot * view_dy


@dataclasses.dataclass(frozen=True)
class FaceOutline:
    """The face outline (forehead to chin, cheek to cheek) in face units.

    ``width`` scales the half width at the cheekbones, ``chin_y`` is the chin height
    (including the jaw drop of an open mouth), ``jaw_exponent`` how square the jaw is,
    ``taper`` how much the face narrows towards the chin.
    """

    width: float
    chin_y: float
    jaw_exponent: float
    taper: float

    def half_width(self, y):
        """Half width of the face outline at height(s) y (frontal, face units)."""
        y = np.asarray(y, np.float64)
        top, mid, cheek = -1.72, -0.3, 0.2
        w = np.empty_like(y)
        up = y < mid
        t = (y[up] - mid) / (mid - top)
        w[up] = self.width * 0.97 * np.sqrt(np.clip(1 - t**2, 0, 1)) ** 0.9
        middle = (y >= mid) & (y < cheek)
        w[middle] = self.width * (0.97 + 0.03 * smoothstep(mid, cheek, y[middle]))
        low = y >= cheek
        t = np.clip((y[low] - cheek) / (self.chin_y - cheek), 0, 1)
        w[low] = self.width * (1 - self.taper * t) * np.clip(1 - t**self.jaw_exponent, 0, 1) ** 0.55
        return w

    def depth(self, y):
        """Depth of the outline at height(s) y (the jaw recedes towards the chin)."""
        t = np.clip((np.asarray(y) - 0.2) / (self.chin_y - 0.2), 0, 1)
        return 0.12 + 0.7 * t**1.5

    def project(self, geometry, points):
        """Points along the outline's sides (face units) -> image, at the outline's depth."""
        return geometry.project_outline(points, self.depth(points[:, 1]))

    def polygon(self, geometry, n=160):
        """The outline as an image polygon (crown, down the right, chin, up the left)."""
        a = np.linspace(0, np.pi, n // 2)
        y = -1.72 + (self.chin_y + 1.72) * (1 - np.cos(a)) / 2
        w = self.half_width(y)
        right = np.stack([w, y], 1)
        left = np.stack([-w, y], 1)[::-1]
        points = np.concatenate([right, left[1:-1]])
        return self.project(geometry, points)
