"""``parse`` / ``parse_many``: label maps for anyone's photos.

    import stn_icnn_jax
    labels = stn_icnn_jax.parse("me.jpg")          # (H, W) int32, 9 classes
    maps = stn_icnn_jax.parse_many(["a.jpg", "b.png"], weights="helen.stnw")

Each photo is read (:mod:`.images`: EXIF orientation, modes), its faces are found and
framed like the training faces (:mod:`.framing`), every frame of every photo is parsed
in fixed-size batches by one jitted function compiled once per canvas bucket
(:mod:`.parser`), and the labels are pasted back at the photo's own size.
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from stn_icnn_jax import weights as weights_lib
from stn_icnn_jax.photo import framing, images
from stn_icnn_jax.photo.parser import Parser

#: The bundled default weights, package data of ``stn_icnn_jax.default_weights``.
DEFAULT_WEIGHTS_NAME = "default.stnw"


class NoFaceWarning(UserWarning):
    """No face was found in a photo (it was parsed whole, or skipped)."""


@dataclasses.dataclass(frozen=True)
class ParseInfo:
    """What happened to one photo: ``faces`` found, the ``frames`` parsed (photo
    coordinates) and whether the whole image was parsed for lack of a face."""

    faces: int
    frames: tuple[framing.Frame, ...]
    whole_image: bool


def default_weights_path() -> Path:
    """Path of the bundled weights; a clear error if this install has none."""
    path = Path(str(resources.files("stn_icnn_jax") / "default_weights" / DEFAULT_WEIGHTS_NAME))
    if not path.is_file():
        raise weights_lib.WeightsFileError(
            f"{path}: the bundled default weights are missing from this install of "
            "stn-icnn-jax; pass weights=FILE (--weights FILE) with a trained weights file")
    return path


_PARSERS_BY_PATH: dict[tuple[str, float], Parser] = {}
_PARSERS_BY_ID: dict[int, Parser] = {}


def get_parser(weights=None, batch_size: int = 4, max_side: int | None = None) -> Parser:
    """A (cached) :class:`Parser` for ``weights``: None (the bundled default), a path,
    a loaded :class:`~stn_icnn_jax.weights.Weights` or a ``Parser``. Cached parsers keep
    their compiled functions, so repeated calls do not recompile. ``max_side``: see
    :class:`~stn_icnn_jax.photo.parser.Parser`."""
    if isinstance(weights, Parser):
        return weights
    if isinstance(weights, weights_lib.Weights):
        parser = _PARSERS_BY_ID.get(id(weights))
        if parser is None or (parser.batch_size, parser.max_side_arg) != (batch_size, max_side):
            parser = Parser(weights, batch_size=batch_size, max_side=max_side)
            _PARSERS_BY_ID[id(weights)] = parser
            weakref.finalize(weights, _PARSERS_BY_ID.pop, id(weights), None)
        return parser
    path = default_weights_path() if weights is None else Path(weights)
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0, batch_size, max_side)
    if key not in _PARSERS_BY_PATH:
        loaded = weights_lib.load(path)
        weights_lib.check_variables(loaded, path)
        _PARSERS_BY_PATH[key] = Parser(loaded, batch_size=batch_size, max_side=max_side)
    return _PARSERS_BY_PATH[key]


def parse_many(photos: Sequence[images.PhotoInput], weights=None, *, face_fallback: bool = True,
               batch_size: int = 4, return_info: bool = False):
    """Label maps of many photos, parsed together in batches.

    Args:
      photos: each a path, a PIL image or a uint8 array (see :mod:`.images`).
      weights: None (the bundled default weights), a weights file path, a loaded
        ``Weights`` or a ``Parser``.
      face_fallback: when no face is found, parse the whole image (True) or return all
        background (False); either way a :class:`NoFaceWarning` names the photo.
      batch_size: frames per compiled call.
      return_info: also return one :class:`ParseInfo` per photo.

    Returns:
      a list of (H_i, W_i) int32 maps, each at its photo's size as displayed (EXIF
      orientation applied): 0 background, 1/2 left/right brow, 3/4 left/right eye,
      5 nose, 6 upper lip, 7 inner mouth, 8 lower lip ("left" = the image's left);
      with ``return_info``, ``(maps, infos)``.

    The model is compiled once per canvas bucket (a few sizes, see
    :mod:`stn_icnn_jax.photo.parser`) and batch size, not once per photo size: the first
    call compiles (seconds to a minute on a CPU), later ones reuse it.
    """
    parser = get_parser(weights, batch_size)
    rgbs = [images.to_rgb(p) for p in photos]
    plans = []
    crops: list[np.ndarray] = []
    for photo, rgb in zip(photos, rgbs):
        frames, faces = framing.find_frames(rgb, parser.max_side, face_fallback)
        if not faces:
            what = "parsed the whole image" if face_fallback else "skipped (all background)"
            warnings.warn(f"{images.describe(photo)}: no face found; {what}", NoFaceWarning,
                          stacklevel=2)
        plans.append(ParseInfo(faces=faces, frames=tuple(frames), whole_image=not faces and bool(frames)))
        crops += [framing.crop(rgb, f) for f in frames]
    crop_labels = parser.parse_arrays(crops) if crops else []
    maps, k = [], 0
    for rgb, info in zip(rgbs, plans):
        n = len(info.frames)
        maps.append(framing.paste_frames(rgb.shape[:2], list(info.frames), crop_labels[k : k + n]))
        k += n
    return (maps, plans) if return_info else maps


def parse(photo: images.PhotoInput, weights=None, *, face_fallback: bool = True,
          return_info: bool = False):
    """The (H, W) int32 label map of one photo; see :func:`parse_many` (same arguments).
    For many photos call ``parse_many``: it batches them."""
    maps, infos = parse_many([photo], weights, face_fallback=face_fallback, batch_size=1,
                             return_info=True)
    return (maps[0], infos[0]) if return_info else maps[0]
