"""Reading a photo for parsing: any supported input -> uint8 (H, W, 3) RGB.

``to_rgb`` accepts a path, a PIL image or a numpy array:

==========================  ==========================================================
input                       what happens
==========================  ==========================================================
path / PIL image            the EXIF orientation tag is applied first (the pixels are
                            turned the way a photo viewer shows them, and the labels
                            come out the same way)
RGB, uint8 (H, W, 3)        used as is
grayscale (L, 1, (H, W))    the gray value is copied to R, G and B
palette (P)                 converted through its palette
RGBA / LA / PA, (H, W, 4)   opaque alpha is dropped; transparent pixels are composited
                            onto black, the value the model sees around every image
                            (its canvas padding)
16-bit (I;16 PNG, uint16)   scaled to 8 bits (round(v / 257)): a 16-bit photo uses
                            the full 0..65535 range
CMYK, YCbCr, RGBX           converted with PIL
32-bit int / float modes,   refused: their value range is not defined, any conversion
float arrays, other modes   would be a guess
==========================  ==========================================================

Every problem raises :class:`PhotoError` naming the input and what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PhotoInput = Union[str, os.PathLike, Image.Image, np.ndarray]


class PhotoError(ValueError):
    """A photo that cannot be read or converted (the message names it and the problem)."""


def describe(image: PhotoInput) -> str:
    """A short name for an input, for messages: its path or its type and shape."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, Image.Image):
        return f"PIL image ({image.mode}, {image.width}x{image.height})"
    if isinstance(image, np.ndarray):
        return f"array {image.dtype} {image.shape}"
    return type(image).__name__


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C+1) with alpha last -> (H, W, C) composited onto black."""
    alpha = rgba[..., -1:]
    if alpha.min() == 255:
        return rgba[..., :-1]
    return np.rint(rgba[..., :-1].astype(np.float32) * (alpha.astype(np.float32) / 255.0)).astype(np.uint8)


def _from_uint16(arr: np.ndarray) -> np.ndarray:
    return np.rint(arr.astype(np.float64) / 257.0).astype(np.uint8)


def _from_array(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint16:
        arr = _from_uint16(arr)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise PhotoError(f"{name}: pixel type {arr.dtype} is not supported (pass uint8 or "
                         "uint16; the value range of other types is not defined)")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise PhotoError(f"{name}: expected (H, W), (H, W, 3) or (H, W, 4) pixels, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PhotoError(f"{name}: the image is empty ({arr.shape[0]}x{arr.shape[1]})")
    if arr.shape[-1] in (2, 4):
        arr = _flatten_alpha(arr)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def _from_pil(im: Image.Image, name: str) -> np.ndarray:
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # noqa: BLE001 - any decoder failure means bad data
        raise PhotoError(f"{name}: corrupt or truncated image data ({type(e).__name__}: {e})") from None
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "RGBX"):
        im = im.convert("RGB")
    elif mode.startswith("I;16"):
        return _from_array(np.asarray(im).astype(np.uint16), name)
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        raise PhotoError(f"{name}: image mode {mode!r} is not supported (its value range is "
                         "not defined; save the photo as 8-bit RGB)")
    return _from_array(np.asarray(im, dtype=np.uint8), name)


def to_rgb(image: PhotoInput) -> np.ndarray:
    """Any supported input (see the module docstring) -> uint8 (H, W, 3) RGB."""
    name = describe(image)
    if isinstance(image, np.ndarray):
        return _from_array(image, name)
    if isinstance(image, Image.Image):
        return _from_pil(image, name)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise PhotoError(f"{path}: no such file")
        try:
            with Image.open(path) as im:
                return _from_pil(im, name)
        except UnidentifiedImageError:
            raise PhotoError(f"{path}: not an image file PIL can read") from None
        except OSError as e:
            raise PhotoError(f"{path}: cannot read ({e})") from None
    raise PhotoError(f"{name}: expected a path, a PIL image or a numpy array")
