"""The classes, parts and evaluated sets of face parsing: every other module imports them.

Three label layouts appear in this package:

* **Smith order (11 soft channels)**, the storage format of every dataset record
  (``soft_labels``, uint8, 0..255 = probability 0..1), after Smith et al. (CVPR 2013)::

      0 background  1 face skin  2 left eyebrow  3 right eyebrow  4 left eye
      5 right eye   6 nose       7 upper lip     8 inner mouth    9 lower lip  10 hair

* **The 9 classes** the model predicts and the paper's F1 scores (the authors' code uses
  the same layout, docs/authors-code.md §3.2)::

      0 background (incl. face skin and hair)  1 left brow  2 right brow  3 left eye
      4 right eye  5 nose  6 upper lip  7 inner mouth  8 lower lip

* **11 classes "with skin and hair"**: the 9 above plus ``9 face skin`` and ``10 hair``
  (the ``*_with_skin_hair`` dataset configs).

**Left and right (the one convention of the package).** "Left" is the IMAGE's left: the
left brow / left eye (Smith channels 2 and 4, 9-class labels 1 and 3, parts ``brow_L`` and
``eye_L``) are the ones with the smaller x coordinate, i.e. the person's own RIGHT brow and
eye in a frontal photo. This holds for every dataset record (``soft_labels`` and
``label``), every label map, the part order below, and the ``parse`` output and its legend
(which name classes by :data:`CLASS_NAMES`). Each builder maps its dataset to it:

* ``synthetic_faces``: drawn that way (``stn_icnn_jax.data.synthetic``).
* ``celebamask_hq``: CelebAMask-HQ's ``l_*`` parts are the person's left = the image's
  right (checked on the dataset's published demo masks, see the builder), so ``l_brow`` /
  ``l_eye`` become the RIGHT classes and ``r_*`` the left ones.
* ``helen`` and ``helen_star``: Smith's ``lbl02``/``lbl04`` (left brow/eye) are taken as
  named (= image left); this could not be verified here, so both builders have
  ``*_swap_lr`` configs that exchange the two sides (see their docstrings).

:func:`stn_icnn_jax.data.labels.mirror_label` is the horizontal flip of a label map in this
convention (flip the columns, then swap the left/right ids: :data:`CLASS_MIRROR`).

The six **parts** the STN crops, in the order used everywhere (theta rows, part models,
part centres): left brow, right brow, left eye, right eye, nose, mouth. Each part model
labels background plus the part's classes (the mouth: upper lip, inner mouth, lower lip).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

# ----------------------------------------------------------------------- Smith channels
#: Smith et al. channel names, in storage order (``soft_labels[..., i]``).
SMITH_CLASS_NAMES: tuple[str, ...] = (
    "background",
    "face_skin",
    "left_eyebrow",
    "right_eyebrow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
NUM_SMITH_CLASSES = len(SMITH_CLASS_NAMES)  # 11
#: Smith channels of the eight facial classes, in 9-class order 1..8.
SMITH_PART_CHANNELS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9)
SMITH_SKIN_CHANNEL = 1
SMITH_HAIR_CHANNEL = 10

# ----------------------------------------------------------------------- the model's classes
#: The model's 9 classes. Index = hard label value.
CLASS_NAMES: tuple[str, ...] = ("background",) + tuple(
    SMITH_CLASS_NAMES[c] for c in SMITH_PART_CHANNELS
)
NUM_CLASSES = len(CLASS_NAMES)  # 9
#: The 11-class layout of the ``with_skin_hair`` configs: 9 classes + skin (9) + hair (10).
SKIN_HAIR_CLASS_NAMES: tuple[str, ...] = CLASS_NAMES + ("face_skin", "hair")

#: Hard Smith class (0..10) -> 9-class label (skin and hair -> background).
SMITH_TO_CLASS = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0], dtype=np.uint8)
#: Hard Smith class (0..10) -> 11-class "with skin and hair" label.
SMITH_TO_SKIN_HAIR = np.array([0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 10], dtype=np.uint8)

#: Left/right exchange of the Smith channels (2 <-> 3, 4 <-> 5; the rest unchanged).
SMITH_MIRROR: tuple[int, ...] = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10)
#: Left/right exchange of the hard labels (1 <-> 2, 3 <-> 4; 9-class and 11-class layouts).
CLASS_MIRROR: tuple[int, ...] = (0, 2, 1, 4, 3, 5, 6, 7, 8, 9, 10)

# ----------------------------------------------------------------------- parts
PART_NAMES: tuple[str, ...] = ("brow_L", "brow_R", "eye_L", "eye_R", "nose", "mouth")
NUM_PARTS = len(PART_NAMES)
#: 9-class indices that make up each part, in PART_NAMES order.
PART_CLASSES: tuple[tuple[int, ...], ...] = ((1,), (2,), (3,), (4,), (5,), (6, 7, 8))
#: Labels of each part model: background + the part's classes, in PART_NAMES order.
PART_NUM_LABELS: tuple[int, ...] = tuple(1 + len(c) for c in PART_CLASSES)  # (2,2,2,2,2,4)

# ----------------------------------------------------------------------- evaluation
#: The evaluated class sets of the paper's Table 2, in its column order. Confusions
#: inside a set count as hits (a left eye predicted as right eye counts for "eyes").
F1_SETS: Mapping[str, tuple[int, ...]] = {
    "eyes": (3, 4),
    "brows": (1, 2),
    "nose": (5,),
    "inner_mouth": (7,),
    "upper_lip": (6,),
    "lower_lip": (8,),
    "mouth": (6, 7, 8),
    "overall": (1, 2, 3, 4, 5, 6, 7, 8),
}

# ----------------------------------------------------------------------- colours
#: RGB colour of each Smith channel, for overlays and legends.
SMITH_PALETTE = np.array(
    [
        (0, 0, 0),  # background
        (255, 200, 150),  # face skin
        (120, 60, 0),  # left brow
        (200, 120, 40),  # right brow
        (0, 90, 255),  # left eye
        (0, 220, 255),  # right eye
        (0, 200, 0),  # nose
        (255, 0, 80),  # upper lip
        (120, 0, 160),  # inner mouth
        (255, 110, 180),  # lower lip
        (140, 90, 40),  # hair
    ],
    np.uint8,
)
#: RGB colour of each of the 9 classes (the same colours as their Smith channels).
PALETTE = SMITH_PALETTE[[0, *SMITH_PART_CHANNELS]]


def class_names(keep_skin_hair: bool = False) -> tuple[str, ...]:
    """Names of the hard-label classes (index = label value): 9, or 11 with skin and hair."""
    return SKIN_HAIR_CLASS_NAMES if keep_skin_hair else CLASS_NAMES
