"""The hair style of a face: kind, colour, hairline, volume, fringe and the silhouette.

All draws come from the hair stream (``sample_hair_style``); the buzz cut's density,
an updo's bun and a fringe's jagged edge are drawn later by the hair layers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.identity import Identity
from stn_icnn_jax.data.synthetic.noise import uniform, value_noise
from stn_icnn_jax.data.synthetic.palette import HAIR_COLOUR_PROBABILITIES, HAIR_COLOURS
from stn_icnn_jax.data.synthetic.shapes import mirror_x, mix, smoothstep

HAIR_STYLES = ("short", "bob", "long", "curly", "updo", "buzz")
FEMININE_STYLE_PROBABILITIES = [0.26, 0.16, 0.26, 0.1, 0.12, 0.1]
MASCULINE_STYLE_PROBABILITIES = [0.62, 0.06, 0.06, 0.08, 0.02, 0.16]
#: styles whose hair hangs down past the face (drawn behind the head too)
HANGING_STYLES = ("long", "bob", "curly")
#: styles cropped above the ears
CROPPED_STYLES = ("short", "buzz", "updo")


@dataclasses.dataclass(frozen=True, eq=False)
class HairStyle:
    style: str  # one of HAIR_STYLES
    colour_name: str
    colour: np.ndarray  # float32 RGB
    brow_colour: np.ndarray
    hairline: float  # face y of the hairline at the middle of the forehead
    recede: float  # depth of the M-shaped temples of a receding hairline
    volume: float  # how far the hair stands off the skull
    length: float  # face y where hanging hair ends
    parting: float  # x of the parting (where a fringe's strands start)
    cheek_cover: float  # how far hanging hair comes over the cheeks
    fringe: bool
    fringe_y: float
    fringe_slope: float
    fringe_jag: float
    silhouette: np.ndarray  # outer hair outline, face units (project with depth 0.12)

    def meta(self) -> dict:
        return dict(hair_style=self.style, hair_color=self.colour_name, fringe=bool(self.fringe))


def sample_hair_style(rng, config: SyntheticFaceConfig, identity: Identity) -> HairStyle:
    """Draw the hair style and its silhouette (in this order)."""
    masculine = identity.masculine
    probabilities = MASCULINE_STYLE_PROBABILITIES if masculine else FEMININE_STYLE_PROBABILITIES
    style = str(rng.choice(HAIR_STYLES, p=probabilities))
    colour_name, colour, brow_colour = _sample_colour(rng, identity.age)
    hairline = uniform(rng, -1.25, -0.95) if style != "buzz" else uniform(rng, -1.3, -1.05)
    recede = 0.0
    if masculine and rng.random() < 0.3 * (0.5 + identity.age):
        hairline -= uniform(rng, 0.0, 0.2)  # receding, M-shaped
        recede = uniform(rng, 0.05, 0.25)
    # every entry is drawn (in this order), whichever the style
    volume = {"short": uniform(rng, 0.07, 0.22), "bob": uniform(rng, 0.1, 0.2), "long": uniform(rng, 0.08, 0.2),
              "curly": uniform(rng, 0.25, 0.5), "updo": uniform(rng, 0.03, 0.08),
              "buzz": uniform(rng, 0.01, 0.03)}[style]
    length = {"short": -0.1, "bob": uniform(rng, 0.9, 1.5), "long": uniform(rng, 2.2, 4.0),
              "curly": uniform(rng, 0.6, 2.2), "updo": -0.2, "buzz": -0.15}[style]
    parting = uniform(rng, -0.5, 0.5) if rng.random() < 0.7 else 0.0
    cheek_cover = uniform(rng, 0.0, 0.15) if style in HANGING_STYLES else 0.0
    fringe_allowed = style in ("short", "bob", "long", "curly")
    fringe_prob = config.fringe_prob * (0.4 if masculine and style == "short" else 1.0)
    fringe = fringe_allowed and rng.random() < fringe_prob
    # drawn whether used or not: the fringe flag does not change the rest
    fringe_y = -identity.brows.height + uniform(rng, -0.25, 0.12)
    fringe_slope = uniform(rng, -0.25, 0.25) * (rng.random() < 0.5)
    fringe_jag = uniform(rng, 0.0, 0.08)
    silhouette = _sample_silhouette(rng, style, volume, length, identity.outline.width)
    return HairStyle(style, colour_name, colour, brow_colour, hairline, recede, volume, length, parting,
                     cheek_cover, fringe, fringe_y, fringe_slope, fringe_jag, silhouette)


def _sample_colour(rng, age):
    """Hair colour name, colour and the matching brow colour (greyer with age)."""
    names = list(HAIR_COLOURS)
    probabilities = np.array([HAIR_COLOUR_PROBABILITIES[n] for n in names])
    if age > 0.8:
        probabilities[names.index("grey")] += 0.4
        probabilities[names.index("white")] += 0.2
    probabilities /= probabilities.sum()
    name = str(rng.choice(names, p=probabilities))
    colour = np.array(HAIR_COLOURS[name], np.float32) * uniform(rng, 0.85, 1.15)
    if name not in ("grey", "white", "blonde"):
        brow_colour = colour * 0.7
    else:
        brow_colour = mix(colour, (0.3, 0.22, 0.15), 0.5)
    if name == "blonde":
        brow_colour = colour * 0.6
    return name, colour, brow_colour


def _sample_silhouette(rng, style, volume, length, face_width):
    """Outer hair silhouette (face units): a skull ellipse, cropped or hanging sides."""
    top_y = -0.25
    n = 90
    cropped = style in CROPPED_STYLES
    spread = 0.62 if cropped else 0.5
    a = np.linspace(-spread * np.pi, spread * np.pi, n)  # angle from the top
    ry = 1.45 + volume * 1.1
    if cropped:
        # volume on top, close-cropped above the ears
        rx = face_width * 1.02 + volume * (0.25 + 0.75 * np.cos(np.clip(a, -np.pi / 2, np.pi / 2)) ** 2)
    else:
        rx = face_width * 1.02 + volume
    x = rx * np.sin(a)
    y = top_y - ry * np.cos(a)
    if style == "curly":
        bump = value_noise(rng, 1, n, 6)[0] * 0.06 + 0.04 * np.sin(a * 17)
        x = x + np.sin(a) * bump
        y = y - np.cos(a) * bump
    skull = np.stack([x, y], 1)
    if cropped:
        # close along the sides just above the ears
        side_y = uniform(rng, -0.05, 0.2)
        left = np.array([[-face_width * 0.9, side_y + 0.05], [-face_width * 1.0, side_y]])
        right = np.array([[face_width * 1.0, side_y], [face_width * 0.9, side_y + 0.05]])
        return np.concatenate([left, skull, right])
    return np.concatenate([skull, _hanging_sides(rng, style, rx, top_y, length)])


def _hanging_sides(rng, style, rx, top_y, length):
    """Down the right side, along the (wavy) bottom, up the left side."""
    flare = uniform(rng, 0.0, 0.35) if style != "bob" else uniform(rng, -0.05, 0.1)
    k = 12
    yy = np.linspace(top_y + 0.05, length, k)
    xr = rx + flare * ((yy - top_y) / (length - top_y)) ** 1.5
    if style == "bob":
        xr = xr - 0.2 * smoothstep(length - 0.5, length, yy)
    right = np.stack([xr, yy], 1)
    nb = 14
    bx = np.linspace(xr[-1], -xr[-1], nb)
    curve = (-0.15 if style == "bob" else 0.1) * np.cos(bx / xr[-1] * np.pi / 2)
    by = length + 0.05 * np.abs(rng.standard_normal(nb)) + curve
    if style == "curly":
        right[:, 0] += rng.standard_normal(k) * 0.04
    return np.concatenate([right, np.stack([bx, by], 1), mirror_x(right)])
