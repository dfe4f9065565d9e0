"""The mouth (lips, and an open mouth's cavity, teeth and tongue) and facial hair.

Labels: the lips are painted as lower lip, then the inner-mouth and upper-lip
sub-regions take their share of that label mass. A closed mouth has no inner-mouth
pixels. Facial hair changes only the picture (it stays face skin).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.channels import INNER_MOUTH, LOWER_LIP, NOSE, UPPER_LIP
from stn_icnn_jax.data.synthetic.noise import streak_noise, uniform, value_noise
from stn_icnn_jax.data.synthetic.raster import box_slices
from stn_icnn_jax.data.synthetic.scene import LayerResult
from stn_icnn_jax.data.synthetic.shapes import ellipse_points, mirror_x, smoothstep, stroke_polygon

CAVITY_COLOUR = (0.18, 0.05, 0.06)
TEETH_COLOUR = (0.86, 0.82, 0.72)
TONGUE_COLOUR = (0.7, 0.3, 0.32)
#: the inner-mouth and upper-lip sub-regions reach this far above the lips (they only
#: move lip label mass, so the excess takes nothing)
SUBREGION_REACH = 0.15


class LipCurves(NamedTuple):
    """The lip curves (face units) at x = u * mouth half width, u in -1..1."""

    u: np.ndarray
    x: np.ndarray
    upper_top: np.ndarray
    upper_inner: np.ndarray  # the upper lip's inner edge (= lower_inner when closed)
    lower_inner: np.ndarray
    lower_bottom: np.ndarray


def lip_curves(scene, n=41):
    mouth, expression = scene.identity.mouth, scene.expression
    u = np.linspace(-1, 1, n)
    x = u * mouth.half_width
    line = mouth.y - expression.smile * u**2 + 0.012 * np.exp(-((u / 0.25) ** 2))
    profile = (1 - np.abs(u) ** 2.2) ** 0.6
    peaks = 1 + 0.15 * np.exp(-(((np.abs(u) - 0.24) / 0.12) ** 2)) - mouth.bow * np.exp(-((u / 0.1) ** 2))
    upper_height = mouth.upper_lip_height * profile * peaks
    opening = expression.mouth_gap * (1 - u**2) ** 0.75
    upper_inner = line - 0.3 * opening
    lower_inner = line + 0.7 * opening
    lower_bottom = lower_inner + mouth.lower_lip_height * (1 - u**2) ** 0.6
    return LipCurves(u, x, line - 0.3 * opening - upper_height, upper_inner, lower_inner, lower_bottom)


class _MouthProjection:
    """Projects lip curves (lips bulge by up to 0.05 in the middle) to image and view."""

    def __init__(self, scene, curves):
        self.geometry, self.curves = scene.geometry, curves
        self.bulge = 0.05 * (1 - curves.u**2)

    def image(self, ys):
        return self.geometry.project(np.stack([self.curves.x, ys], 1), self.bulge)

    def view(self, ys):
        return self.geometry.view(np.stack([self.curves.x, ys], 1), self.bulge)

    def region(self, top_ys, bottom_ys):
        """Image polygon between two curves."""
        return np.concatenate([self.image(top_ys), self.image(bottom_ys)[::-1][1:-1]])


def draw_mouth(scene, canvas):
    """Lips (labels: upper / lower lip), an open mouth's inside (inner mouth) or a lip line."""
    curves = lip_curves(scene)
    projection = _MouthProjection(scene, curves)
    coverage, box = canvas.coverage(projection.region(curves.upper_top, curves.lower_bottom), pad=3)
    if coverage is None:
        return
    lip_colour = _paint_lips(scene, canvas, coverage, box)
    if scene.expression.mouth_open:
        inner = projection.region(curves.upper_top - SUBREGION_REACH, curves.lower_inner)
        inner_coverage, _ = canvas.coverage(inner, box=box)
        canvas.move_labels(inner_coverage, box, [LOWER_LIP], INNER_MOUTH)
        _paint_mouth_inside(scene, canvas, projection, box)
    else:
        line = np.stack([curves.x * 0.98, (curves.upper_inner + curves.lower_inner) / 2], 1)
        line = scene.geometry.project(stroke_polygon(line, 0.007 * (1 - 0.5 * curves.u**2)), 0.05)
        shadow, shadow_box = canvas.soft_coverage(line, 0.006 * scene.scale)
        if shadow is not None:
            canvas.paint(shadow, shadow_box, lip_colour * 0.3, alpha=0.8)
    upper = projection.region(curves.upper_top - SUBREGION_REACH, curves.upper_inner)
    upper_coverage, _ = canvas.coverage(upper, box=box)
    canvas.move_labels(upper_coverage, box, [LOWER_LIP, INNER_MOUTH], UPPER_LIP)
    # upper lip darker (faces down)
    canvas.shade(box, 1 - 0.12 * upper_coverage * coverage)


def _paint_lips(scene, canvas, coverage, box):
    """Both lips as lower lip: lower lip lighter (faces up), fine lines, a highlight.

    Returns the lip colour (lipstick or natural).
    """
    geometry, identity, expression = scene.geometry, scene.identity, scene.expression
    mouth, lipstick = identity.mouth, identity.makeup.lipstick
    view_x, view_y = geometry.view_grid(box)
    lip_colour = mouth.lip_colour if lipstick is None else lipstick
    line_y = geometry.view(np.array([[0.0, mouth.y]]), 0.05)[0, 1]
    below = smoothstep(line_y - 0.01, line_y + 0.02, view_y)
    shading = (0.78 + 0.3 * below) * (0.65 + 0.35 * identity.light.ambient + 0.2)
    lines = 1 + 0.05 * np.sin(view_x * 180.0) * (lipstick is None)
    colour = lip_colour[None, None, :] * (shading * lines)[..., None]
    spot_y = mouth.y + expression.mouth_gap * 0.7 + mouth.lower_lip_height * 0.4
    spot = geometry.view(np.array([[0.0, spot_y]]), 0.05)[0]
    spot_dx = (view_x - spot[0]) / (mouth.half_width * 0.35)
    spot_dy = (view_y - spot[1]) / (mouth.lower_lip_height * 0.25)
    highlight = np.exp(-(spot_dx**2) - spot_dy**2)
    colour = colour + (0.12 + 0.25 * (lipstick is not None)) * highlight[..., None]
    soft = cv2.GaussianBlur(coverage, (0, 0), max(0.5, 0.006 * scene.scale))
    canvas.paint(soft, box, colour, alpha=0.93)
    canvas.paint(coverage, box, None, label=LOWER_LIP)
    return lip_colour


def _paint_mouth_inside(scene, canvas, projection, box):
    """Picture of an open mouth: dark cavity, upper teeth, a tongue or lower teeth."""
    geometry, curves = scene.geometry, projection.curves
    mouth, ambient, gap = scene.identity.mouth, scene.identity.light.ambient, scene.expression.mouth_gap
    rng = scene.streams.expression
    view_x, view_y = geometry.view_grid(box)
    opening, _ = canvas.coverage(projection.region(curves.upper_inner, curves.lower_inner), box=box)
    upper_edge, lower_edge = projection.view(curves.upper_inner), projection.view(curves.lower_inner)
    upper_y = np.interp(view_x, upper_edge[:, 0], upper_edge[:, 1])
    lower_y = np.interp(view_x, lower_edge[:, 0], lower_edge[:, 1])
    depth = np.clip((view_y - upper_y) / np.maximum(lower_y - upper_y, 1e-3), 0, 1)
    cavity = np.array(CAVITY_COLOUR, np.float32) * (0.5 + 0.5 * np.abs(depth - 0.5))[..., None]
    canvas.paint(opening, box, cavity)
    tooth_height = min(0.065, gap * uniform(rng, 0.4, 0.8)) * (rng.random() > 0.15)
    teeth_half_width = mouth.half_width * uniform(rng, 0.7, 0.9) * geometry.cos_yaw
    centre_x = geometry.view(np.array([[0.0, mouth.y]]), 0.05)[0, 0]
    across = np.abs(view_x - centre_x) / teeth_half_width
    upper_teeth = (view_y - upper_y < tooth_height * (1 - 0.4 * across**2)) & (across < 1)
    gaps = np.abs(np.sin(np.pi * ((view_x - centre_x) / (0.085 * geometry.cos_yaw) + 0.5)))
    teeth = np.array(TEETH_COLOUR, np.float32) * (0.6 + 0.25 * ambient) * (1 - 0.45 * across.clip(0, 1) ** 2)[..., None]
    near_edge = (view_y - upper_y < tooth_height * 0.6)
    teeth = teeth * (0.75 + 0.25 * np.clip(gaps * 3, 0, 1))[..., None] * (0.85 + 0.15 * near_edge)[..., None]
    canvas.paint(opening * upper_teeth.astype(np.float32), box, teeth)
    if gap > 0.1 and rng.random() < 0.6:
        tongue = (depth > uniform(rng, 0.55, 0.75)) & (across < 0.85)
        canvas.paint(opening * tongue * 0.9, box, np.array(TONGUE_COLOUR, np.float32) * (0.6 + 0.3 * ambient))
    elif gap > 0.05 and rng.random() < 0.5:
        lower_teeth = (lower_y - view_y < tooth_height * 0.6) & (across < 0.8)
        canvas.paint(opening * lower_teeth, box, teeth * 0.9)


FACIAL_HAIR_KINDS = ["stubble", "moustache", "beard", "goatee"]
FACIAL_HAIR_PROBABILITIES = [0.35, 0.15, 0.35, 0.15]


def draw_facial_hair(scene, canvas):
    """Stubble, moustache, beard or goatee on masculine faces (picture only: face skin).

    Draws from the identity stream. Meta ``facial_hair``: the kind or "none".
    """
    rng = scene.streams.identity
    if not scene.identity.masculine or rng.random() >= scene.config.facial_hair_prob:
        return LayerResult({"facial_hair": "none"})
    kind = str(rng.choice(FACIAL_HAIR_KINDS, p=FACIAL_HAIR_PROBABILITIES))
    hair = scene.hair
    colour = hair.colour if hair.colour_name not in ("blonde",) else hair.colour * 0.7
    # every entry is drawn (in this order), whichever the kind
    density = {"stubble": uniform(rng, 0.15, 0.35), "moustache": uniform(rng, 0.7, 0.95),
               "beard": uniform(rng, 0.65, 0.95), "goatee": uniform(rng, 0.7, 0.95)}[kind]
    for polygon in _facial_hair_polygons(scene, kind):
        _paint_facial_hair(scene, canvas, polygon, kind, colour, density)
    return LayerResult({"facial_hair": kind})


def _facial_hair_polygons(scene, kind):
    """Face-unit polygons of the facial hair (draws their extents)."""
    rng, identity = scene.streams.identity, scene.identity
    mouth, nose, chin_y = identity.mouth, identity.nose, scene.outline.chin_y
    polygons = []
    if kind in ("stubble", "beard"):
        y0 = uniform(rng, 0.0, 0.2)
        ys = np.linspace(y0, chin_y, 20)
        w = scene.outline.half_width(ys) * 1.03
        right = np.stack([w, ys], 1)
        under_chin = np.stack([np.linspace(w[-1], -w[-1], 5), np.full(5, chin_y + uniform(rng, 0.02, 0.12))], 1)
        cheek = uniform(rng, 0.4, 0.6)
        # the inner edge: cheek, around the mouth, under the nose
        inner_right = np.array([[identity.outline.width * 0.8, y0 + 0.05], [0.72, cheek],
                                [mouth.half_width + 0.12, mouth.y - 0.15],
                                [nose.ala_half_width * 1.05, nose.base_y + 0.03], [0.0, nose.base_y + 0.05]])
        polygons.append(np.concatenate([right, under_chin, mirror_x(right), mirror_x(inner_right)[1:],
                                        inner_right[::-1][1:-1]]))
    if kind in ("moustache", "goatee"):
        curves = lip_curves(scene)
        mx = np.linspace(-mouth.half_width * 1.05, mouth.half_width * 1.05, 15)
        rel = mx / mouth.half_width
        my = np.interp(mx, curves.x, curves.upper_top) - 0.035 - 0.02 * (1 - rel**2)
        polygons.append(stroke_polygon(np.stack([mx, my], 1), 0.045 * (1 - 0.5 * rel**2)))
    if kind == "goatee":
        polygons.append(ellipse_points(0, chin_y - 0.12, mouth.half_width * 0.6, 0.18))
    return polygons


def _paint_facial_hair(scene, canvas, polygon, kind, colour, density):
    """One facial hair polygon: dotted stubble or strands; the lips and nose stay clear."""
    geometry, scale = scene.geometry, scene.scale
    in_image = geometry.project_outline(polygon, geometry.depth(polygon[:, 0], polygon[:, 1]) * 0.9)
    coverage, box = canvas.coverage(in_image, pad=3)
    if coverage is None:
        return
    height, width = coverage.shape
    soft = cv2.GaussianBlur(coverage, (0, 0), max(0.6, 0.03 * scale))
    # keep the lips clear (labels stay exact: facial hair is face skin)
    lips = np.zeros_like(coverage)
    rows, cols = box_slices(box)
    for channel in (UPPER_LIP, LOWER_LIP, INNER_MOUTH, NOSE):
        if channel in canvas.used_channels:
            lips += canvas.labels[channel, rows, cols]
    rng = scene.streams.texture
    if kind == "stubble":
        texture = np.clip(value_noise(rng, height, width, max(1.0, 0.006 * scale)) * 1.5 + 0.5, 0, 1)
    else:
        angle = math.atan2(geometry.cos_rot, -geometry.sin_rot)  # image direction of the face's "down"
        texture = streak_noise(rng, height, width, max(2.0, 0.06 * scale), max(1.0, 0.01 * scale), angle)
        texture = np.clip(texture * 1.3 + 0.55, 0, 1)
    opacity = np.clip(soft * density * (0.45 + 0.7 * texture), 0, 1) * np.clip(1 - 3 * lips, 0, 1)
    canvas.paint(np.ones_like(coverage), box, colour * (0.6 + 0.6 * texture[..., None]), alpha=opacity)
