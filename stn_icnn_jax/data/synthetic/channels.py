"""The 11 soft-label channels, in HELEN's (Smith et al., CVPR 2013) order.

"Left" is the IMAGE's left: ``LEFT_BROW`` / ``LEFT_EYE`` are the ones with the smaller x.
"""

from __future__ import annotations

from stn_icnn_jax.data.labels import NUM_SMITH_CLASSES, SMITH_CLASS_NAMES

CLASS_NAMES: tuple[str, ...] = SMITH_CLASS_NAMES
NUM_CLASSES = NUM_SMITH_CLASSES
(
    BACKGROUND,
    SKIN,
    LEFT_BROW,
    RIGHT_BROW,
    LEFT_EYE,
    RIGHT_EYE,
    NOSE,
    UPPER_LIP,
    INNER_MOUTH,
    LOWER_LIP,
    HAIR,
) = range(11)
