"""TFDS builder ``synthetic_faces``: generated faces with exact labels (no download).

Each record is ``stn_icnn_jax.data.synthetic.generate_face(seed)`` with the default
``SyntheticFaceConfig()``: its ``image`` and ``soft_labels`` (Smith order) are stored as
they come, ``label`` is computed from ``soft_labels`` as for ``helen``.

Seeds are deterministic and disjoint per split: sample ``i`` of split ``s`` uses
``seed = SPLIT_SEED_OFFSET[s] + i`` with offsets train 0, validation 1,000,000,
test 2,000,000 (so a split may hold at most 1,000,000 samples). The same seed gives the
same face in every config, so ``tiny`` is a prefix of ``default`` split by split.

Configs (sizes train / validation / test):

* ``default``: 2000 / 230 / 100 (HELEN's sizes), 9-class label.
* ``default_with_skin_hair``: as ``default``, 11-class label (skin 9, hair 10).
* ``small``: 200 / 50 / 50.
* ``tiny``: 16 / 4 / 4 (smoke tests).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import numpy as np

from stn_icnn_jax.data.builders import common
from stn_icnn_jax.data.image_io import DataFormatError

SPLIT_SEED_OFFSET: dict[str, int] = {"train": 0, "validation": 1_000_000, "test": 2_000_000}
MAX_PER_SPLIT = 1_000_000


def seed_for(split: str, index: int) -> int:
    """The generator seed of sample ``index`` of ``split``."""
    if not 0 <= index < MAX_PER_SPLIT:
        raise ValueError(f"sample index {index} out of range [0, {MAX_PER_SPLIT})")
    return SPLIT_SEED_OFFSET[split] + index


def _face_generator() -> Callable[[int], dict[str, Any]]:
    """``seed -> generate_face(seed, SyntheticFaceConfig())`` (imported lazily)."""
    from stn_icnn_jax.data.synthetic import SyntheticFaceConfig, generate_face

    cfg = SyntheticFaceConfig()
    return lambda seed: generate_face(seed, cfg)


@dataclasses.dataclass(eq=False)
class SyntheticConfig(common.FaceParsingConfig):
    """Split sizes of a synthetic config (+ the label layout from FaceParsingConfig)."""

    num_train: int = 2000
    num_validation: int = 230
    num_test: int = 100

    def sizes(self) -> dict[str, int]:
        return {
            "train": self.num_train,
            "validation": self.num_validation,
            "test": self.num_test,
        }


def synthetic_configs() -> list[SyntheticConfig]:
    return [
        SyntheticConfig(
            name="default",
            description="2000 / 230 / 100 faces (HELEN's split sizes), 9-class label.",
        ),
        SyntheticConfig(
            name="default_with_skin_hair",
            description="2000 / 230 / 100 faces, 11-class label (skin 9, hair 10).",
            keep_skin_hair=True,
        ),
        SyntheticConfig(
            name="small",
            description="200 / 50 / 50 faces, 9-class label.",
            num_train=200,
            num_validation=50,
            num_test=50,
        ),
        SyntheticConfig(
            name="tiny",
            description="16 / 4 / 4 faces, 9-class label (smoke tests).",
            num_train=16,
            num_validation=4,
            num_test=4,
        ),
    ]


class SyntheticFaces(common.FaceParsingBuilder):
    """Synthetic faces with exact soft labels, deterministic per-split seeds."""

    name = "synthetic_faces"
    BUILDER_CONFIGS = synthetic_configs()
    DEFAULT_CONFIG_NAME = "default"
    _DESCRIPTION = __doc__

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        for split, n in cfg.sizes().items():
            if not 1 <= n <= MAX_PER_SPLIT:
                raise ValueError(
                    f"synthetic_faces/{cfg.name}: split {split} size {n} must be in "
                    f"[1, {MAX_PER_SPLIT}]"
                )
        generate = _face_generator()
        return {
            split: self._generate_examples(split=split, num=n, generate=generate)
            for split, n in cfg.sizes().items()
        }

    def _generate_examples(self, split: str, num: int, generate) -> Iterator:
        for i in range(num):
            seed = seed_for(split, i)
            name = f"seed_{seed}"
            face = generate(seed)
            image = np.asarray(face["image"])
            soft = np.asarray(face["soft_labels"])
            if max(image.shape[:2]) > self.max_side:
                raise DataFormatError(
                    f"<synthetic seed {seed}>",
                    f"generated image is {image.shape[1]}x{image.shape[0]}, larger than "
                    f"{self.max_side} per side",
                )
            yield name, self.record(name, image, soft)
