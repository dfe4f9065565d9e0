"""Shared pieces of the face-parsing TFDS builders: features, configs, base class.

Record format (every builder, ArrayRecord files, numpy-only features, no TensorFlow):

==============  =========================================  ==============================
feature         TFDS feature                               content
==============  =========================================  ==============================
``image``       Tensor((None, None, 3), uint8, zlib)       RGB photo
``soft_labels`` Tensor((None, None, 11), uint8, zlib)      Smith-order soft maps, 0..255
``label``       Tensor((None, None), uint8, zlib)          hard class map (9 classes, or
                                                           11 with skin and hair)
``name``        Text()                                     sample name; read back as
                                                           UTF-8 ``bytes`` by
                                                           ``tfds.data_source``
==============  =========================================  ==============================

``image``, ``soft_labels`` and ``label`` of one record always have the same height and
width. Records are stored in the builder's documented order (``disable_shuffling``), so
``tfds.data_source(...)[split][i]`` is deterministic; shuffle in the input pipeline.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from tqdm.auto import tqdm

from stn_icnn_jax import taxonomy
from stn_icnn_jax.data import labels as labels_lib
from stn_icnn_jax.data.image_io import MAX_SIDE, DataFormatError

PAPER_CITATION = """\
@article{yin2020stnicnn,
  title   = {End-to-End Face Parsing via Interlinked Convolutional Neural Networks},
  author  = {Yin, Zi and Yiu, Valentin and Hu, Xiaolin and Tang, Liang},
  journal = {arXiv preprint arXiv:2002.04831},
  year    = {2020},
}"""


@dataclasses.dataclass(eq=False)
class FaceParsingConfig(tfds.core.BuilderConfig):
    """A builder config: which hard-label layout the ``label`` feature uses.

    Attributes:
      keep_skin_hair: False -> 9-class label (skin and hair are background);
        True -> 11-class label (face skin = 9, hair = 10), see ``labels.skin_hair_label``.
      swap_left_right: exchange the dataset's left and right brow/eye channels
        (``labels.swap_sides_soft``) before anything else, for a dataset whose "left" is
        the person's left; the package's "left" is the image's left
        (``stn_icnn_jax.taxonomy``). Only the ``*_swap_lr`` configs set it.
    """

    keep_skin_hair: bool = False
    swap_left_right: bool = False


SWAP_LR_SUFFIX = "_swap_lr"


def standard_configs(side_switch: bool = False) -> list[FaceParsingConfig]:
    """``nine_class`` (default) and ``with_skin_hair`` (fresh instances per builder).

    With ``side_switch`` also ``nine_class_swap_lr`` and ``with_skin_hair_swap_lr``: the
    same with the dataset's left and right exchanged (for datasets whose side could not
    be verified; the user checks one image and picks the config).
    """
    configs = _base_configs()
    if side_switch:
        configs += [
            dataclasses.replace(
                c,
                name=c.name + SWAP_LR_SUFFIX,
                description=c.description + " The dataset's left and right brows and eyes are "
                "exchanged (its left taken as the person's left = the image's right).",
                swap_left_right=True,
            )
            for c in _base_configs()
        ]
    return configs


def _base_configs() -> list[FaceParsingConfig]:
    return [
        FaceParsingConfig(
            name="nine_class",
            description=(
                "label = the paper's 9 classes (0 background incl. face skin and hair, "
                "1 l-brow, 2 r-brow, 3 l-eye, 4 r-eye, 5 nose, 6 u-lip, 7 i-mouth, 8 l-lip; "
                "left = the image's left)."
            ),
            keep_skin_hair=False,
        ),
        FaceParsingConfig(
            name="with_skin_hair",
            description=(
                "label = the 9 classes plus 9 face skin and 10 hair (background pixels of "
                "the 9-class label split into background/skin/hair)."
            ),
            keep_skin_hair=True,
        ),
    ]


def features() -> tfds.features.FeaturesDict:
    """The common record features (see the module docstring)."""
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Tensor(
                shape=(None, None, 3), dtype=np.uint8, encoding="zlib"
            ),
            "soft_labels": tfds.features.Tensor(
                shape=(None, None, taxonomy.NUM_SMITH_CLASSES), dtype=np.uint8, encoding="zlib"
            ),
            "label": tfds.features.Tensor(shape=(None, None), dtype=np.uint8, encoding="zlib"),
            "name": tfds.features.Text(),
        }
    )


def make_record(
    name: str, image: np.ndarray, soft_labels: np.ndarray, keep_skin_hair: bool
) -> dict[str, Any]:
    """Assemble one record, checking shapes and dtypes, computing ``label``."""
    image = np.asarray(image)
    soft_labels = np.asarray(soft_labels)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"{name}: image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if soft_labels.dtype != np.uint8 or soft_labels.shape != image.shape[:2] + (
        taxonomy.NUM_SMITH_CLASSES,
    ):
        raise ValueError(
            f"{name}: soft_labels must be uint8 {image.shape[:2] + (11,)}, got "
            f"{soft_labels.dtype} {soft_labels.shape}"
        )
    return {
        "image": image,
        "soft_labels": soft_labels,
        "label": labels_lib.hard_label(soft_labels, keep_skin_hair),
        "name": name,
    }


def progress(iterable: Iterable, *, desc: str, total: int | None = None, enabled: bool = True):
    """A tqdm progress bar (or the bare iterable when disabled)."""
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit="file", leave=False)


class FaceParsingBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: common features, ArrayRecord by default, strict-input options.

    Args (besides the usual ``tfds.core.DatasetBuilder`` ones, e.g. ``data_dir``,
    ``config``):
      max_side: largest accepted image side (default 1024, the reference's canvas).
      show_progress: show tqdm bars while checking the input files.
      file_format: defaults to ``"array_record"`` (random access, no TensorFlow).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    _DESCRIPTION = ""
    _HOMEPAGE = ""
    _CITATION = PAPER_CITATION

    def __init__(
        self, *, max_side: int = MAX_SIDE, show_progress: bool = True, **kwargs: Any
    ) -> None:
        if kwargs.get("file_format") is None:
            kwargs["file_format"] = "array_record"
        self.max_side = int(max_side)
        self.show_progress = bool(show_progress)
        super().__init__(**kwargs)

    @property
    def keep_skin_hair(self) -> bool:
        cfg = self.builder_config
        return bool(getattr(cfg, "keep_skin_hair", False))

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self._DESCRIPTION,
            features=features(),
            supervised_keys=("image", "label"),
            homepage=self._HOMEPAGE or None,
            citation=self._CITATION,
            disable_shuffling=True,
        )

    @property
    def swap_left_right(self) -> bool:
        return bool(getattr(self.builder_config, "swap_left_right", False))

    def record(self, name: str, image: np.ndarray, soft_labels: np.ndarray) -> dict[str, Any]:
        if self.swap_left_right:
            soft_labels = labels_lib.swap_sides_soft(soft_labels)
        return make_record(name, image, soft_labels, self.keep_skin_hair)

    def _manual_root(self, dl_manager, folder: str, markers: tuple[str, ...]) -> Path:
        """The dataset root inside the manual dir: ``manual_dir/folder`` or ``manual_dir``.

        ``markers`` are entries (relative paths) that must exist in the root.
        """
        try:
            manual = Path(os.fspath(dl_manager.manual_dir))
        except AssertionError as e:  # TFDS: missing or empty manual dir
            path = getattr(dl_manager, "_manual_dir", None) or "manual_dir"
            raise DataFormatError(
                path,
                "manual directory is missing or empty. "
                + (self.MANUAL_DOWNLOAD_INSTRUCTIONS or str(e)),
            ) from None
        candidates = [manual / folder, manual]
        for root in candidates:
            if all((root / m).exists() for m in markers):
                return root
        inner = manual / folder
        root = inner if inner.is_dir() else manual
        missing = [m for m in markers if not (root / m).exists()]
        raise DataFormatError(
            root / missing[0],
            f"missing from the manual directory (expected {', '.join(markers)} in "
            f"{manual / folder} or directly in {manual}). {self.MANUAL_DOWNLOAD_INSTRUCTIONS}",
        )

    @abc.abstractmethod
    def _split_generators(self, dl_manager):  # pragma: no cover - abstract
        ...

    @abc.abstractmethod
    def _generate_examples(self, **kwargs) -> Iterator[tuple[str, dict[str, Any]]]:
        ...  # pragma: no cover - abstract
