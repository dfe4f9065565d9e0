"""Strict reading of dataset images and label maps (PIL + numpy, no TensorFlow).

Every problem raises :class:`DataFormatError`, whose message starts with the file's path
and says what is wrong. Two levels of checking:

* ``probe_image`` / ``probe_gray`` read only the file header (cheap): the file exists, is
  an image PIL can identify, has a supported mode and bit depth, and is not larger than
  ``max_side`` pixels per side. Builders probe every file of every split before they
  write anything.
* ``read_image_rgb`` / ``read_gray`` decode the pixels (truncated / corrupt data is
  detected here) and apply the conversions below.

Policy for photos (``read_image_rgb`` -> uint8 (H, W, 3) RGB):

======================  ===============================================================
mode                    what happens
======================  ===============================================================
RGB                     used as is
L (8-bit grayscale)     converted: the gray value is copied to R, G and B
1 (bilevel)             converted: 0 -> 0, 1 -> 255 in all three channels
P (palette)             converted through its palette; with a transparency entry it is
                        treated like RGBA
RGBA, LA, PA            accepted only if every alpha value is 255 (then alpha is
                        dropped); transparent pixels are refused (no defined background)
CMYK                    converted with PIL's CMYK->RGB conversion (ICC profiles ignored)
YCbCr, RGBX             converted with PIL (lossless colour-space change / padding byte)
I;16*, I, F             refused: 16/32-bit samples (value range is ambiguous)
16-bit PNG (any mode)   refused: PIL would silently drop the low byte
anything else           refused (LAB, HSV, ...)
======================  ===============================================================

The EXIF orientation tag is deliberately **ignored**: label maps are aligned with the
stored pixel array (as in the reference code, which reads with skimage/PIL and never
transposes).

Policy for gray maps (``read_gray`` -> uint8 (H, W)): 8-bit ``L`` is used as is; ``1``
becomes 0/255; ``RGB``/``RGBA``/``LA``/``RGBX`` are accepted only when all colour
channels are equal and alpha (if any) is 255; ``P`` is mapped through a gray palette
(``palette="gray"``, the default: soft maps, binary masks) or taken as raw palette indices
(``palette="index"``: class-index label maps). 16-bit and 32-bit maps are refused; for
``palette="index"`` so are grayscale PNGs of less than 8 bits (the decoder rescales them,
which would change class values).
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Largest supported image side (the reference pads every image to a 1024x1024 canvas).
MAX_SIDE = 1024

_PHOTO_MODES_OK = {"RGB", "L", "1", "P", "RGBA", "LA", "PA", "CMYK", "YCbCr", "RGBX"}
_GRAY_MODES_OK = {"L", "1", "P", "RGB", "RGBA", "LA", "RGBX"}
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "I;32")


class DataFormatError(ValueError):
    """A dataset file is missing, unreadable or not in the expected format.

    Attributes:
      path: the offending file (or directory).
      problem: what is wrong with it.
    """

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def raise_problems(problems: Iterable[DataFormatError], limit: int = 20) -> None:
    """Raise one :class:`DataFormatError` summarising ``problems`` (no-op if empty).

    The raised error's ``path`` is the first problem's; its message is the first problem
    followed by up to ``limit`` of the others; ``.all_problems`` holds them all.
    """
    problems = list(problems)
    if not problems:
        return
    first, rest = problems[0], problems[1:]
    if not rest:
        raise first
    lines = [str(p) for p in rest[:limit]]
    if len(rest) > limit:
        lines.append(f"... and {len(rest) - limit} more")
    noun = "problem" if len(rest) == 1 else "problems"
    err = DataFormatError(
        first.path, f"{first.problem}\nand {len(rest)} more {noun}:\n  " + "\n  ".join(lines)
    )
    err.all_problems = problems  # type: ignore[attr-defined]
    raise err


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """Header facts about one image file."""

    path: Path
    width: int
    height: int
    mode: str
    format: str | None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), PIL's convention."""
        return (self.width, self.height)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), numpy's convention."""
        return (self.height, self.width)


def png_bit_depth(path: os.PathLike | str) -> int | None:
    """Bit depth from a PNG's IHDR chunk, or None if the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int(struct.unpack(">B", head[24:25])[0])


def _open(path: Path, what: str) -> Image.Image:
    if not path.exists():
        raise DataFormatError(path, f"{what} is missing")
    if not path.is_file():
        raise DataFormatError(path, f"{what} is not a regular file")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise DataFormatError(
            path, f"{what} is not a readable image (empty, corrupt or an unknown format)"
        ) from None
    except Image.DecompressionBombError as e:
        raise DataFormatError(path, f"{what} is far too large to decode ({e})") from None
    except Exception as e:  # noqa: BLE001 - any failure to parse the header
        raise DataFormatError(path, f"{what} cannot be opened ({type(e).__name__}: {e})") from None


def _header(path: Path, what: str, max_side: int | None, ok_modes: set[str]) -> ImageInfo:
    with _open(path, what) as im:
        info = ImageInfo(path, im.width, im.height, im.mode, im.format)
    if info.mode in _WIDE_MODES or info.mode.startswith("I;16"):
        raise DataFormatError(
            path,
            f"{what} has 16/32-bit samples (PIL mode {info.mode}); only 8-bit files are "
            "supported because the value range is ambiguous; convert it to 8 bits first",
        )
    depth = png_bit_depth(path)
    if depth == 16:
        raise DataFormatError(
            path,
            f"{what} is a 16-bit PNG (PIL mode {info.mode}); only 8-bit files are supported "
            "(PIL would silently drop the low byte); convert it to 8 bits first",
        )
    if info.mode not in ok_modes:
        raise DataFormatError(
            path, f"{what} has unsupported image mode {info.mode!r} (format {info.format})"
        )
    if info.width < 1 or info.height < 1:
        raise DataFormatError(path, f"{what} is empty ({info.width}x{info.height})")
    if max_side is not None and max(info.width, info.height) > max_side:
        raise DataFormatError(
            path,
            f"{what} is {info.width}x{info.height} (WxH), larger than the supported "
            f"{max_side} pixels per side (the model pads images to a {MAX_SIDE}x{MAX_SIDE} "
            "canvas); downscale it, together with its labels",
        )
    return info


def probe_image(
    path: os.PathLike | str, *, max_side: int | None = MAX_SIDE, what: str = "image"
) -> ImageInfo:
    """Header-only check of a photo (see the module docstring); returns its ImageInfo."""
    return _header(Path(path), what, max_side, _PHOTO_MODES_OK)


def probe_gray(
    path: os.PathLike | str,
    *,
    max_side: int | None = MAX_SIDE,
    what: str = "label map",
    palette: Literal["gray", "index"] = "gray",
) -> ImageInfo:
    """Header-only check of an 8-bit gray map (soft label map, mask or class map)."""
    path = Path(path)
    info = _header(path, what, max_side, _GRAY_MODES_OK)
    if palette == "index":
        depth = png_bit_depth(path)
        if depth is not None and depth < 8 and info.mode != "P":
            raise DataFormatError(
                path,
                f"{what} is a {depth}-bit grayscale PNG; class-index maps must be 8-bit "
                "(L or P) because lower bit depths are rescaled on decoding",
            )
    return info


def _load(im: Image.Image, path: Path, what: str) -> None:
    try:
        im.load()
    except Exception as e:  # noqa: BLE001 - any decoder failure means bad data
        raise DataFormatError(path, f"{what} has corrupt or truncated image data ({e})") from None


def _drop_opaque_alpha(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    alpha = arr[..., -1]
    if alpha.min() != 255:
        n = int((alpha != 255).sum())
        raise DataFormatError(
            path,
            f"{what} has an alpha channel with {n} transparent or semi-transparent "
            "pixel(s); there is no defined background to composite on, so it is refused "
            "(flatten it to RGB first)",
        )
    return arr[..., :-1]


def read_image_rgb(
    path: os.PathLike | str, *, max_side: int | None = MAX_SIDE, what: str = "image"
) -> np.ndarray:
    """Decode a photo strictly into uint8 (H, W, 3) RGB (policy in the module docstring)."""
    path = Path(path)
    info = probe_image(path, max_side=max_side, what=what)
    with _open(path, what) as im:
        _load(im, path, what)
        mode = im.mode
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            mode = im.mode
        elif mode == "PA":
            im = im.convert("RGBA")
            mode = "RGBA"
        if mode == "RGB":
            arr = np.asarray(im, dtype=np.uint8)
        elif mode in ("RGBA", "LA"):
            arr = _drop_opaque_alpha(np.asarray(im, dtype=np.uint8), path, what)
            if mode == "LA":
                arr = np.repeat(arr, 3, axis=-1)
        elif mode in ("L", "1", "CMYK", "YCbCr", "RGBX"):
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        else:  # pragma: no cover - probe_image refuses the rest
            raise DataFormatError(path, f"{what} has unsupported image mode {info.mode!r}")
    arr = np.ascontiguousarray(arr)
    if arr.shape != (info.height, info.width, 3):  # pragma: no cover - defensive
        raise DataFormatError(path, f"{what} decoded to unexpected shape {arr.shape}")
    return arr


def read_gray(
    path: os.PathLike | str,
    *,
    max_side: int | None = MAX_SIDE,
    what: str = "label map",
    palette: Literal["gray", "index"] = "gray",
) -> np.ndarray:
    """Decode an 8-bit gray map strictly into uint8 (H, W) (policy in the module docstring)."""
    path = Path(path)
    info = probe_gray(path, max_side=max_side, what=what, palette=palette)
    with _open(path, what) as im:
        _load(im, path, what)
        mode = im.mode
        if mode == "L":
            arr = np.asarray(im, dtype=np.uint8)
        elif mode == "1":
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
        elif mode == "P":
            idx = np.asarray(im, dtype=np.uint8)
            if palette == "index":
                arr = idx
            else:
                pal = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
                used = np.unique(idx)
                if used.size and int(used.max()) >= len(pal):
                    raise DataFormatError(path, f"{what} uses palette entries it does not define")
                colours = pal[used]
                if not np.all((colours[:, 0] == colours[:, 1]) & (colours[:, 1] == colours[:, 2])):
                    raise DataFormatError(
                        path,
                        f"{what} is a palette image with non-gray colours; expected an 8-bit "
                        "grayscale map",
                    )
                arr = pal[:, 0][idx]
        elif mode in ("RGB", "RGBA", "LA", "RGBX"):
            full = np.asarray(im, dtype=np.uint8)
            if mode in ("RGBA", "LA"):
                full = _drop_opaque_alpha(full, path, what)
            elif mode == "RGBX":
                full = full[..., :3]
            if full.shape[-1] > 1 and not np.all(full == full[..., :1]):
                raise DataFormatError(
                    path,
                    f"{what} is a colour image (PIL mode {mode}) whose channels differ; "
                    "expected an 8-bit grayscale map",
                )
            arr = full[..., 0]
        else:  # pragma: no cover - probe_gray refuses the rest
            raise DataFormatError(path, f"{what} has unsupported image mode {info.mode!r}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.shape != info.shape:  # pragma: no cover - defensive
        raise DataFormatError(path, f"{what} decoded to unexpected shape {arr.shape}")
    return arr


def check_same_size(
    label: ImageInfo, image: ImageInfo, *, what: str = "label map"
) -> None:
    """Raise if a label map's size differs from its image's size."""
    if label.size != image.size:
        raise DataFormatError(
            label.path,
            f"{what} is {label.width}x{label.height} (WxH) but its image {image.path.name} "
            f"is {image.width}x{image.height}; they must have the same size",
        )
