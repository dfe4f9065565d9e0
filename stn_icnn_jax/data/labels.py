"""Conversions between the label encodings (Smith soft channels -> class labels).

The layouts (Smith's 11 soft channels, the model's 9 classes, the 11 classes with skin
and hair) are defined in :mod:`stn_icnn_jax.taxonomy`. Conversions:

* 9-class soft form: ``[clip(255 - sum(ch 2..9)), ch 2..9]`` (the Smith background map
  ``ch 0``, skin and hair are not used); its hard label is the argmax of those nine
  channels with ties going to the lower index (``np.argmax`` semantics).
* 11-class "with skin and hair" hard label *refines* the 9-class label: a pixel whose
  9-class label is a part keeps it; a pixel whose 9-class label is background becomes
  the argmax of ``[clip(255 - sum(ch 1..10)), skin, hair]`` mapped to ``0 / 9 / 10``
  (ties to the lower index, so background beats skin beats hair). Therefore merging
  classes 9 and 10 back into 0 gives exactly the 9-class label.

Left/right (convention in :mod:`stn_icnn_jax.taxonomy`: "left" = the image's left):
:func:`swap_sides_soft` exchanges the left/right Smith channels in place (a dataset whose
sides are named the other way); :func:`mirror_label` / :func:`mirror_soft` are the
horizontal flip of a labelled face (columns reversed AND left/right ids exchanged, so the
left classes stay on the image's left).

All functions are pure numpy, work on any leading batch shape (channels last), and
compute sums in int32 (no uint8 overflow).
"""

from __future__ import annotations

import numpy as np

from stn_icnn_jax.taxonomy import (
    CLASS_MIRROR,
    NUM_SMITH_CLASSES,
    SMITH_MIRROR,
    SMITH_HAIR_CHANNEL,
    SMITH_PART_CHANNELS,
    SMITH_SKIN_CHANNEL,
    SMITH_TO_CLASS,
    SMITH_TO_SKIN_HAIR,
)


def _check_soft(soft: np.ndarray) -> np.ndarray:
    soft = np.asarray(soft)
    if soft.shape[-1:] != (NUM_SMITH_CLASSES,):
        raise ValueError(
            f"soft labels must have {NUM_SMITH_CLASSES} channels (Smith order) in the last "
            f"axis, got shape {soft.shape}"
        )
    if soft.dtype != np.uint8:
        raise ValueError(f"soft labels must be uint8 (0..255), got dtype {soft.dtype}")
    return soft


def nine_channel_soft(soft: np.ndarray) -> np.ndarray:
    """Smith soft labels (..., 11) uint8 -> 9-class soft labels (..., 9) uint8.

    Channel 0 is ``clip(255 - sum(ch 2..9), 0, 255)``; channels 1..8 are Smith 2..9.
    """
    soft = _check_soft(soft)
    parts = soft[..., list(SMITH_PART_CHANNELS)]
    bg = np.clip(255 - parts.astype(np.int32).sum(axis=-1), 0, 255).astype(np.uint8)
    return np.concatenate([bg[..., None], parts], axis=-1)


def skin_hair_channel_soft(soft: np.ndarray) -> np.ndarray:
    """Smith soft labels (..., 11) -> 11-class soft labels (..., 11), with-skin-hair order.

    Channels: ``[clip(255 - sum(ch 1..10)), ch 2..9, skin, hair]``.
    """
    soft = _check_soft(soft)
    fg = soft[..., 1:].astype(np.int32).sum(axis=-1)
    bg = np.clip(255 - fg, 0, 255).astype(np.uint8)
    return np.concatenate(
        [bg[..., None], soft[..., list(SMITH_PART_CHANNELS)], soft[..., [SMITH_SKIN_CHANNEL, SMITH_HAIR_CHANNEL]]],
        axis=-1,
    )


def class_probs(
    soft: np.ndarray, keep_skin_hair: bool = False, dtype=np.float32
) -> np.ndarray:
    """Soft class probabilities in [0, 1] for the 9-class (or 11-class) layout."""
    chans = skin_hair_channel_soft(soft) if keep_skin_hair else nine_channel_soft(soft)
    return chans.astype(dtype) / dtype(255.0)


def nine_class_label(soft: np.ndarray) -> np.ndarray:
    """Smith soft labels (..., 11) -> 9-class hard label (...) uint8 (argmax, ties low)."""
    return np.argmax(nine_channel_soft(soft), axis=-1).astype(np.uint8)


def skin_hair_label(soft: np.ndarray) -> np.ndarray:
    """Smith soft labels (..., 11) -> 11-class hard label (...) uint8.

    Refines :func:`nine_class_label`: background pixels are split into background (0),
    face skin (9) and hair (10) by the argmax of
    ``[clip(255 - sum(ch 1..10)), skin, hair]`` (ties to the lower index).
    """
    soft = _check_soft(soft)
    nine = nine_class_label(soft)
    rest = np.stack(
        [
            np.clip(255 - soft[..., 1:].astype(np.int32).sum(axis=-1), 0, 255),
            soft[..., SMITH_SKIN_CHANNEL].astype(np.int32),
            soft[..., SMITH_HAIR_CHANNEL].astype(np.int32),
        ],
        axis=-1,
    )
    sub = np.array([0, 9, 10], dtype=np.uint8)[np.argmax(rest, axis=-1)]
    return np.where(nine == 0, sub, nine).astype(np.uint8)


def hard_label(soft: np.ndarray, keep_skin_hair: bool = False) -> np.ndarray:
    """The record's ``label`` from its ``soft_labels``: 9-class, or 11 with skin+hair."""
    return skin_hair_label(soft) if keep_skin_hair else nine_class_label(soft)


def one_hot_soft(smith_hard: np.ndarray) -> np.ndarray:
    """Hard Smith class map (...) with values 0..10 -> one-hot soft labels (..., 11), 0/255."""
    smith_hard = np.asarray(smith_hard)
    if smith_hard.size and int(smith_hard.max()) >= NUM_SMITH_CLASSES:
        raise ValueError(
            f"Smith class values must be 0..{NUM_SMITH_CLASSES - 1}, got {int(smith_hard.max())}"
        )
    eye = np.eye(NUM_SMITH_CLASSES, dtype=np.uint8) * np.uint8(255)
    return eye[smith_hard.astype(np.intp)]


def smith_to_label(smith_hard: np.ndarray, keep_skin_hair: bool = False) -> np.ndarray:
    """Hard Smith class map -> hard label of the chosen layout (a look-up table).

    Equal to ``hard_label(one_hot_soft(smith_hard), keep_skin_hair)``.
    """
    lut = SMITH_TO_SKIN_HAIR if keep_skin_hair else SMITH_TO_CLASS
    return lut[np.asarray(smith_hard).astype(np.intp)]


def label_to_smith(label: np.ndarray) -> np.ndarray:
    """9-class hard label (...) -> hard Smith class map (background 0, each facial class to
    its Smith channel): the inverse of :func:`smith_to_label` on the facial classes, e.g.
    to turn a hand-labelled map into dataset records with ``one_hot_soft``."""
    lut = np.array((0, *SMITH_PART_CHANNELS), np.uint8)
    return lut[np.asarray(label).astype(np.intp)]


def swap_sides_soft(soft: np.ndarray) -> np.ndarray:
    """Smith soft labels (..., 11) with left and right exchanged (channels 2<->3, 4<->5).

    No pixel moves: only the names of the brow and eye channels are swapped.
    """
    return _check_soft(soft)[..., list(SMITH_MIRROR)]


def mirror_soft(soft: np.ndarray) -> np.ndarray:
    """Horizontal flip of Smith soft labels (..., H, W, 11) in the package's convention.

    The columns are reversed and the left/right channels exchanged, so the result is the
    label of the mirrored photo (``image[..., ::-1, :]``).
    """
    return swap_sides_soft(soft)[..., ::-1, :]


def mirror_label(label: np.ndarray) -> np.ndarray:
    """Horizontal flip of a hard label map (..., H, W) in the package's convention.

    The columns are reversed and the left/right ids exchanged (1 <-> 2, 3 <-> 4; 0 and
    5..10 unchanged), for the 9-class and the 11-class layout. So the label of the
    mirrored photo (``image[..., ::-1, :]``) has its left classes on the image's left
    again, and ``mirror_label(mirror_label(x)) == x``.
    """
    label = np.asarray(label)
    if label.size and int(label.max()) >= len(CLASS_MIRROR):
        raise ValueError(f"class values must be 0..{len(CLASS_MIRROR) - 1}, got {int(label.max())}")
    lut = np.asarray(CLASS_MIRROR, dtype=label.dtype)
    return lut[label.astype(np.intp)][..., ::-1]
