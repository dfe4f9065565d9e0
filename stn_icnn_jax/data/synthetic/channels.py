"""Named indices of the 11 soft-label channels, in the order of
:data:`stn_icnn_jax.taxonomy.SMITH_CLASS_NAMES` (HELEN's, Smith et al., CVPR 2013).

"Left" is the IMAGE's left: ``LEFT_BROW`` / ``LEFT_EYE`` are the ones with the smaller x.
"""

from __future__ import annotations

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
