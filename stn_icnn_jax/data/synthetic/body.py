"""Neck, clothes and ears: skin and cloth around the face, all labelled background."""

from __future__ import annotations

import math

import numpy as np

from stn_icnn_jax.data.synthetic.channels import BACKGROUND
from stn_icnn_jax.data.synthetic.geometry import BODY_PIVOT_Y
from stn_icnn_jax.data.synthetic.noise import uniform, value_noise
from stn_icnn_jax.data.synthetic.raster import crop_to_box
from stn_icnn_jax.data.synthetic.shapes import mirror_x, smoothstep, stroke_polygon
from stn_icnn_jax.data.synthetic.skin import skin_colour_field

CLOTH_COLOURS = ((0.05, 0.05, 0.07), (0.12, 0.14, 0.25), (0.85, 0.85, 0.83), (0.3, 0.3, 0.32))
NECKLINES = ["v", "round", "high", "collar"]
NECKLINE_PROBABILITIES = [0.3, 0.35, 0.15, 0.2]


def draw_neck(scene, canvas):
    """The neck (labels: background): follows the head above the body pivot, then the body.

    Shaded as a cylinder, darker in the shadow of the jaw. Draws from the background stream.
    """
    geometry = scene.geometry
    neck_width = scene.identity.neck_half_width
    ys = np.linspace(0.5, 3.4, 12)
    half_widths = neck_width * (1 + 0.08 * smoothstep(1.6, 2.4, ys) + 0.9 * smoothstep(2.2, 3.4, ys))
    right = np.stack([half_widths, ys], 1)
    points = np.concatenate([right, mirror_x(right)])
    follows_head = (points[:, 1] < BODY_PIVOT_Y)[:, None]
    polygon = np.where(follows_head, geometry.project_flat(points), geometry.project_body(points))
    coverage, box = canvas.coverage(polygon)
    if coverage is None:
        return
    colour = skin_colour_field(scene, box, scene.identity.skin * 0.93, surface="neck")
    _, view_y = geometry.view_grid(box)
    jaw_y = scene.outline.chin_y - 0.25
    strength = uniform(scene.streams.background, 0.25, 0.5)
    shadow = 1 - strength * np.exp(-np.clip(view_y - jaw_y, 0, None) / 0.25) * (view_y > jaw_y - 0.5)
    colour *= shadow[..., None]
    canvas.paint(coverage, box, colour, label=BACKGROUND)


def draw_clothes(scene, canvas):
    """Shoulders and clothes with a v, round, high or collared neckline (labels: background)."""
    rng, geometry = scene.streams.background, scene.geometry
    neck_width = scene.identity.neck_half_width
    shoulder_width = uniform(rng, 2.0, 2.8) + (0.3 if scene.identity.masculine else 0)
    top = 2.15 + uniform(rng, -0.1, 0.2)
    neckline_kind = str(rng.choice(NECKLINES, p=NECKLINE_PROBABILITIES))
    # every entry is drawn (in this order), whichever the neckline
    depth = {"v": uniform(rng, 0.5, 1.2), "round": uniform(rng, 0.2, 0.7), "high": -0.4,
             "collar": uniform(rng, 0.4, 0.9)}[neckline_kind]
    xs = np.linspace(-1, 1, 21)
    if neckline_kind == "v" or neckline_kind == "collar":
        neckline_y = top + depth * (1 - np.abs(xs))
    else:
        neckline_y = top + depth * np.sqrt(np.clip(1 - xs**2, 0, 1))
    neckline = np.stack([xs * neck_width * 1.25, neckline_y], 1)
    sw = shoulder_width
    shoulder = np.array([[neck_width * 1.3, top - 0.05], [sw * 0.6, top + 0.25], [sw * 0.9, top + 0.55],
                         [sw, top + 1.1], [sw * 1.05, 12.0]])
    coverage, box = canvas.coverage(geometry.project_body(np.concatenate([mirror_x(shoulder), neckline, shoulder])))
    if coverage is None:
        return
    canvas.paint(coverage, box, _cloth_colour_field(scene, box, shoulder_width), label=BACKGROUND)
    if neckline_kind == "collar":
        _draw_collar(scene, canvas, top, depth)


def _cloth_colour_field(scene, box, shoulder_width):
    """A plain or striped cloth colour, lighter in the middle and towards the light."""
    rng = scene.streams.background
    colour = np.array(CLOTH_COLOURS[int(rng.integers(4))], np.float32)
    if rng.random() < 0.5:
        colour = rng.uniform(0.05, 0.9, 3).astype(np.float32)
    view_x, view_y = scene.geometry.view_grid(box)
    height, width = view_x.shape
    texture = 1 + value_noise(scene.streams.texture, height, width, max(2.0, 0.3 * scene.scale)) * 0.08
    if rng.random() < 0.25:  # stripes
        texture = texture * (1 - 0.35 * (np.sin(view_y * uniform(rng, 8, 25)) > 0.3))
    light_x = scene.identity.light.direction[0]
    shading = (0.75 + 0.25 * np.clip(1 - (view_x / (shoulder_width * 1.1)) ** 2, 0, 1)
               + 0.1 * light_x * view_x / shoulder_width)
    return colour * (texture * shading)[..., None]


def _draw_collar(scene, canvas, top, depth):
    """Two collar flaps (labels: background), white-ish or coloured."""
    rng, geometry = scene.streams.background, scene.geometry
    neck_width = scene.identity.neck_half_width
    if rng.random() < 0.7:
        colour = np.array((0.92, 0.92, 0.9), np.float32) * uniform(rng, 0.8, 1.05)
    else:
        colour = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    for side in (-1, 1):
        flap = np.array([[0.0, top + depth], [side * neck_width * 1.35, top - 0.15],
                         [side * neck_width * 1.55, top + 0.35], [side * 0.2, top + depth + 0.15]])
        coverage, box = canvas.coverage(geometry.project_body(flap))
        if coverage is not None:
            canvas.paint(coverage, box, colour * uniform(rng, 0.85, 1.0), label=BACKGROUND)


def draw_ears(scene, canvas):
    """The ears (labels: background) with a shadowed concha; the far ear hides at large yaw.

    Draws each visible ear's top and bottom from the identity stream.
    """
    geometry = scene.geometry
    for side in (-1, 1):
        far = side * geometry.sin_yaw > 0.05
        if far and abs(geometry.yaw) > math.radians(12):
            continue
        t = np.linspace(0, 1, 24)
        rng = scene.streams.identity
        y_top, y_bottom = uniform(rng, -0.22, -0.08), uniform(rng, 0.45, 0.62)
        y = y_top + (y_bottom - y_top) * t
        extent = 0.2 * np.sin(np.pi * np.clip(t * 1.05, 0, 1)) ** 0.6 * (1 - 0.35 * t) + 0.02
        base = scene.outline.half_width(y) * 0.96
        outer = np.stack([side * (base + extent), y], 1)
        inner = np.stack([side * (base - 0.12), y], 1)[::-1]
        depth = -0.12 - 0.35 * np.concatenate([extent, np.zeros_like(extent)])
        coverage, box = canvas.coverage(geometry.project_at_depth(np.concatenate([outer, inner]), depth))
        if coverage is None:
            continue
        canvas.paint(coverage, box, skin_colour_field(scene, box, scene.identity.skin * 0.95), label=BACKGROUND)
        concha = np.stack([side * (base + 0.5 * extent), y], 1)[4:-6]
        concha = geometry.project_at_depth(concha, -0.25)
        shadow, shadow_box = canvas.soft_coverage(stroke_polygon(concha, 0.035 * scene.scale), 0.02 * scene.scale)
        if shadow is not None:
            on_ear = crop_to_box(shadow_box, box, coverage)
            canvas.paint(shadow * on_ear, shadow_box, scene.identity.skin * 0.55, alpha=0.6)
