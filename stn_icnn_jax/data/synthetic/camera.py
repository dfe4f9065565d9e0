"""The camera: exposure and colour balance, lens blur, noise, tone curve and JPEG.

Applied to the picture only, at the end (the labels stay exact). Draws from the camera
stream; meta: ``blur_sigma``, ``noise_sigma``, ``jpeg_quality`` (0 = no JPEG).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.noise import uniform


def develop(rng, config: SyntheticFaceConfig, picture):
    """The photo (uint8 H x W x 3) the camera makes of ``picture`` (float, changed in place).

    Returns (photo, meta).
    """
    gamma, contrast = _expose(rng, picture)
    img, sigma = _blur(rng, config, picture)
    noise_sigma, img = _add_noise(rng, config, img)
    img *= 255.0
    img += 0.5
    np.clip(img, 0, 255, out=img)
    photo = cv2.LUT(img.astype(np.uint8), _tone_curve(gamma, contrast))
    quality = 0
    if rng.random() < config.jpeg_prob:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        photo = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    meta = {"blur_sigma": float(sigma), "noise_sigma": float(noise_sigma), "jpeg_quality": quality}
    return np.ascontiguousarray(photo), meta


def _expose(rng, img):
    """Global light gradient, white balance and exposure (in place); draws gamma, contrast."""
    h, w = img.shape[:2]
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 1 + uniform(rng, 0, 0.35) * (np.cos(angle) * xx + np.sin(angle) * yy)
    white_balance = np.array([uniform(rng, 0.9, 1.1), 1.0, uniform(rng, 0.88, 1.1)], np.float32)
    exposure = uniform(rng, 0.75, 1.2)
    img *= (gradient * exposure)[..., None] * white_balance
    gamma = uniform(rng, 0.8, 1.2)
    contrast = uniform(rng, 0.85, 1.15)
    return gamma, contrast


def _blur(rng, config, img):
    """Lens softness, optional defocus and motion blur, optional low-resolution source."""
    h, w = img.shape[:2]
    sigma = uniform(rng, 0.25, 0.7) * max(1.0, min(h, w) / 400)
    if rng.random() < config.blur_prob:
        sigma = max(sigma, uniform(rng, 0.5, config.max_blur_sigma))
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < config.motion_blur_prob:
        k = int(rng.integers(3, 9))
        kernel = np.zeros((k, k), np.float32)
        angle = rng.uniform(0, np.pi)
        c = (k - 1) / 2
        for t in np.linspace(-c, c, 4 * k):
            kernel[int(round(c + t * math.sin(angle))), int(round(c + t * math.cos(angle)))] = 1
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    if rng.random() < 0.1:  # low resolution source
        f = uniform(rng, 1.5, 3.0)
        small = cv2.resize(img, (max(8, int(w / f)), max(8, int(h / f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return img, sigma


def _add_noise(rng, config, img):
    """Sensor noise (luminance, maybe chroma) in place; returns (its sigma, img)."""
    h, w = img.shape[:2]
    sigma = 0.0
    if rng.random() < config.noise_prob:
        sigma = uniform(rng, 0.003, config.max_noise_sigma)
        noise = rng.standard_normal((h, w), dtype=np.float32) * sigma
        img += noise[..., None]
        if rng.random() < 0.5:
            chroma = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32) * (sigma * 0.6)
            img += cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
    return sigma, img


def _tone_curve(gamma, contrast):
    """The tone curve (gamma, contrast) as a uint8 lookup table."""
    x = np.arange(256, dtype=np.float64) / 255.0
    return np.clip(((x**gamma - 0.5) * contrast + 0.5) * 255 + 0.5, 0, 255).astype(np.uint8)
