"""Head hair: the part behind the head, the hair around the face, and a fringe.

All of it is labelled hair; it is painted over what is under it (the fringe over the
forehead and perhaps the brows).
"""

from __future__ import annotations

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.channels import HAIR
from stn_icnn_jax.data.synthetic.hair_style import HANGING_STYLES
from stn_icnn_jax.data.synthetic.noise import uniform, value_noise
from stn_icnn_jax.data.synthetic.raster import box_slices
from stn_icnn_jax.data.synthetic.scene import LayerResult
from stn_icnn_jax.data.synthetic.shapes import ellipse_points, mirror_x, mix, smoothstep

#: the depth at which the hair silhouette is projected (like the face outline)
SILHOUETTE_DEPTH = 0.12


def _strand_pattern(scene, height, width, dx, dy, curly):
    """Brightness pattern (about -1..1): curls, or strands radiating from the crown."""
    rng, scale = scene.streams.texture, scene.scale
    if curly:
        # contour bands of smooth noise look like curls / coils
        bands = value_noise(rng, height, width, max(2.0, 0.07 * scale))
        return np.sin(bands * 7.0) * 0.45 + 0.45 * value_noise(rng, height, width, max(1.0, 0.02 * scale))
    angle = np.arctan2(dx, dy + 1e-3)  # 0 = straight down
    n_strands = int(2 * np.pi * scale * 1.1 / 2.2) + 8
    table = rng.standard_normal(n_strands + 1).astype(np.float32)
    table = np.convolve(table, np.ones(2, np.float32) / 2, mode="same")
    table[-1] = table[0]
    wobble = value_noise(rng, height, width, max(2.0, 0.3 * scale)) * 0.04
    u = ((angle + wobble) / (2 * np.pi) + 0.5) * n_strands
    u = np.mod(u, n_strands)
    i0 = u.astype(np.int32)
    f = u - i0
    t = table[i0] * (1 - f) + table[i0 + 1] * f
    return 0.8 * t + 0.4 * value_noise(rng, height, width, max(1.5, 0.12 * scale))


def hair_colour_field(scene, box, base, crown=(0.0, -2.3), curly=False, amount=1.0):
    """Hair colour (h, w, 3) on the box: strands from the ``crown``, clumps and sheen."""
    view_x, view_y = scene.geometry.view_grid(box)
    dx, dy = view_x - crown[0], view_y - crown[1]
    radius = np.sqrt(dx * dx + dy * dy)
    t = _strand_pattern(scene, *view_x.shape, dx, dy, curly)
    rng = scene.streams.texture
    light = scene.identity.light
    direction = light.direction
    # sheen: a soft band at ~0.75 of the head radius, stronger towards the light
    band = np.exp(-(((radius - uniform(rng, 1.2, 1.6)) / 0.2) ** 2))
    lit = 0.6 + 0.4 * np.clip((dx * direction[0] + dy * direction[1]) / (radius + 0.3), -1, 1)
    luminance = 1 + 0.3 * amount * t
    towards_light = np.clip((dx * direction[0] + dy * direction[1]) / (radius + 0.5), -1, 1)
    shading = np.clip(0.7 + 0.3 * light.ambient + 0.25 * towards_light, 0.35, 1.1)
    colour = base[None, None, :] * (luminance * shading)[..., None]
    highlight = mix(base, (1.0, 0.97, 0.92), 0.45) * uniform(rng, 0.25, 0.45)
    return colour + highlight[None, None, :] * (band * lit * np.clip(0.8 + 0.6 * t, 0, 2))[..., None]


def silhouette_in_image(scene):
    """The hair silhouette in the image (projected like the face outline)."""
    return scene.geometry.project_outline(scene.hair.silhouette, SILHOUETTE_DEPTH)


def _face_window(scene):
    """The part of the head the hair leaves free (forehead, face), face units.

    Returns (left side, hairline, right side): the hairline is rounded, dips at the
    temples and may recede; hanging hair may come over the cheeks.
    """
    hair, width = scene.hair, scene.identity.outline.width
    xs = np.linspace(-0.92, 0.92, 40) * width
    rel = np.abs(xs) / width
    temples = 0.42 * smoothstep(0.5, 1.0, rel) ** 1.5
    y = hair.hairline + 0.1 * rel**2 + temples + hair.recede * np.exp(-(((rel - 0.5) / 0.16) ** 2))
    hairline = np.stack([xs, y], 1)
    if hair.style in HANGING_STYLES:
        yy = np.linspace(y[-1] + 0.05, 6.0, 24)
        side = scene.outline.half_width(np.minimum(yy, scene.outline.chin_y - 0.3)) * 0.97 - hair.cheek_cover
        side = np.maximum(side, scene.identity.neck_half_width + 0.02)
        right = np.stack([side, yy], 1)
        return mirror_x(right), hairline, right
    side_y = -0.15
    right = np.array([[width * 0.92, side_y], [width * 3, side_y], [width * 3, 8.0]])
    return mirror_x(right), hairline, right


def draw_back_hair(scene, canvas):
    """Hanging hair behind the head and shoulders (labels: hair)."""
    if scene.hair.style not in HANGING_STYLES:
        return
    coverage, box = canvas.coverage(silhouette_in_image(scene))
    if coverage is None:
        return
    canvas.paint(coverage, box, hair_colour_field(scene, box, scene.hair.colour * 0.7), label=HAIR)


def draw_head_hair(scene, canvas):
    """The hair around the face: the silhouette minus the face window (labels: hair).

    A buzz cut is dotted stubble the skin shows through; an updo gets a bun on top.
    """
    geometry, hair = scene.geometry, scene.hair
    left, hairline, right = _face_window(scene)
    # the hairline lies on the face surface (follows the yaw like the features), the
    # window's sides follow the outline
    sides = [scene.outline.project(geometry, q) for q in (left, right)]
    window = np.concatenate([sides[0], geometry.project(hairline, 0.02), sides[1]])
    silhouette, box = canvas.coverage(silhouette_in_image(scene))
    if silhouette is None:
        return
    window_coverage, _ = canvas.coverage(window, box=box)
    coverage = silhouette * (1 - window_coverage)
    if hair.style == "buzz":
        _paint_buzz_cut(scene, canvas, coverage, box)
        return
    colour = hair_colour_field(scene, box, hair.colour, curly=hair.style == "curly")
    canvas.paint(coverage, box, colour, label=HAIR)
    if hair.style == "updo":
        rng = scene.streams.hair
        bun_x = uniform(rng, -0.3, 0.3)
        bun = ellipse_points(bun_x, -1.75 - hair.volume, uniform(rng, 0.3, 0.45), uniform(rng, 0.22, 0.32))
        bun_coverage, bun_box = canvas.coverage(geometry.project_flat(bun))
        if bun_coverage is not None:
            colour = hair_colour_field(scene, bun_box, hair.colour * 0.9)
            canvas.paint(bun_coverage, bun_box, colour, label=HAIR)


def _paint_buzz_cut(scene, canvas, coverage, box):
    """Close-cropped: dark dotted stubble over the scalp, skin shows through."""
    colour = hair_colour_field(scene, box, scene.hair.colour * 0.8, curly=True, amount=1.5)
    height, width = coverage.shape
    dots = np.clip(value_noise(scene.streams.texture, height, width, max(1.0, 0.008 * scene.scale)) + 0.6, 0.2, 1)
    canvas.paint(coverage, box, colour, alpha=uniform(scene.streams.hair, 0.7, 0.9) * dots)
    canvas.paint(coverage, box, None, label=HAIR)


def _fringe_polygon(scene):
    """The fringe (face units): from the crown down to a (jagged, sloped) lower edge."""
    hair, width = scene.hair, scene.identity.outline.width
    xs = np.linspace(-width * 1.05, width * 1.05, 48)
    lower_edge = hair.fringe_y + hair.fringe_slope * xs + 0.05 * (np.abs(xs) / width) ** 2
    if hair.fringe_jag > 0:
        jag = np.abs(np.sin(xs * uniform(scene.streams.hair, 10, 25))) * hair.fringe_jag
        lower_edge = lower_edge + jag
    # the fringe hangs from the crown to the lower edge, within the skull
    top = np.stack([xs[::-1], np.full(48, -1.6)], 1)
    points = np.concatenate([np.stack([xs, lower_edge], 1), top])
    # clip to the outer hair width
    points[:, 0] = np.clip(points[:, 0], -width * 1.0, width * 1.0)
    return points


def _brow_mass(canvas, brow_boxes):
    """Label mass of each drawn brow on its box."""
    return {label: float(canvas.labels[label][box_slices(box)].sum()) for label, box in brow_boxes.items()}


def draw_fringe(scene, canvas, brow_boxes):
    """Hair over the forehead (labels: hair, may hide the brows).

    ``brow_boxes`` (from the brows layer): {brow channel: box}. Meta ``brows_covered``:
    a brow lost over 10 % of its label mass.
    """
    if not scene.hair.fringe:
        return LayerResult({"brows_covered": False})
    geometry, hair = scene.geometry, scene.hair
    fringe = geometry.project(_fringe_polygon(scene), 0.05)
    coverage, box = canvas.coverage(fringe, pad=2)
    if coverage is None:
        return None
    inside_silhouette, _ = canvas.coverage(silhouette_in_image(scene), box=box)
    coverage = coverage * inside_silhouette
    before = _brow_mass(canvas, brow_boxes)
    colour = hair_colour_field(scene, box, hair.colour, crown=(hair.parting * 0.5, -2.0), curly=hair.style == "curly")
    # fringe shadow on the forehead below
    shadow, shadow_box = canvas.soft_coverage(fringe + np.array([0, 0.03 * scene.scale]), 0.03 * scene.scale)
    if shadow is not None:
        canvas.shade(shadow_box, 1 - 0.35 * shadow)
    canvas.paint(cv2.GaussianBlur(coverage, (0, 0), max(0.4, 0.004 * scene.scale)), box, colour)
    canvas.paint(coverage, box, None, label=HAIR)
    after = _brow_mass(canvas, brow_boxes)
    covered = any(before[label] > 0 and after[label] < 0.9 * before[label] for label in before)
    return LayerResult({"brows_covered": covered})


