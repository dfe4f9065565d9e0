"""Things in front of the face: glasses, a hat, and an occluder (a hand or a block).

Glasses frames on the face become face skin (they hide brows / eyes / nose under them;
the lenses change only the picture). A hat and occluders are background: they remove
the labels of whatever they cover.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.channels import BACKGROUND, LEFT_BROW, LEFT_EYE, NOSE, RIGHT_BROW, RIGHT_EYE, SKIN
from stn_icnn_jax.data.synthetic.noise import uniform, value_noise
from stn_icnn_jax.data.synthetic.raster import box_slices
from stn_icnn_jax.data.synthetic.scene import LayerResult
from stn_icnn_jax.data.synthetic.shapes import ellipse_points, stroke_polygon

FRAME_COLOURS = ((0.05, 0.05, 0.05), (0.35, 0.2, 0.1), (0.7, 0.65, 0.55), (0.55, 0.1, 0.1), (0.2, 0.2, 0.4))
#: depth of the glasses in front of the face: rims, bridge, temples
RIM_DEPTH, BRIDGE_DEPTH, TEMPLE_DEPTH = 0.12, 0.14, 0.1


def draw_glasses(scene, canvas):
    """Glasses (accessories stream): tinted, reflecting lenses and a frame (labels: skin).

    Meta ``glasses``: whether glasses were drawn.
    """
    rng, geometry = scene.streams.accessories, scene.geometry
    if rng.random() >= scene.config.glasses_prob:
        return LayerResult({"glasses": False})
    half_width, half_height = uniform(rng, 0.26, 0.33), uniform(rng, 0.15, 0.23)
    squareness = uniform(rng, 2.2, 6.0)
    thickness = uniform(rng, 0.012, 0.05)
    y = uniform(rng, -0.04, 0.03)
    frame_colour = np.array(FRAME_COLOURS[int(rng.integers(5))], np.float32)
    tint = rng.uniform(0.85, 1.0, 3).astype(np.float32)
    x = scene.identity.eyes.x + uniform(rng, -0.02, 0.03)
    rims, lenses = [], []
    for side in (-1, 1):
        outer = ellipse_points(side * x, y, half_width + thickness, half_height + thickness, 56, power=squareness)
        inner = ellipse_points(side * x, y, half_width, half_height, 56, power=squareness)
        rims.append((geometry.project(outer, RIM_DEPTH), geometry.project(inner, RIM_DEPTH)))
        lenses.append(geometry.project(inner, RIM_DEPTH))
    bridge = np.array([[-x + half_width * 0.9, y - half_height * 0.3], [0, y - half_height * 0.45],
                       [x - half_width * 0.9, y - half_height * 0.3]])
    bars = [geometry.project(stroke_polygon(bridge, thickness * 0.6), BRIDGE_DEPTH)]
    for side in (-1, 1):
        temple = np.array([[side * (x + half_width), y - half_height * 0.4],
                           [side * scene.identity.outline.width * 1.0, y - half_height * 0.3]])
        bars.append(geometry.project_outline(stroke_polygon(temple, thickness * 0.5), TEMPLE_DEPTH))
    box = canvas.bounding_box([p for pair in rims for p in pair] + bars, pad=3)
    if box is None:
        return LayerResult({"glasses": True})
    frame = _frame_coverage(canvas, box, rims, bars)
    view_x, view_y = geometry.view_grid(box)
    reflection = np.clip(np.sin((view_x + view_y * uniform(rng, 0.5, 1.5)) * uniform(rng, 3, 8) + uniform(rng, 0, 6)),
                         0, 1) ** 3 * uniform(rng, 0.05, 0.25)
    rows, cols = box_slices(box)
    for lens in lenses:
        lens_coverage, _ = canvas.coverage(lens, box=box)
        picture = canvas.picture[rows, cols]
        canvas.picture[rows, cols] = picture * (1 - lens_coverage[..., None] * (1 - tint)) + (
            lens_coverage * reflection
        )[..., None] * 0.9
    canvas.paint(frame, box, frame_colour * (0.8 + 0.4 * np.clip(reflection * 4, 0, 1))[..., None])
    # frames on the face read as face skin (they hide the brows / eyes / nose)
    canvas.move_labels(frame, box, [LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, NOSE], SKIN)
    return LayerResult({"glasses": True})


def _frame_coverage(canvas, box, rims, bars):
    """Coverage of the frame on the box: the rims (outer minus inner), bridge, temples."""
    frame = np.zeros((box[3] - box[1], box[2] - box[0]), np.float32)
    for outer, inner in rims:
        outer_coverage, _ = canvas.coverage(outer, box=box)
        inner_coverage, _ = canvas.coverage(inner, box=box)
        frame = np.maximum(frame, outer_coverage * (1 - inner_coverage))
    for bar in bars:
        bar_coverage, _ = canvas.coverage(bar, box=box)
        frame = np.maximum(frame, bar_coverage)
    return frame


def draw_hat(scene, canvas):
    """A hat (accessories stream) over the hair, maybe with a brim (labels: background).

    Meta ``hat``: whether a hat was drawn.
    """
    rng, geometry = scene.streams.accessories, scene.geometry
    if rng.random() >= scene.config.hat_prob:
        return LayerResult({"hat": False})
    low = scene.hair.hairline + uniform(rng, -0.15, 0.25)
    rx = scene.identity.outline.width * 1.08 + scene.hair.volume * 0.5
    a = np.linspace(-np.pi / 2, np.pi / 2, 40)
    crown = np.stack([rx * np.sin(a), low - (low + 1.75 + uniform(rng, 0.1, 0.4)) * np.cos(a) ** 0.8], 1)
    polygons = [geometry.project_flat(np.concatenate([crown, [[rx, low + 0.05], [-rx, low + 0.05]]]))]
    if rng.random() < 0.5:  # brim
        brim = ellipse_points(0, low, rx * uniform(rng, 1.1, 1.6), uniform(rng, 0.08, 0.2))
        polygons.append(geometry.project_flat(brim))
    colour = rng.uniform(0.03, 0.9, 3).astype(np.float32)
    coverage, box = canvas.coverage(polygons, pad=2)
    if coverage is None:
        return LayerResult({"hat": True})
    view_x, _ = geometry.view_grid(box)
    texture = value_noise(scene.streams.texture, *coverage.shape, max(1.0, 0.05 * scene.scale))
    shading = 0.7 + 0.3 * np.clip(1 - (view_x / rx) ** 2, 0, 1) + 0.05 * texture
    canvas.paint(coverage, box, colour * shading[..., None], label=BACKGROUND)
    return LayerResult({"hat": True})


def _occluder_targets(scene):
    """Where on the face an occluder may be aimed (face units)."""
    identity = scene.identity
    eye_x, mouth_y, nose_y = identity.eyes.x, identity.mouth.y, identity.nose.base_y
    return {
        "mouth": (0.0, mouth_y),
        "chin": (0.0, scene.outline.chin_y - 0.2),
        "left_cheek": (-0.6, 0.45),
        "right_cheek": (0.6, 0.45),
        "left_eye": (-eye_x, 0.0),
        "right_eye": (eye_x, 0.0),
        "nose": (0.0, nose_y - 0.1),
        "forehead": (0.0, -0.7),
    }


def _hand_polygons(rng, tx, ty, angle):
    """A hand whose fingers point along ``angle`` with the fingertips near (tx, ty).

    Returns (all polygons: palm, fingers, tips, thumb, forearm; the finger outlines).
    """
    size = uniform(rng, 0.85, 1.15)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    palm_x, palm_y = tx - cos_a * 0.9 * size, ty - sin_a * 0.9 * size

    def place(p):
        p = np.asarray(p)
        return np.stack([palm_x + cos_a * p[:, 0] - sin_a * p[:, 1], palm_y + sin_a * p[:, 0] + cos_a * p[:, 1]], 1)

    polygons = [place(ellipse_points(0, 0, 0.55 * size, 0.5 * size, 40, power=2.6))]
    fingers = []
    curl = uniform(rng, -0.15, 0.15)
    for k, length in enumerate([0.75, 0.85, 0.8, 0.62]):
        offset = (-0.33 + 0.22 * k) * size
        spread = offset * uniform(rng, 1.0, 1.3)
        tip_x, tip_y = (0.3 + length) * size, spread + curl * length
        finger = stroke_polygon(np.array([[0.3 * size, offset], [tip_x, tip_y]]), 0.092 * size)
        tip = ellipse_points(tip_x, tip_y, 0.092 * size, 0.092 * size, 20)
        fingers.append(place(np.concatenate([finger, tip[5:15]])))
        polygons.append(place(finger))
        polygons.append(place(tip))
    thumb = np.array([[0.0, 0.45 * size], [0.35 * size, 0.62 * size], [0.6 * size, 0.6 * size]])
    thumb = stroke_polygon(thumb, 0.11 * size)
    polygons.append(place(thumb))
    forearm = np.array([[-3.5, -0.5 * size], [0, -0.5 * size], [0, 0.5 * size], [-3.5, 0.45 * size]])
    polygons.append(place(forearm))
    fingers.append(place(thumb))
    return polygons, fingers


def _block_polygons(rng, tx, ty, angle):
    """A rounded rectangle, an ellipse or a bar with a knob (e.g. a microphone)."""
    half_width, half_height = uniform(rng, 0.35, 1.0), uniform(rng, 0.25, 0.9)
    shape = str(rng.choice(["rect", "ellipse", "bar"]))
    if shape == "rect":
        return [ellipse_points(tx, ty, half_width, half_height, 64, rotation=angle, power=uniform(rng, 6, 16))]
    if shape == "ellipse":
        return [ellipse_points(tx, ty, half_width, half_height, 64, rotation=angle)]
    d = np.array([math.cos(angle), math.sin(angle)])
    bar = stroke_polygon(np.array([[tx, ty] - d * 3, [tx, ty] + d * 0.2]), uniform(rng, 0.08, 0.25))
    return [bar, ellipse_points(tx + d[0] * 0.2, ty + d[1] * 0.2, 0.22, 0.22, 32)]


def draw_occluder(scene, canvas):
    """A hand or a block (occluder stream) aimed at a face part (labels: background).

    Meta: ``occluder`` (none / hand / block), ``occluder_target`` and its pixel bbox
    ``occluder_x0 .. occluder_y1`` (-1 when none).
    """
    rng, geometry, scale = scene.streams.occluder, scene.geometry, scene.scale
    meta = dict(occluder="none", occluder_target="none", occluder_x0=-1, occluder_y0=-1, occluder_x1=-1, occluder_y1=-1)
    if rng.random() >= scene.config.occluder_prob:
        return LayerResult(meta)
    kind = "hand" if rng.random() < scene.config.hand_fraction else "block"
    targets = _occluder_targets(scene)
    target = str(rng.choice(list(targets)))
    tx, ty = targets[target]
    tx += uniform(rng, -0.15, 0.15)
    ty += uniform(rng, -0.1, 0.1)
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "hand":
        polygons, fingers = _hand_polygons(rng, tx, ty, angle)
        base_colour = scene.identity.skin * uniform(rng, 0.9, 1.05)
    else:
        polygons, fingers = _block_polygons(rng, tx, ty, angle), []
        base_colour = rng.uniform(0.02, 0.95, 3).astype(np.float32)
    # place it in front of the face: shift with yaw like the face surface
    shift = np.array(geometry.direction_to_image(0.9 * geometry.sin_yaw, 0.0)) * scale
    in_image = [geometry.project_flat(p) + shift for p in polygons]
    coverage, box = canvas.coverage(in_image, pad=2)
    if coverage is None or coverage.max() <= 0:
        return LayerResult(meta)
    # drop shadow
    shadow, shadow_box = canvas.soft_coverage([p + np.array([0.04, 0.06]) * scale for p in in_image], 0.06 * scale)
    if shadow is not None:
        canvas.shade(shadow_box, 1 - 0.35 * shadow)
    if kind == "hand":
        colour = _hand_colour(scene, canvas, coverage, box, [f + shift for f in fingers], base_colour)
    else:
        colour = _block_colour(scene, coverage, box, base_colour)
    canvas.paint(coverage, box, colour, label=BACKGROUND)
    ys, xs = np.nonzero(coverage > 0.01)
    meta.update(occluder=kind, occluder_target=target,
                occluder_x0=int(box[0] + xs.min()), occluder_y0=int(box[1] + ys.min()),
                occluder_x1=int(box[0] + xs.max() + 1), occluder_y1=int(box[1] + ys.max() + 1))
    return LayerResult(meta)


def _hand_colour(scene, canvas, coverage, box, fingers, base_colour):
    """Skin darker towards the hand's edges; each finger a rounded cylinder."""
    scale = scene.scale
    edge = cv2.GaussianBlur(coverage, (0, 0), max(0.8, 0.05 * scale))
    shading = 0.55 + 0.45 * edge
    sigma = max(0.7, 0.03 * scale)
    for finger in fingers:
        finger_coverage, _ = canvas.coverage([finger], box=box)
        inner = cv2.GaussianBlur(finger_coverage, (0, 0), sigma)
        shading = shading * (1 - 0.45 * finger_coverage * np.clip(1 - 1.6 * inner, 0, 1))
    colour = base_colour * shading[..., None] * (0.6 + 0.4 * scene.identity.light.ambient + 0.15)
    height, width = coverage.shape
    pores = value_noise(scene.streams.texture, height, width, max(1.0, 0.006 * scale))
    return colour * (1 + 0.012 * pores)[..., None]


def _block_colour(scene, coverage, box, base_colour):
    """A textured colour with a gradient towards the light."""
    view_x, view_y = scene.geometry.view_grid(box)
    height, width = coverage.shape
    texture = 1 + 0.12 * value_noise(scene.streams.texture, height, width, max(2.0, 0.15 * scene.scale))
    direction = scene.identity.light.direction
    gradient = 0.8 + 0.25 * np.clip(view_x * direction[0] + view_y * direction[1], -1, 1)
    return base_colour * (texture * gradient)[..., None]
