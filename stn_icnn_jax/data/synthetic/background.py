"""The background picture behind everything: studio, indoor, outdoor, pattern or noise.

Picture only (the label stack starts as all background). Draws from the background
stream; may add skin-coloured distractor blobs (faces in the background) and a blur.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.noise import blur, uniform, value_noise
from stn_icnn_jax.data.synthetic.palette import HAIR_COLOURS, sample_skin_colour
from stn_icnn_jax.data.synthetic.scene import LayerResult
from stn_icnn_jax.data.synthetic.shapes import mix, smoothstep

BACKDROPS = ["studio", "indoor", "outdoor", "pattern", "noise"]
BACKDROP_PROBABILITIES = [0.3, 0.28, 0.2, 0.1, 0.12]


@dataclasses.dataclass(frozen=True, eq=False)
class _Frame:
    """The image frame a backdrop is drawn on: size, 0..1 coordinates, a linear ramp."""

    rng: np.random.Generator
    height: int
    width: int
    xx: np.ndarray  # (1, w) float32 0..1
    yy: np.ndarray  # (h, 1) float32 0..1
    ramp: np.ndarray  # (h, w) a random-direction gradient, about 0..1


def _random_colour(rng, low=0.05, high=0.95):
    """A random colour with a random saturation (float32 RGB)."""
    c = rng.uniform(low, high, 3)
    saturation = uniform(rng, 0.1, 0.8)
    return (c.mean() + (c - c.mean()) * saturation).astype(np.float32)


def _cv_colour(colour, factor=1.0):
    """An OpenCV colour tuple (x * 1.0 is exact, so factor 1 changes nothing)."""
    return tuple(float(v) * factor for v in colour)


def _studio(f):
    """Two-colour gradient with a little noise and a vignette."""
    rng = f.rng
    c1, c2 = _random_colour(rng, 0.2, 0.95), _random_colour(rng, 0.1, 0.9)
    img = c1 * (1 - f.ramp[..., None]) + c2 * f.ramp[..., None]
    img = img + value_noise(rng, f.height, f.width, f.width / 3)[..., None] * 0.03
    vignette = 1 - uniform(rng, 0, 0.35) * ((f.xx - 0.5) ** 2 + (f.yy - 0.5) ** 2)[..., None] * 2
    return img * vignette


def _outdoor(f):
    """Sky over ground at a random horizon, with bushes / blobs and noise."""
    rng, h, w = f.rng, f.height, f.width
    horizon = uniform(rng, 0.25, 0.75)
    sky = mix((0.45, 0.62, 0.88), (0.85, 0.88, 0.92), uniform(rng, 0, 1))
    ground = mix((0.2, 0.35, 0.12), (0.45, 0.38, 0.25), uniform(rng, 0, 1))
    t = smoothstep(horizon - 0.05, horizon + 0.05, f.yy)[..., None]
    img = sky * (1 - t) * (0.8 + 0.3 * (1 - f.yy[..., None])) + ground * t
    img = np.broadcast_to(img, (h, w, 3)).copy()
    for _ in range(int(rng.integers(8, 30))):
        c = mix(ground, _random_colour(rng, 0.1, 0.7), uniform(rng, 0, 0.6)) * uniform(rng, 0.5, 1.3)
        cx, cy = uniform(rng, 0, w), uniform(rng, horizon * h - 0.3 * h, h)
        cv2.ellipse(
            img,
            (int(cx), int(cy)),
            (int(uniform(rng, 0.03, 0.25) * w), int(uniform(rng, 0.03, 0.2) * h)),
            uniform(rng, 0, 180), 0, 360, _cv_colour(c), -1, cv2.LINE_AA,
        )
    return img + value_noise(rng, h, w, w / 20)[..., None] * 0.06


def _indoor(f):
    """A wall with rectangles (furniture, frames) and straight lines."""
    rng, h, w = f.rng, f.height, f.width
    wall = _random_colour(rng, 0.3, 0.9)
    img = np.broadcast_to(wall * (0.85 + 0.3 * f.ramp[..., None]), (h, w, 3)).copy()
    for _ in range(int(rng.integers(3, 12))):
        c = _random_colour(rng, 0.02, 1.0)
        x0, y0 = int(uniform(rng, -0.2, 1) * w), int(uniform(rng, -0.2, 1) * h)
        x1, y1 = x0 + int(uniform(rng, 0.05, 0.6) * w), y0 + int(uniform(rng, 0.05, 0.8) * h)
        cv2.rectangle(img, (x0, y0), (x1, y1), _cv_colour(c), -1)
        if rng.random() < 0.4:
            cv2.rectangle(img, (x0, y0), (x1, y1), _cv_colour(c, 0.6), max(1, w // 150))
    for _ in range(int(rng.integers(0, 6))):
        c = _random_colour(rng, 0.0, 1.0)
        if rng.random() < 0.5:
            x = int(uniform(rng, 0, w))
            start, end = (x, 0), (x + int(uniform(rng, -0.1, 0.1) * w), h)
        else:
            y = int(uniform(rng, 0, h))
            start, end = (0, y), (w, y + int(uniform(rng, -0.1, 0.1) * h))
        cv2.line(img, start, end, _cv_colour(c), int(rng.integers(1, max(2, w // 60))))
    return img


def _pattern(f):
    """Stripes or a checkerboard at a random angle and period."""
    rng, h, w = f.rng, f.height, f.width
    c1, c2 = _random_colour(rng), _random_colour(rng)
    period = uniform(rng, 0.03, 0.2) * w
    angle = rng.uniform(0, np.pi)
    u = (np.cos(angle) * f.xx * w + np.sin(angle) * f.yy * h) / period
    if rng.random() < 0.5:
        v = (np.sin(2 * np.pi * u) > 0).astype(np.float32)
    else:
        u2 = (-np.sin(angle) * f.xx * w + np.cos(angle) * f.yy * h) / period
        v = ((np.floor(u) + np.floor(u2)) % 2).astype(np.float32)
    img = c1 * (1 - v[..., None]) + c2 * v[..., None]
    return img * (0.8 + 0.35 * f.ramp[..., None])


def _noise_backdrop(f):
    """Coloured multi-scale noise around a base colour."""
    rng, h, w = f.rng, f.height, f.width
    small_h, small_w = max(2, h // 4), max(2, w // 4)
    small = np.zeros((small_h, small_w, 3), np.float32)
    base = _random_colour(rng, 0.2, 0.8)
    for k in range(4):
        cell = small_w / (3 * 2**k)
        small += np.stack([value_noise(rng, small_h, small_w, cell) for _ in range(3)], -1) * (0.18 / (k + 1))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) + base


_BACKDROP_PAINTERS = {
    "studio": _studio,
    "indoor": _indoor,
    "outdoor": _outdoor,
    "pattern": _pattern,
    "noise": _noise_backdrop,
}


def _add_distractors(rng, img):
    """1-3 skin-coloured blobs, some with a dark 'hair' cap (faces far away)."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        skin, _tone = sample_skin_colour(rng)
        cx, cy = uniform(rng, 0, w), uniform(rng, 0, h)
        rx = uniform(rng, 0.04, 0.15) * min(h, w)
        cv2.ellipse(img, (int(cx), int(cy)), (int(rx), int(rx * uniform(rng, 1.1, 1.5))), uniform(rng, -20, 20), 0, 360,
                    _cv_colour(skin * uniform(rng, 0.6, 1.0)), -1, cv2.LINE_AA)
        if rng.random() < 0.6:
            hair = np.array(list(HAIR_COLOURS.values())[int(rng.integers(8))], np.float32)
            cv2.ellipse(img, (int(cx), int(cy - rx * 0.6)), (int(rx * 1.1), int(rx * 0.8)), 0, 180, 360,
                        _cv_colour(hair), -1, cv2.LINE_AA)


def draw_background(scene, canvas):
    """Fill the whole picture with a backdrop (picture only). Meta ``background``: its kind."""
    rng, h, w = scene.streams.background, canvas.height, canvas.width
    kind = str(rng.choice(BACKDROPS, p=BACKDROP_PROBABILITIES))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5
    img = _BACKDROP_PAINTERS[kind](_Frame(rng, h, w, xx, yy, ramp))
    img = np.ascontiguousarray(img, np.float32)
    if rng.random() < scene.config.distractor_prob:
        _add_distractors(rng, img)
    sigma = uniform(rng, 0.3, 6.0) * min(h, w) / 400
    if kind in ("outdoor", "indoor") or rng.random() < 0.5:
        img = blur(img, sigma)
    canvas.picture[:] = np.clip(img, 0, 1)
    return LayerResult({"background": kind})
