"""Who the face is: proportions, colours, make-up and the light, drawn once per face.

All draws come from the identity stream, in a fixed order (``sample_identity``). A few
later identity draws happen while drawing (ear height, brow ends and density, eyelid
crease, facial hair); those are made by the layers, in the drawing order.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.geometry import FaceOutline
from stn_icnn_jax.data.synthetic.noise import uniform
from stn_icnn_jax.data.synthetic.palette import IRIS_COLOURS, IRIS_PROBABILITIES, sample_skin_colour
from stn_icnn_jax.data.synthetic.shapes import mix

LIPSTICKS = ((0.62, 0.06, 0.10), (0.75, 0.28, 0.35), (0.45, 0.12, 0.20), (0.70, 0.38, 0.36))
EYE_SHADOWS = ((0.35, 0.25, 0.3), (0.3, 0.22, 0.18), (0.25, 0.3, 0.45), (0.45, 0.3, 0.25))


@dataclasses.dataclass(frozen=True, eq=False)
class Eyes:
    """Both eyes (mirror images), face units: centre at (+-x, 0)."""

    x: float  # distance of each eye centre from the face's midline
    half_width: float
    height: float  # upper lid height above the centre line (open eye)
    lower_lid: float  # lower lid depth as a fraction of ``height``
    tilt: float  # outer corner higher by this much
    iris_radius: float
    iris_colour: np.ndarray
    gaze: tuple[float, float]  # iris offset, in eye half widths / heights


@dataclasses.dataclass(frozen=True, eq=False)
class Brows:
    """Both eyebrows, face units."""

    height: float  # how far above the eye line
    thickness: float
    tail: float  # thickness at the outer end relative to the inner end
    arch: float
    inner_x: float
    outer_x: float


@dataclasses.dataclass(frozen=True, eq=False)
class Nose:
    top_y: float
    base_y: float
    bridge_half_width: float
    ala_half_width: float  # the widest point (nostril wings)


@dataclasses.dataclass(frozen=True, eq=False)
class Mouth:
    y: float  # the lip line
    half_width: float
    upper_lip_height: float
    lower_lip_height: float
    bow: float  # depth of the Cupid's bow
    lip_colour: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Makeup:
    worn: bool
    lipstick: np.ndarray | None  # None: natural lips
    eye_shadow: np.ndarray  # drawn for every face; used only with make-up


@dataclasses.dataclass(frozen=True, eq=False)
class Lighting:
    """A directional light (view space, z towards the camera) plus ambient light."""

    direction: np.ndarray  # float32 unit vector
    ambient: float
    specular: float


@dataclasses.dataclass(frozen=True, eq=False)
class Identity:
    masculine: bool
    skin: np.ndarray  # float32 RGB
    skin_tone: float  # 0 light .. 1 dark
    age: float  # 0 young .. 1 old
    outline: FaceOutline  # before the jaw drop of an open mouth
    eyes: Eyes
    brows: Brows
    nose: Nose
    mouth: Mouth
    makeup: Makeup
    light: Lighting
    neck_half_width: float

    def meta(self) -> dict:
        return dict(skin_tone=float(self.skin_tone), masculine=self.masculine, age=float(self.age))


def sample_identity(rng, config: SyntheticFaceConfig) -> Identity:
    """Draw one identity (the draws of each part in turn, in this order)."""
    masculine = bool(rng.random() < 0.5)
    skin, tone = sample_skin_colour(rng)
    age = uniform(rng, 0, 1)
    outline = _sample_outline(rng, masculine)
    eyes = _sample_eyes(rng, masculine)
    brows = _sample_brows(rng, masculine, eyes)
    nose = _sample_nose(rng, masculine)
    mouth = _sample_mouth(rng, masculine, nose, skin)
    makeup = _sample_makeup(rng, masculine, config)
    light = _sample_light(rng)
    neck_half_width = uniform(rng, 0.62, 0.74) + (0.16 if masculine else 0)
    return Identity(masculine, skin, tone, age, outline, eyes, brows, nose, mouth, makeup, light, neck_half_width)


def _sample_outline(rng, masculine):
    width = uniform(rng, 0.94, 1.04)
    chin_y = uniform(rng, 1.36, 1.58) + (0.04 if masculine else 0)
    jaw_exponent = uniform(rng, 2.2, 3.6) if masculine else uniform(rng, 1.8, 2.8)
    taper = uniform(rng, 0.06, 0.22)
    return FaceOutline(width, chin_y, jaw_exponent, taper)


def _sample_eyes(rng, masculine):
    x = uniform(rng, 0.40, 0.47)
    half_width = uniform(rng, 0.185, 0.225)
    height = uniform(rng, 0.068, 0.095) * (0.93 if masculine else 1.0)
    lower_lid = uniform(rng, 0.55, 0.8)
    tilt = uniform(rng, -0.01, 0.035)
    iris_radius = uniform(rng, 0.074, 0.088)
    iris_colour = IRIS_COLOURS[rng.choice(len(IRIS_COLOURS), p=IRIS_PROBABILITIES)] * uniform(rng, 0.85, 1.15)
    gaze = (uniform(rng, -0.35, 0.35), uniform(rng, -0.15, 0.1))
    return Eyes(x, half_width, height, lower_lid, tilt, iris_radius, iris_colour, gaze)


def _sample_brows(rng, masculine, eyes):
    height = uniform(rng, 0.2, 0.3) - (0.02 if masculine else 0)
    thickness = uniform(rng, 0.075, 0.12) if masculine else uniform(rng, 0.05, 0.09)
    tail = uniform(rng, 0.3, 0.6)
    arch = uniform(rng, 0.02, 0.07) * (0.6 if masculine else 1.0)
    inner_x = uniform(rng, 0.11, 0.19)
    outer_x = eyes.x + eyes.half_width + uniform(rng, 0.03, 0.13)
    return Brows(height, thickness, tail, arch, inner_x, outer_x)


def _sample_nose(rng, masculine):
    top_y = uniform(rng, -0.04, 0.06)
    base_y = uniform(rng, 0.52, 0.63)
    bridge_half_width = uniform(rng, 0.055, 0.09)
    ala_half_width = uniform(rng, 0.18, 0.25) + (0.02 if masculine else 0)
    return Nose(top_y, base_y, bridge_half_width, ala_half_width)


def _sample_mouth(rng, masculine, nose, skin):
    y = nose.base_y + uniform(rng, 0.25, 0.34)
    half_width = uniform(rng, 0.33, 0.42)
    upper = uniform(rng, 0.065, 0.1) * (0.85 if masculine else 1.0)
    lower = upper * uniform(rng, 1.2, 1.7)
    bow = uniform(rng, 0.15, 0.4)
    lip_base = mix(skin, (0.72, 0.30, 0.32), uniform(rng, 0.35, 0.6))
    lip_colour = (lip_base * uniform(rng, 0.75, 0.95)).astype(np.float32)
    return Mouth(y, half_width, upper, lower, bow, lip_colour)


def _sample_makeup(rng, masculine, config):
    worn = (not masculine) and rng.random() < config.makeup_prob
    lipstick = None
    if worn and rng.random() < 0.6:
        lipstick = np.array(LIPSTICKS[int(rng.integers(4))], np.float32)
    eye_shadow = np.array(EYE_SHADOWS[int(rng.integers(4))], np.float32)
    return Makeup(worn, lipstick, eye_shadow)


def _sample_light(rng):
    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = uniform(rng, 0.35, 1.2)
    direction = np.array(
        [
            math.cos(azimuth) * math.cos(elevation),
            math.sin(azimuth) * math.cos(elevation) - 0.25,
            math.sin(elevation),
        ],
        np.float32,
    )
    direction /= np.linalg.norm(direction)
    ambient = uniform(rng, 0.22, 0.6)
    specular = uniform(rng, 0.0, 0.12)
    return Lighting(direction, ambient, specular)
