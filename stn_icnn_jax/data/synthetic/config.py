"""The knobs of the synthetic face generator: sizes, pose ranges and probabilities."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SyntheticFaceConfig:
    """Ranges and probabilities of the generator (all sides in pixels).

    Sizes: each image side is in ``[min_size, max_size]``; with probability
    ``square_prob`` the image is square, otherwise the aspect ratio (h/w) is drawn up to
    ``max_aspect`` either way (portrait more often). ``head_frac`` is the crown-to-chin
    height of the head as a fraction of the smaller image side.
    """

    min_size: int = 200
    max_size: int = 600
    square_prob: float = 0.3
    max_aspect: float = 1.5
    head_frac: tuple[float, float] = (0.42, 0.85)
    max_center_shift: float = 0.12  # fraction of the image side
    max_rotation_deg: float = 25.0  # in-plane rotation of the head (camera roll + tilt)
    max_yaw_deg: float = 25.0
    mouth_open_prob: float = 0.45
    eyes_closed_prob: float = 0.08
    wink_prob: float = 0.03
    glasses_prob: float = 0.2
    hat_prob: float = 0.06
    occluder_prob: float = 0.25
    hand_fraction: float = 0.5  # of the occluders
    fringe_prob: float = 0.35  # hair over the forehead (may hide brows)
    facial_hair_prob: float = 0.45  # of masculine faces
    makeup_prob: float = 0.5  # of feminine faces
    distractor_prob: float = 0.3  # skin-coloured blobs in the background
    blur_prob: float = 0.3
    max_blur_sigma: float = 1.8
    motion_blur_prob: float = 0.05
    noise_prob: float = 0.6
    max_noise_sigma: float = 0.035  # of the 0..1 range
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[int, int] = (35, 95)
    supersample: int = 4

    def __post_init__(self):
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError(f"bad size range [{self.min_size}, {self.max_size}]")
        if not 0 <= self.max_rotation_deg < 90:
            raise ValueError("max_rotation_deg must be in [0, 90)")
        if not 0 <= self.max_yaw_deg <= 45:
            raise ValueError("max_yaw_deg must be in [0, 45]")
        if not 1 <= self.supersample <= 8:
            raise ValueError("supersample must be in [1, 8]")
