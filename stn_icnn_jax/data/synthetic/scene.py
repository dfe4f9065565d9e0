"""Everything drawn once per face before painting: streams, pose, identity, expression, hair.

``sample_scene(seed, config)`` makes the frozen :class:`Scene` that every layer is given.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.geometry import FaceGeometry, FaceOutline
from stn_icnn_jax.data.synthetic.hair_style import HairStyle, sample_hair_style
from stn_icnn_jax.data.synthetic.identity import Identity, sample_identity
from stn_icnn_jax.data.synthetic.noise import uniform


@dataclasses.dataclass(frozen=True, eq=False)
class RandomStreams:
    """Independent random streams (children of ``SeedSequence(seed)``, in this order).

    Each picture component draws from its own stream, so e.g. turning occluders off leaves
    the rest of the face of a seed unchanged. ``texture`` feeds the noise of every layer.
    """

    pose: np.random.Generator
    identity: np.random.Generator
    hair: np.random.Generator
    background: np.random.Generator
    accessories: np.random.Generator
    occluder: np.random.Generator
    camera: np.random.Generator
    expression: np.random.Generator
    texture: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> "RandomStreams":
        children = np.random.SeedSequence(seed).spawn(len(dataclasses.fields(cls)))
        return cls(*[np.random.default_rng(child) for child in children])


@dataclasses.dataclass(frozen=True)
class Pose:
    """Image size and where the face is in it (pixels, radians)."""

    height: int
    width: int
    scale: float  # pixels per face unit
    rotation: float  # in-plane rotation of the head
    yaw: float
    centre_x: float
    centre_y: float
    body_rotation: float  # in-plane rotation of the body (the head tilts on it)

    def geometry(self) -> FaceGeometry:
        return FaceGeometry(self.centre_x, self.centre_y, self.scale, self.rotation, self.yaw, self.body_rotation)

    def meta(self) -> dict:
        return dict(
            height=self.height,
            width=self.width,
            face_center_x=float(self.centre_x),
            face_center_y=float(self.centre_y),
            face_scale=float(self.scale),
            rotation_deg=float(math.degrees(self.rotation)),
            yaw_deg=float(math.degrees(self.yaw)),
        )


def sample_pose(rng, config: SyntheticFaceConfig) -> Pose:
    """Image size (square or portrait/landscape), head size, rotation, yaw and position."""
    low, high = config.min_size, config.max_size
    if rng.random() < config.square_prob:
        height = width = int(rng.integers(low, high + 1))
    else:
        big = int(rng.integers(low, high + 1))
        aspect = math.exp(rng.uniform(0.0, math.log(config.max_aspect)))
        small = int(np.clip(round(big / aspect), low, high))
        height, width = (big, small) if rng.random() < 0.65 else (small, big)
    head = uniform(rng, *config.head_frac) * min(height, width)
    scale = head / 3.25  # crown (-1.7) to chin (~1.5)
    max_rotation = math.radians(config.max_rotation_deg)
    roll = float(np.clip(rng.normal(0, 0.45 * max_rotation), -max_rotation, max_rotation))
    tilt = float(np.clip(rng.normal(0, 0.35 * max_rotation), -max_rotation, max_rotation))
    rotation = float(np.clip(roll + tilt, -max_rotation, max_rotation))
    max_yaw = math.radians(config.max_yaw_deg)
    yaw = float(np.clip(rng.normal(0, 0.5 * max_yaw), -max_yaw, max_yaw))
    shift = config.max_center_shift
    centre_x = width * (0.5 + uniform(rng, -shift, shift))
    centre_y = height * (0.5 + uniform(rng, -shift, shift)) - 0.05 * scale
    body_rotation = rotation - tilt if abs(rotation - tilt) < max_rotation else 0
    return Pose(height, width, scale, rotation, yaw, centre_x, centre_y, body_rotation)


@dataclasses.dataclass(frozen=True)
class Expression:
    mouth_open: bool
    mouth_gap: float  # how far the lips part (0 when closed)
    smile: float
    left_eye_openness: float  # 0 = closed; "left" = the image's left
    right_eye_openness: float

    def meta(self) -> dict:
        return dict(
            mouth_open=self.mouth_open,
            mouth_gap=float(self.mouth_gap),
            left_eye_closed=self.left_eye_openness == 0.0,
            right_eye_closed=self.right_eye_openness == 0.0,
            eyes_closed=self.left_eye_openness == 0.0 and self.right_eye_openness == 0.0,
        )


def sample_expression(rng, config: SyntheticFaceConfig) -> Expression:
    """Mouth open / closed (and how far), smile, eyes open, closed or winking."""
    mouth_open = bool(rng.random() < config.mouth_open_prob)
    gap = 0.0
    if mouth_open:
        gap = uniform(rng, 0.03, 0.1) if rng.random() < 0.6 else uniform(rng, 0.1, 0.28)
    smile = uniform(rng, -0.01, 0.05) + (0.02 if mouth_open and gap < 0.1 else 0)
    left = right = uniform(rng, 0.75, 1.1)
    if rng.random() < config.eyes_closed_prob:
        left = right = 0.0
    elif rng.random() < config.wink_prob:
        if rng.random() < 0.5:
            left = 0.0
        else:
            right = 0.0
    if mouth_open and gap < 0.1:  # a smile narrows the eyes
        left *= 0.85
        right *= 0.85
    return Expression(mouth_open, gap, smile, left, right)


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """What the layers draw: config, random streams, projection, the face and its hair."""

    config: SyntheticFaceConfig
    streams: RandomStreams
    pose: Pose
    geometry: FaceGeometry
    identity: Identity
    expression: Expression
    outline: FaceOutline  # the identity's outline with the jaw dropped by the open mouth
    hair: HairStyle

    @property
    def scale(self) -> float:
        """Pixels per face unit."""
        return self.pose.scale

    def meta(self) -> dict:
        return {**self.pose.meta(), **self.identity.meta(), **self.expression.meta(), **self.hair.meta()}


def sample_scene(seed: int, config: SyntheticFaceConfig) -> Scene:
    streams = RandomStreams.from_seed(seed)
    pose = sample_pose(streams.pose, config)
    identity = sample_identity(streams.identity, config)
    expression = sample_expression(streams.expression, config)
    outline = identity.outline
    outline = dataclasses.replace(outline, chin_y=outline.chin_y + 0.45 * expression.mouth_gap)
    hair = sample_hair_style(streams.hair, config, identity)
    return Scene(config, streams, pose, pose.geometry(), identity, expression, outline, hair)


class LayerResult(NamedTuple):
    """What a layer returns: facts for ``meta`` and what later layers need from it."""

    meta: dict = {}
    handoff: Any = None  # given to the layers that name this one in ``Layer.needs``
