"""The face skin and its modelling, the eyebrows and the nose.

(The eyes are in :mod:`.eyes`, the mouth and facial hair in :mod:`.mouth`.)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.channels import LEFT_BROW, NOSE, RIGHT_BROW, SKIN
from stn_icnn_jax.data.synthetic.noise import streak_noise, uniform
from stn_icnn_jax.data.synthetic.scene import LayerResult
from stn_icnn_jax.data.synthetic.shapes import ellipse_points, mirror_x, smoothstep, stroke_polygon
from stn_icnn_jax.data.synthetic.skin import shade_on_face, skin_colour_field


def draw_face_skin(scene, canvas):
    """The face outline filled with lit, textured skin (labels: face skin)."""
    coverage, box = canvas.coverage(scene.outline.polygon(scene.geometry))
    colour = skin_colour_field(scene, box, scene.identity.skin)
    canvas.paint(coverage, box, colour, label=SKIN)


def draw_face_modelling(scene, canvas):
    """Picture-only modelling of the face: sockets, nose sides, cheeks, folds, chin, wrinkles."""
    identity, expression = scene.identity, scene.expression
    nose, mouth = identity.nose, identity.mouth
    for side in (-1, 1):
        _model_one_side(scene, canvas, side)
    # under the nose / philtrum and under the lower lip
    shade_on_face(scene, canvas, ellipse_points(0, nose.base_y + 0.05, 0.14, 0.04), 0.03, factor=0.85)
    below_lip = mouth.y + expression.mouth_gap + mouth.lower_lip_height + 0.06
    shade_on_face(scene, canvas, ellipse_points(0, below_lip, mouth.half_width * 0.55, 0.04), 0.04, factor=0.85)
    # forehead wrinkles for older people
    if identity.age > 0.75:
        for k in range(3):
            y = scene.hair.hairline + 0.3 + k * 0.09
            xs = np.linspace(-0.45, 0.45, 10)
            wrinkle = np.stack([xs, y + 0.03 * np.cos(xs * 3)], 1)
            shade_on_face(scene, canvas, stroke_polygon(wrinkle, 0.006), 0.012, factor=0.88)


def _model_one_side(scene, canvas, side):
    """Eye socket, under-eye, nose side shadow, cheek and nasolabial fold of one side."""
    identity, expression = scene.identity, scene.expression
    eyes, nose, mouth, light = identity.eyes, identity.nose, identity.mouth, identity.light
    light_x = float(light.direction[0])
    # eye sockets (darker towards the nose bridge and under the brow)
    socket = ellipse_points(side * (eyes.x - 0.05), -0.04, eyes.half_width * 1.3, eyes.height * 2.4)
    shade_on_face(scene, canvas, socket, 0.07, factor=0.72 - 0.12 * (1 - light.ambient))
    under_eye = ellipse_points(side * eyes.x, 0.12, eyes.half_width * 0.9, 0.04)
    shade_on_face(scene, canvas, under_eye, 0.04, factor=0.93 - 0.05 * identity.age)
    # nose side shadows, stronger on the side away from the light
    darkness = 0.7 + 0.25 * (1 - light.ambient) - 0.12 * side * light_x * (-1)
    yy = np.linspace(nose.top_y + 0.05, nose.base_y - 0.12, 8)
    xx = side * (nose.bridge_half_width + 0.02 + 0.08 * ((yy - yy[0]) / (yy[-1] - yy[0])) ** 2)
    shade_on_face(scene, canvas, stroke_polygon(np.stack([xx, yy], 1), 0.035), 0.035, factor=darkness, extra_depth=0.05)
    # cheek: blush / cheekbone
    if identity.makeup.worn:
        blush = ellipse_points(side * 0.55, 0.35, 0.2, 0.12)
        shade_on_face(scene, canvas, blush, 0.1, colour=(0.85, 0.4, 0.4), strength=0.18)
    else:
        cheek = ellipse_points(side * 0.5, 0.4, 0.2, 0.13)
        shade_on_face(scene, canvas, cheek, 0.1, colour=identity.skin * np.array([1.05, 0.85, 0.85]), strength=0.12)
    # nasolabial folds
    if identity.age > 0.35 or (expression.mouth_open and expression.mouth_gap < 0.12):
        t = np.linspace(0, 1, 8)
        fx = side * (nose.ala_half_width + 0.04 + (mouth.half_width - nose.ala_half_width + 0.05) * t)
        fy = nose.base_y - 0.08 + (mouth.y - nose.base_y + 0.12) * t**0.8
        fold = stroke_polygon(np.stack([fx, fy], 1), 0.012)
        shade_on_face(scene, canvas, fold, 0.02, factor=0.82, strength=0.6 + 0.4 * identity.age)


def _brow_polygon(scene, side):
    """One eyebrow (face units): a tapering, arched stroke; draws its outer end's height."""
    brows = scene.identity.brows
    u = np.linspace(0, 1, 20)
    x = side * (brows.inner_x + (brows.outer_x - brows.inner_x) * u)
    y_inner = -brows.height + 0.02
    y_outer = -brows.height + 0.0 + uniform(scene.streams.identity, -0.03, 0.04)
    y = y_inner + (y_outer - y_inner) * u - brows.arch * np.sin(np.pi * u**1.45) - 0.03 * u
    half_width = brows.thickness * 0.5 * ((1 - u) + brows.tail * u) * (1 - 0.35 * (u < 0.08) * (1 - u / 0.08))
    half_width = np.maximum(half_width, 0.006)
    return stroke_polygon(np.stack([x, y], 1), half_width)


def draw_brows(scene, canvas):
    """Both eyebrows (labels: left / right eyebrow): hairy strokes in the brow colour.

    Hands on {brow channel: box} of the brows drawn (for the fringe's ``brows_covered``).
    """
    geometry, scale = scene.geometry, scene.scale
    boxes = {}
    for side, label in ((-1, LEFT_BROW), (1, RIGHT_BROW)):
        coverage, box = canvas.coverage(geometry.project(_brow_polygon(scene, side), 0.02), pad=2)
        if coverage is None:
            continue
        height, width = coverage.shape
        angle = math.atan2(geometry.sin_rot, geometry.cos_rot) + side * 0.25
        texture = streak_noise(
            scene.streams.texture, height, width, max(2.0, 0.08 * scale), max(1.0, 0.012 * scale), angle
        )
        rng = scene.streams.identity
        density = uniform(rng, 0.55, 0.9) if not scene.identity.masculine else uniform(rng, 0.7, 0.95)
        soft = cv2.GaussianBlur(coverage, (0, 0), max(0.4, 0.008 * scale))
        opacity = np.clip(soft * density * (0.85 + 0.5 * texture), 0, 1)
        canvas.paint(np.ones_like(coverage), box, scene.hair.brow_colour, alpha=opacity)
        canvas.paint(coverage, box, None, label=label)
        boxes[label] = box
    return LayerResult(handoff=boxes)


def _nose_polygon(nose):
    """The nose (face units) from the bridge to the alae and the base, and the tip bump.

    Returns (polygon, extra depth of each point: it protrudes towards the tip).
    """
    top, base, bridge, ala = nose.top_y, nose.base_y, nose.bridge_half_width, nose.ala_half_width
    ala_y = base - 0.1  # widest (alae)
    ys = np.linspace(top, ala_y, 14)
    w = bridge + (ala - bridge) * smoothstep(top + 0.45 * (ala_y - top), ala_y, ys) ** 1.3
    right = np.stack([w, ys], 1)
    t = np.linspace(0, np.pi / 2, 10)[1:]
    c, s = np.cos(t), np.sin(t)
    arc = np.stack([ala * np.sign(c) * np.abs(c) ** 0.8, ala_y + (base - ala_y) * np.abs(s) ** 0.7], 1)
    half = np.concatenate([right, arc])
    polygon = np.concatenate([half, mirror_x(half)[1:]])
    yy = polygon[:, 1]
    tip = 0.22 * smoothstep(top, ala_y, yy) * (1 - 0.5 * (np.abs(polygon[:, 0]) / ala) ** 2)
    return polygon, tip


def draw_nose(scene, canvas):
    """The nose (labels: nose): shaded ridge and tip, highlights, alar creases, nostrils."""
    geometry, identity = scene.geometry, scene.identity
    nose, light = identity.nose, identity.light
    polygon, tip = _nose_polygon(nose)
    view = geometry.view(polygon, 0.0)
    view[:, 0] += tip * geometry.sin_yaw
    in_image = geometry.to_image(view)
    coverage, box = canvas.coverage(in_image, pad=2)
    if coverage is None:
        return
    canvas.paint(coverage, box, None, label=NOSE)
    base, ala = nose.base_y, nose.ala_half_width
    _shade_nose(scene, canvas, in_image, polygon)
    # tip highlight, bridge highlight
    tip_highlight = ellipse_points(0, base - 0.1, 0.07, 0.06)
    shade_on_face(scene, canvas, tip_highlight, 0.04, colour=(1, 1, 1), strength=0.08 + 0.2 * light.specular,
                  extra_depth=0.2, only_on_face=False)
    bridge = stroke_polygon(np.array([[0, nose.top_y + 0.1], [0, base - 0.18]]), 0.015)
    shade_on_face(scene, canvas, bridge, 0.02, colour=(1, 1, 1), strength=0.06, extra_depth=0.12)
    for side in (-1, 1):
        t = np.linspace(-0.4, 1.4, 12)
        crease = np.stack([side * (ala - 0.07 + 0.06 * np.cos(t)), base - 0.1 - 0.07 * np.sin(t)], 1)
        factor = 0.72 - 0.05 * side * light.direction[0] * -1
        shade_on_face(scene, canvas, stroke_polygon(crease, 0.01), 0.015, factor=factor, extra_depth=0.06)
        nostril = ellipse_points(side * 0.075, base - 0.035, 0.05, 0.022, 24, rotation=side * 0.35)
        shadow, shadow_box = canvas.soft_coverage(geometry.project(nostril, 0.1), 0.008 * scene.scale)
        if shadow is not None:
            canvas.paint(shadow, shadow_box, identity.skin * 0.22, alpha=0.85)


def _nose_normals(scene, view_x, view_y, polygon):
    """Normals (nx, ny) of the nose as a ridge with a ball tip and a downward underside.

    Also returns the view y of the nose's top on its axis.
    """
    geometry, nose = scene.geometry, scene.identity.nose
    top, base, ala = nose.top_y, nose.base_y, nose.ala_half_width
    yc = np.linspace(top - 0.1, base + 0.1, 24)
    tip_depth = 0.22 * smoothstep(top, base - 0.1, yc)
    axis = geometry.view(np.stack([np.zeros_like(yc), yc], 1), tip_depth)
    half = polygon[: len(polygon) // 2]
    width_profile = np.interp(yc, half[:, 1], np.abs(half[:, 0]), left=nose.bridge_half_width, right=ala * 0.5)
    axis_x = np.interp(view_y, axis[:, 1], axis[:, 0])
    half_width = np.interp(view_y, yc, width_profile) * geometry.cos_yaw + 1e-3
    across = (view_x - axis_x) / half_width
    nx = np.clip(across, -1.3, 1.3) * 0.62
    ny = np.full_like(view_x, -0.12)
    tip_y, tip_radius = base - 0.11, ala * 0.55
    bx, by = (view_x - axis_x) / tip_radius, (view_y - tip_y) / (tip_radius * 0.85)
    ball = np.clip(1 - bx * bx - by * by, 0, 1)
    on_ball = smoothstep(0.0, 0.35, ball)
    nx = nx * (1 - on_ball) + bx * 0.75 * on_ball
    ny = ny * (1 - on_ball) + by * 0.75 * on_ball
    underside = smoothstep(base - 0.06, base + 0.0, view_y) * (np.abs(across) < 1.1)
    ny = ny * (1 - underside) + 0.85 * underside
    return nx, ny, axis[0, 1]


def _shade_nose(scene, canvas, in_image, polygon):
    """Shade the picture of the nose (relative to a face-on surface), below its top."""
    light = scene.identity.light
    coverage, box = canvas.coverage(in_image, pad=0.12 * scene.scale)
    if coverage is None:
        return
    view_x, view_y = scene.geometry.view_grid(box)
    nx, ny, top_view_y = _nose_normals(scene, view_x, view_y, polygon)
    direction = light.direction
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0.04, 1))
    lambert = np.clip((nx * direction[0] + ny * direction[1] + nz * direction[2]) * 0.8 + 0.2, 0, 1)
    ambient = light.ambient
    reference = ambient + (1 - ambient) * (direction[2] * 0.8 + 0.2)
    shading = (ambient + (1 - ambient) * lambert) / reference
    mask = cv2.GaussianBlur(coverage, (0, 0), max(0.6, 0.035 * scene.scale))
    mask = np.clip(mask * 1.6, 0, 1) * (view_y > top_view_y + 0.05)
    canvas.shade(box, 1 + (np.clip(shading, 0.35, 1.35) - 1) * mask)
