"""The drawing order: an explicit list of layers, painted back to front, then the camera.

Each :class:`Layer` is ``draw(scene, canvas, *handoffs)``: it paints onto the canvas
and returns None or a :class:`~.scene.LayerResult` (facts for ``meta``, and a handoff
for the later layers that list it in ``needs``). Every later, nearer layer removes the
labels of what it covers, so the order is part of the label definition.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator

import numpy as np

from stn_icnn_jax.data.synthetic import accessories, background, body, eyes, face_parts, hair, mouth
from stn_icnn_jax.data.synthetic.camera import develop
from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.raster import Canvas, quantise_labels
from stn_icnn_jax.data.synthetic.scene import Scene, sample_scene


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    draw: Callable
    needs: tuple[str, ...] = ()  # names of earlier layers whose handoff ``draw`` is given


#: back to front; the comment says which labels each layer paints
LAYERS: tuple[Layer, ...] = (
    Layer("background", background.draw_background),  # picture only (labels start as background)
    Layer("back_hair", hair.draw_back_hair),  # hair (hanging styles)
    Layer("neck", body.draw_neck),  # background
    Layer("clothes", body.draw_clothes),  # background
    Layer("ears", body.draw_ears),  # background
    Layer("face_skin", face_parts.draw_face_skin),  # face skin
    Layer("face_modelling", face_parts.draw_face_modelling),  # picture only
    Layer("head_hair", hair.draw_head_hair),  # hair
    Layer("brows", face_parts.draw_brows),  # left / right eyebrow; hands on their boxes
    Layer("eyes", eyes.draw_eyes),  # left / right eye
    Layer("nose", face_parts.draw_nose),  # nose
    Layer("mouth", mouth.draw_mouth),  # upper lip, inner mouth, lower lip
    Layer("facial_hair", mouth.draw_facial_hair),  # picture only (stays face skin)
    Layer("fringe", hair.draw_fringe, needs=("brows",)),  # hair (may hide the brows)
    Layer("glasses", accessories.draw_glasses),  # frames: brows / eyes / nose under them -> face skin
    Layer("hat", accessories.draw_hat),  # background
    Layer("occluder", accessories.draw_occluder),  # background (a hand or a block)
)


def paint_layers(scene: Scene, canvas: Canvas, layers: Iterable[Layer] = LAYERS) -> dict:
    """Paint the layers in order; returns the facts they report (in order)."""
    facts: dict = {}
    handoffs: dict = {}
    for layer in layers:
        result = layer.draw(scene, canvas, *(handoffs[name] for name in layer.needs))
        if result is not None:
            facts.update(result.meta)
            handoffs[layer.name] = result.handoff
    return facts


def landmarks(scene: Scene) -> dict:
    """Image positions of the eye centres, nose tip and mouth centre, and their distance."""
    identity = scene.identity
    points = np.array(
        [[-identity.eyes.x, 0.0], [identity.eyes.x, 0.0], [0.0, identity.nose.base_y - 0.08], [0.0, identity.mouth.y]]
    )
    extra_depth = np.array([-0.04, -0.04, 0.22, 0.05])
    in_image = scene.geometry.project(points, extra_depth)
    meta = {}
    for name, q in zip(("left_eye", "right_eye", "nose_tip", "mouth"), in_image):
        meta[f"{name}_x"] = float(q[0])
        meta[f"{name}_y"] = float(q[1])
    meta["interocular_px"] = float(np.hypot(*(in_image[1] - in_image[0])))
    return meta


def generate_face(seed: int, config: SyntheticFaceConfig = SyntheticFaceConfig()) -> dict:
    """One synthetic face photo with exact soft labels.

    Returns a dict with ``image`` (uint8 H x W x 3, RGB), ``soft_labels`` (uint8
    H x W x 11, Smith order, 0..255 summing to 255 at every pixel; "left" = the image's
    left) and ``meta`` (plain scalars describing what was drawn: pose, sizes, expression
    flags, hair, glasses, hat, occluder and its bbox, landmark positions, camera
    effects). Deterministic in (seed, config).
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    scene = sample_scene(seed, config)
    canvas = Canvas(scene.pose.height, scene.pose.width, config.supersample)
    meta = {"seed": seed, **scene.meta()}
    meta.update(paint_layers(scene, canvas))
    meta.update(landmarks(scene))
    image, camera_meta = develop(scene.streams.camera, config, canvas.picture)
    meta.update(camera_meta)
    return {"image": image, "soft_labels": quantise_labels(canvas.labels), "meta": meta}


def generate_faces(seeds: Iterable[int], config: SyntheticFaceConfig = SyntheticFaceConfig()) -> Iterator[dict]:
    """``generate_face`` for each seed, lazily."""
    for s in seeds:
        yield generate_face(int(s), config)
