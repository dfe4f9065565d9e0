"""Photometric augmentation of training images: colour, gamma, blur and JPEG, optional.

Not the paper's (section 2.5.1 has none): ``data.photometric="default"`` turns it on
(issue 10, for photos unlike the clean synthetic renders); the default ``"none"`` keeps
the paper's augmentation bit for bit. It touches the image only, never the labels, and
runs after the scheme's own operations (warp and noise) in
:func:`stn_icnn_jax.data.augment.augment`, drawing from the same generator.

Every function takes and returns a float RGB image ``(H, W, 3)`` with values in
``[0, 255]`` (float32 out, clipped to the range); the JPEG round trip rounds to uint8
internally. Seven operations, applied in this order, each with its own probability and
range (:class:`PhotometricConfig`):

  brightness  x * f
  contrast    m + f (x - m), m the mean luma of the image (BT.601 weights, as PIL)
  saturation  y + f (x - y), y each pixel's luma
  hue         rotation of each RGB vector about the grey axis by ``turns`` of a turn
              (1/3 turn sends red to green; grey and the channel mean stay)
  gamma       255 (x / 255) ** g
  blur        Gaussian of std ``sigma`` pixels, kernel 2 ceil(3 sigma) + 1, reflected
              border (OpenCV's BORDER_REFLECT_101)
  jpeg        OpenCV JPEG encode / decode at integer ``quality``
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

#: BT.601 luma weights (PIL's ``convert("L")`` and torchvision's grayscale).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    return image.astype(np.float32, copy=False)


def _out(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 255.0).astype(np.float32, copy=False)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> the same, every value times ``factor``."""
    return _out(_image(image) * np.float32(factor))


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> the same, stretched by ``factor`` about the
    image's mean luma (``factor`` 0: a flat grey image; 1: unchanged)."""
    image = _image(image)
    mean = np.float32((image @ LUMA).mean())
    return _out(mean + np.float32(factor) * (image - mean))


def saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> the same, each pixel moved by ``factor`` from its
    own luma (``factor`` 0: greyscale; 1: unchanged)."""
    image = _image(image)
    grey = (image @ LUMA)[..., None]
    return _out(grey + np.float32(factor) * (image - grey))


def hue_matrix(turns: float) -> np.ndarray:
    """3x3 rotation about the grey axis (1, 1, 1) by ``turns`` of a full turn (Rodrigues)."""
    angle = 2.0 * math.pi * turns
    u = np.full(3, 1.0 / math.sqrt(3.0))
    cross = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    return (math.cos(angle) * np.eye(3) + math.sin(angle) * cross
            + (1.0 - math.cos(angle)) * np.outer(u, u))


def hue(image: np.ndarray, turns: float) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> the same, each RGB vector rotated about the grey
    axis by ``turns`` of a turn (a hue shift that keeps grey pixels and the channel mean;
    colours leaving the cube are clipped)."""
    return _out(_image(image) @ hue_matrix(turns).T.astype(np.float32))


def gamma(image: np.ndarray, exponent: float) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> ``255 (x / 255) ** exponent`` (> 1 darkens)."""
    return _out(255.0 * np.power(np.clip(_image(image), 0.0, 255.0) / 255.0, exponent))


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> Gaussian blur of std ``sigma`` pixels (kernel
    side 2 ceil(3 sigma) + 1, border reflected without repeating the edge)."""
    side = 2 * math.ceil(3.0 * sigma) + 1
    return _out(cv2.GaussianBlur(_image(image), (side, side), sigmaX=sigma, sigmaY=sigma,
                                 borderType=cv2.BORDER_REFLECT_101))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 255] -> rounded to uint8, JPEG-encoded at ``quality``
    (1-100) and decoded (RGB handed to OpenCV as the BGR it expects), back as float32."""
    pixels = np.clip(np.rint(_image(image)), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {pixels.shape} image")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32)


#: The operations in the order :func:`apply` runs them.
OPERATIONS = {"brightness": brightness, "contrast": contrast, "saturation": saturation,
              "hue": hue, "gamma": gamma, "blur": blur, "jpeg": jpeg}


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation's chance and range: applied with ``probability``, its parameter
    uniform in ``[low, high]`` (JPEG quality: an integer in ``[low, high]``)."""

    probability: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class PhotometricConfig:
    """Probability and range of each operation (the parameter each function takes).

    Attributes:
      brightness: factor on every value.
      contrast: factor about the image's mean luma.
      saturation: factor about each pixel's luma.
      hue: rotation about the grey axis, in turns (0.04 = 14.4 degrees).
      gamma: exponent (> 1 darkens the mid-tones).
      blur: Gaussian std in pixels of the original image.
      jpeg: JPEG quality (1-100).
    """

    brightness: Op = Op(0.5, 0.75, 1.25)
    contrast: Op = Op(0.5, 0.7, 1.3)
    saturation: Op = Op(0.5, 0.6, 1.4)
    hue: Op = Op(0.3, -0.04, 0.04)
    gamma: Op = Op(0.3, 0.7, 1.4)
    blur: Op = Op(0.3, 0.3, 1.5)
    jpeg: Op = Op(0.3, 30, 95)

    def __post_init__(self):
        for name in OPERATIONS:
            op = getattr(self, name)
            if not 0.0 <= op.probability <= 1.0 or op.low > op.high:
                raise ValueError(f"photometric {name}: probability must be in [0, 1] and "
                                 f"low <= high, got {op}")
        if self.gamma.low <= 0 or self.blur.low <= 0 or min(self.brightness.low,
                                                            self.contrast.low,
                                                            self.saturation.low) < 0:
            raise ValueError("photometric: gamma and blur sigma must be > 0, the colour "
                             "factors >= 0")
        if not 1 <= self.jpeg.low <= self.jpeg.high <= 100:
            raise ValueError(f"photometric jpeg quality must lie in [1, 100], got {self.jpeg}")


#: ``data.photometric`` values.
PRESETS: dict[str, PhotometricConfig | None] = {"none": None, "default": PhotometricConfig()}


def preset(name: str) -> PhotometricConfig | None:
    """The configuration ``data.photometric = name`` stands for (None for ``"none"``)."""
    if name not in PRESETS:
        raise ValueError(f"data.photometric must be one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]


def sample(config: PhotometricConfig, rng: np.random.Generator) -> dict[str, float | None]:
    """Each operation's parameter, or None where its coin says skip, in :data:`OPERATIONS`
    order. Draws a coin and a parameter for every operation whether it applies or not, so
    one operation's settings never shift the others' draws."""
    params: dict[str, float | None] = {}
    for name in OPERATIONS:
        op = getattr(config, name)
        coin = rng.random()
        value = (int(rng.integers(int(op.low), int(op.high) + 1)) if name == "jpeg"
                 else float(rng.uniform(op.low, op.high)))
        params[name] = value if coin < op.probability else None
    return params


def apply(image: np.ndarray, config: PhotometricConfig, rng: np.random.Generator) -> np.ndarray:
    """``(H, W, 3)`` float RGB in [0, 255] -> float32 ``(H, W, 3)`` in [0, 255]: the
    operations :func:`sample` draws from ``rng``, in order. Deterministic given the
    generator's state."""
    out = _image(image)
    for name, value in sample(config, rng).items():
        if value is not None:
            out = OPERATIONS[name](out, value)
    return out
