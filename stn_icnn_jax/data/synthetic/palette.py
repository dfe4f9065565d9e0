"""Colour palettes (skin, hair, iris) and the skin colour draw."""

from __future__ import annotations

import numpy as np

from stn_icnn_jax.data.synthetic.noise import uniform

#: skin tones from light to dark; a face's tone interpolates between neighbours
SKIN_PALETTE = np.array(
    [
        [0.97, 0.83, 0.75],  # very light
        [0.91, 0.71, 0.60],  # light
        [0.80, 0.59, 0.44],  # medium
        [0.62, 0.43, 0.30],  # tan
        [0.45, 0.30, 0.21],  # brown
        [0.30, 0.20, 0.15],  # dark
    ],
    np.float32,
)
#: named hair colours (RGB 0..1) and how often each is drawn
HAIR_COLOURS = {
    "black": (0.05, 0.045, 0.045),
    "dark_brown": (0.16, 0.10, 0.07),
    "brown": (0.32, 0.21, 0.13),
    "light_brown": (0.52, 0.38, 0.24),
    "blonde": (0.80, 0.66, 0.44),
    "auburn": (0.50, 0.22, 0.10),
    "grey": (0.58, 0.57, 0.55),
    "white": (0.86, 0.85, 0.82),
}
HAIR_COLOUR_PROBABILITIES = {
    "black": 0.30,
    "dark_brown": 0.25,
    "brown": 0.16,
    "light_brown": 0.09,
    "blonde": 0.08,
    "auburn": 0.04,
    "grey": 0.05,
    "white": 0.03,
}
#: iris colours and how often each is drawn
_IRISES = {
    "dark_brown": ((0.16, 0.09, 0.05), 0.35),
    "brown": ((0.30, 0.17, 0.08), 0.25),
    "hazel": ((0.42, 0.33, 0.16), 0.12),
    "green": ((0.30, 0.40, 0.25), 0.08),
    "blue": ((0.33, 0.47, 0.62), 0.12),
    "grey": ((0.45, 0.52, 0.58), 0.08),
}
IRIS_COLOURS = np.array([colour for colour, _ in _IRISES.values()], np.float32)
IRIS_PROBABILITIES = np.array([probability for _, probability in _IRISES.values()])


def sample_skin_colour(rng):
    """A skin colour (float32 RGB) and its tone (0 light .. 1 dark): 4 draws."""
    tone = float(np.clip(rng.beta(1.6, 2.0) * 1.08, 0, 1))
    f = tone * (len(SKIN_PALETTE) - 1)
    i = min(int(f), len(SKIN_PALETTE) - 2)
    colour = SKIN_PALETTE[i] * (1 - (f - i)) + SKIN_PALETTE[i + 1] * (f - i)
    colour = colour * np.array([uniform(rng, 0.97, 1.03), uniform(rng, 0.96, 1.03), uniform(rng, 0.94, 1.05)])
    return np.clip(colour, 0, 1).astype(np.float32), tone
