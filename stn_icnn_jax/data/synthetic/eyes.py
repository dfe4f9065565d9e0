"""The eyes: open (white, iris, pupil, catch light, lids) or closed (a lash-line sliver).

Labels: left / right eye ("left" = the image's left). Lashes, liner, creases and eye
shadow change only the picture.
"""

from __future__ import annotations

import numpy as np

from stn_icnn_jax.data.synthetic.channels import LEFT_EYE, RIGHT_EYE
from stn_icnn_jax.data.synthetic.noise import uniform
from stn_icnn_jax.data.synthetic.shapes import ellipse_points, smoothstep, stroke_polygon
from stn_icnn_jax.data.synthetic.skin import shade_on_face

LASH_COLOUR = (0.05, 0.04, 0.04)
LINER_COLOUR = (0.04, 0.03, 0.03)
CARUNCLE_COLOUR = (0.75, 0.45, 0.45)


def _eye_curves(eyes, side, openness, n=28):
    """(u in -1..1 inner to outer, x, upper lid y, lower lid y) of one eye, face units."""
    u = np.linspace(-1, 1, n)
    x = side * (eyes.x + u * eyes.half_width)
    tilt = -eyes.tilt * u  # outer corner higher
    upper = -eyes.height * openness * (1 - u**2) ** 0.65 * (1 - 0.22 * u)
    lower = eyes.height * eyes.lower_lid * openness * (1 - u**2) ** 0.85 * (1 + 0.18 * u)
    return u, x, upper + tilt, lower + tilt


def draw_eyes(scene, canvas):
    """Both eyes, left then right; a closed eye is a thin sliver along the lash line."""
    expression = scene.expression
    for side, label, openness in (
        (-1, LEFT_EYE, expression.left_eye_openness),
        (1, RIGHT_EYE, expression.right_eye_openness),
    ):
        if openness == 0.0:
            _draw_closed_eye(scene, canvas, side, label)
        else:
            _draw_open_eye(scene, canvas, side, label, openness)


def _draw_closed_eye(scene, canvas, side, label):
    """Lash-line sliver (labels: the eye), lashes and the lid crease."""
    geometry, eyes = scene.geometry, scene.identity.eyes
    u, x, _, _ = _eye_curves(eyes, side, 0.0)
    y = 0.35 * eyes.height * eyes.lower_lid * (1 - u**2) ** 0.85 - eyes.tilt * u
    thickness = max(0.6 / scene.scale, 0.006)
    sliver = stroke_polygon(np.stack([x, y], 1), thickness * (1 - 0.7 * u**4))
    coverage, box = canvas.coverage(geometry.project(sliver, -0.03), pad=2)
    if coverage is None:
        return
    canvas.paint(coverage, box, None, label=label)
    lashes = stroke_polygon(np.stack([x, y + 0.004], 1), 0.016 * (1 - 0.6 * u**2))
    shadow, shadow_box = canvas.soft_coverage(geometry.project(lashes, -0.03), 0.008 * scene.scale)
    if shadow is not None:
        canvas.paint(shadow, shadow_box, LASH_COLOUR, alpha=0.85)
    crease = stroke_polygon(np.stack([x * 0.98, -0.35 * eyes.height + 0.0 * u - eyes.tilt * u], 1), 0.01)
    shade_on_face(scene, canvas, crease, 0.015, factor=0.85)


def _draw_open_eye(scene, canvas, side, label, openness):
    """The eye white (labels: the eye), then iris, catch light, lids and crease on it."""
    geometry, eyes = scene.geometry, scene.identity.eyes
    u, x, upper, lower = _eye_curves(eyes, side, openness)
    opening = np.concatenate([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1][1:-1]])
    coverage, box = canvas.coverage(geometry.project(opening, -0.04), pad=3)
    if coverage is None:
        return
    view_x, view_y = geometry.view_grid(box)
    centre = geometry.view(np.array([[side * eyes.x, 0.0]]), -0.04)[0]
    half_width = eyes.half_width * (geometry.cos_yaw if side * geometry.sin_yaw <= 0 else geometry.cos_yaw * 0.9)
    along = (view_x - centre[0]) / max(half_width, 1e-3) * side  # -1 inner corner .. 1 outer
    down = (view_y - centre[1]) / (eyes.height * max(openness, 0.2))  # -1 at the upper lid
    canvas.paint(coverage, box, _eye_white(scene, along, down), label=label)
    _paint_iris(scene, canvas, side, box, coverage, down)
    _draw_lids(scene, canvas, side, u, x, upper, lower)


def _eye_white(scene, along, down):
    """The white: darker at the corners and under the upper lid, a pink inner corner."""
    white = np.array([0.88, 0.85, 0.83], np.float32) * (0.6 + 0.4 * scene.identity.light.ambient)
    shading = (1 - 0.35 * np.clip(np.abs(along), 0, 1) ** 3) * (1 - 0.35 * np.exp(-np.clip(down + 1.0, 0, None) * 2.5))
    colour = white[None, None, :] * shading[..., None]
    # pinkish caruncle at the inner corner
    caruncle = np.exp(-(((along + 0.92) / 0.1) ** 2) - (down / 0.5) ** 2)
    return colour * (1 - caruncle[..., None]) + (np.array(CARUNCLE_COLOUR, np.float32) * caruncle[..., None])


def _paint_iris(scene, canvas, side, box, eye_coverage, down):
    """Iris with streaks, dark rim and pupil inside the eye opening, and the catch light."""
    geometry, eyes = scene.geometry, scene.identity.eyes
    radius = eyes.iris_radius
    gaze_x, gaze_y = eyes.gaze
    centre = np.array([[side * eyes.x + gaze_x * eyes.half_width * 0.35, gaze_y * eyes.height - 0.1 * eyes.height]])
    disc = ellipse_points(centre[0, 0], centre[0, 1], radius, radius, 40)
    disc_coverage, _ = canvas.coverage(geometry.project(disc, -0.02), box=box)
    centre_view = geometry.view(centre, -0.02)[0]
    view_x, view_y = geometry.view_grid(box)
    dx, dy = view_x - centre_view[0], view_y - centre_view[1]
    rel_radius = np.sqrt(dx * dx + dy * dy) / radius
    angle = np.arctan2(dy, dx)
    streak = np.sin(angle * 23 + 3 * np.sin(angle * 7)) * 0.08 + np.sin(angle * 41) * 0.05
    rim = np.clip((rel_radius - 0.8) / 0.2, 0, 1)
    iris = eyes.iris_colour[None, None, :] * (1 + streak + 0.25 * (0.6 - rel_radius).clip(0))[..., None]
    iris = iris * (1 - 0.6 * rim)[..., None]
    pupil = smoothstep(0.42, 0.32, rel_radius)
    iris = iris * (1 - pupil[..., None]) + np.float32(0.03) * pupil[..., None]
    # top of the iris in the lid's shadow
    iris *= (1 - 0.4 * np.exp(-np.clip(down + 1.0, 0, None) * 2.0))[..., None]
    canvas.paint(disc_coverage * eye_coverage, box, iris)
    # catch light
    light_x = scene.identity.light.direction[0]
    spot_x, spot_y = centre_view[0] - 0.35 * radius * (0.5 + light_x), centre_view[1] - 0.35 * radius
    spot = np.exp(-(((view_x - spot_x) ** 2 + (view_y - spot_y) ** 2) / (0.18 * radius) ** 2))
    canvas.paint(spot * eye_coverage, box, (1, 1, 1), alpha=0.85)


def _draw_lids(scene, canvas, side, u, x, upper, lower):
    """Lashes / liner on the upper lid, the lower lid margin, the crease, eye shadow."""
    geometry, identity = scene.geometry, scene.identity
    eyes, makeup = identity.eyes, identity.makeup.worn
    liner = 0.016 + (0.012 if makeup else 0.0)
    wing = 0.03 if makeup else 0.0
    upper_margin = np.stack([x, upper - liner * 0.3], 1)
    wing_tip = [[side * (eyes.x + eyes.half_width + wing), upper[-1] - 0.012 - wing * 0.5]]
    upper_margin = np.concatenate([upper_margin, wing_tip])
    half_widths = liner * (0.3 + 0.7 * np.sin(np.pi * np.linspace(0.05, 1, len(upper_margin))) ** 0.5)
    shadow, shadow_box = canvas.soft_coverage(
        geometry.project(stroke_polygon(upper_margin, half_widths), -0.03), 0.004 * scene.scale
    )
    if shadow is not None:
        canvas.paint(shadow, shadow_box, LINER_COLOUR, alpha=0.9)
    lower_margin = np.stack([x, lower + 0.004], 1)
    shadow, shadow_box = canvas.soft_coverage(
        geometry.project(stroke_polygon(lower_margin, 0.006), -0.03), 0.006 * scene.scale
    )
    if shadow is not None:
        canvas.paint(shadow, shadow_box, identity.skin * 0.55, alpha=0.5)
    # eyelid crease and make-up
    crease_height = eyes.height * uniform(scene.streams.identity, 0.45, 0.8)
    crease = np.stack([x * 1.0, upper - crease_height - 0.015 * (1 - u**2)], 1)[3:]
    shade_on_face(scene, canvas, stroke_polygon(crease, 0.008), 0.012, factor=0.8)
    if makeup:
        brow_side = np.stack([x, upper - eyes.height * 1.3 * (1 - u**2) ** 0.5 - 0.02], 1)[::-1]
        lid = np.concatenate([np.stack([x, upper], 1), brow_side])
        shade_on_face(scene, canvas, lid, 0.02, colour=identity.makeup.eye_shadow, strength=0.3)
