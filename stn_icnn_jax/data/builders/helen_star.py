"""TFDS builder ``helen_star``: the relabelled HELEN* set.

Layout of the release (``helenstar_release``)::

    train/NAME_image.jpg   train/NAME_label.png   (train/NAME_viz.jpg is ignored)
    test/NAME_image.jpg    test/NAME_label.png

``NAME_label.png`` is an 8-bit class-index map with values 0..10 in Smith order
(0 background, 1 face skin, 2 l-brow, 3 r-brow, 4 l-eye, 5 r-eye, 6 nose, 7 u-lip,
8 i-mouth, 9 l-lip, 10 hair); a palette PNG is read by its indices. Each record gets
one-hot ``soft_labels`` (255 on the labelled class, 0 elsewhere) and ``label`` computed
from them exactly as for ``helen`` (which, for one-hot maps, equals mapping the class
values through ``taxonomy.SMITH_TO_CLASS`` / ``SMITH_TO_SKIN_HAIR``).

**Left and right: not verified here.** HELEN* keeps Smith's class order and names
(2 left brow, 4 left eye) and, like ``helen``, nothing the project could find says whose
left that is (nothing found states it; what turned up only swaps the pairs on flips, which
holds in either convention), and no copy is available here to measure. The default configs keep the
values as named (2/4 -> the image-left classes 1 and 3); ``nine_class_swap_lr`` /
``with_skin_hair_swap_lr`` exchange 2<->3 and 4<->5. Check one built frontal face
(``np.nonzero(record["label"] == 1)[1].mean()`` should be below half the width) and
rebuild with a ``*_swap_lr`` config if it is not. See ``helen`` for the sources searched.

Splits (HELEN* has no official validation split):

* ``test``: every ``test/`` sample, sorted by name.
* ``validation``: the last ``ceil(n / 10)`` of the ``n`` sorted ``train/`` names, held
  out deterministically (e.g. 200 if ``train/`` holds 2000 samples).
* ``train``: the other sorted ``train/`` names (e.g. 1800 of 2000).

The full official train set is ``split="train+validation"``.

Checks before anything is written: both folders exist, every ``*_image.jpg`` has its
``*_label.png`` and vice versa, files are supported images (``image_io``), images are at
most ``max_side`` per side and label maps have their image's size. Label values above 10
are found while writing and abort the build (TFDS removes its ``incomplete.*`` dir).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from stn_icnn_jax import taxonomy
from stn_icnn_jax.data.builders import common
from stn_icnn_jax.data import labels as labels_lib
from stn_icnn_jax.data.image_io import (
    DataFormatError,
    check_same_size,
    probe_gray,
    probe_image,
    raise_problems,
    read_gray,
    read_image_rgb,
)

FOLDER = "helenstar_release"
IMAGE_SUFFIX = "_image.jpg"
LABEL_SUFFIX = "_label.png"
IGNORED_SUFFIXES = ("_viz.jpg", "_viz.png")


def list_samples(folder: Path) -> tuple[list[str], list[DataFormatError]]:
    """Sorted sample names in one HELEN* folder, plus pairing problems."""
    images, labs = set(), set()
    for p in folder.iterdir():
        n = p.name
        if n.startswith("."):
            continue
        if n.endswith(IMAGE_SUFFIX):
            images.add(n[: -len(IMAGE_SUFFIX)])
        elif n.endswith(LABEL_SUFFIX):
            labs.add(n[: -len(LABEL_SUFFIX)])
    problems = [
        DataFormatError(folder / f"{n}{LABEL_SUFFIX}", f"label file is missing (its image {n}{IMAGE_SUFFIX} exists)")
        for n in sorted(images - labs)
    ] + [
        DataFormatError(folder / f"{n}{IMAGE_SUFFIX}", f"image is missing (its label {n}{LABEL_SUFFIX} exists)")
        for n in sorted(labs - images)
    ]
    return sorted(images & labs), problems


def split_train_validation(names: list[str]) -> tuple[list[str], list[str]]:
    """(train, validation): validation = the last ceil(n/10) of the sorted names."""
    names = sorted(names)
    n_val = math.ceil(len(names) / 10)
    return names[: len(names) - n_val], names[len(names) - n_val :]


def read_sample(folder: Path, name: str, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample: image (H, W, 3) and one-hot soft labels (H, W, 11)."""
    img_path = folder / f"{name}{IMAGE_SUFFIX}"
    lab_path = folder / f"{name}{LABEL_SUFFIX}"
    image = read_image_rgb(img_path, max_side=max_side)
    classes = read_gray(lab_path, max_side=None, palette="index")
    if classes.shape != image.shape[:2]:
        raise DataFormatError(
            lab_path,
            f"label map is {classes.shape[1]}x{classes.shape[0]} (WxH) but its image is "
            f"{image.shape[1]}x{image.shape[0]}",
        )
    top = int(classes.max())
    if top >= taxonomy.NUM_SMITH_CLASSES:
        bad = sorted(int(v) for v in np.unique(classes) if v >= taxonomy.NUM_SMITH_CLASSES)
        raise DataFormatError(
            lab_path,
            f"label map has class value(s) {bad[:10]}; HELEN* labels must be 0..10 "
            "(Smith order)",
        )
    return image, labels_lib.one_hot_soft(classes)


class HelenStar(common.FaceParsingBuilder):
    """Relabelled HELEN* (train/test folders; validation held out from train)."""

    name = "helen_star"
    BUILDER_CONFIGS = common.standard_configs(side_switch=True)
    DEFAULT_CONFIG_NAME = "nine_class"
    _DESCRIPTION = __doc__
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
HELEN* (relabelled HELEN, Lin et al., "Face Parsing with RoI Tanh-Warping", CVPR 2019).
Download helenstar_release.zip (linked from the authors' Relabeled-HELEN page), unzip it
and put the folder {FOLDER}/ into the manual directory (--manual_dir DIR):

  DIR/{FOLDER}/train/NAME_image.jpg   DIR/{FOLDER}/train/NAME_label.png
  DIR/{FOLDER}/test/NAME_image.jpg    DIR/{FOLDER}/test/NAME_label.png

(*_viz.jpg files are ignored; DIR may also be the {FOLDER} folder itself.) Label PNGs hold
class values 0..10 in Smith order. Then run
  stn-icnn data build helen_star --manual_dir DIR [--config nine_class|with_skin_hair]
Class 2/4 (left brow/eye) are taken to be on the image's left; this is not verified.
Check one built frontal face (label 1 should lie in the left half of the image) and if it
does not, rebuild with --config nine_class_swap_lr (or with_skin_hair_swap_lr).
"""

    def _split_generators(self, dl_manager):
        root = self._manual_root(dl_manager, FOLDER, ("train", "test"))
        problems: list[DataFormatError] = []
        found: dict[str, list[str]] = {}
        for sub in ("train", "test"):
            names, probs = list_samples(root / sub)
            problems.extend(probs)
            if not names and not probs:
                problems.append(
                    DataFormatError(root / sub, f"folder has no NAME{IMAGE_SUFFIX} files")
                )
            found[sub] = names
        train, val = split_train_validation(found["train"])
        if found["train"] and (not train or not val):
            problems.append(
                DataFormatError(
                    root / "train",
                    f"needs at least 2 samples to hold out a validation split, found "
                    f"{len(found['train'])}",
                )
            )
        todo = [(sub, n) for sub in ("train", "test") for n in found[sub]]
        for sub, n in common.progress(
            todo, desc="Checking HELEN* files", enabled=self.show_progress
        ):
            folder = root / sub
            try:
                img = probe_image(folder / f"{n}{IMAGE_SUFFIX}", max_side=self.max_side)
            except DataFormatError as e:
                problems.append(e)
                img = None
            try:
                lab = probe_gray(folder / f"{n}{LABEL_SUFFIX}", max_side=None, palette="index")
                if img is not None:
                    check_same_size(lab, img)
            except DataFormatError as e:
                problems.append(e)
        raise_problems(problems)
        return {
            "train": self._generate_examples(folder=root / "train", names=train),
            "validation": self._generate_examples(folder=root / "train", names=val),
            "test": self._generate_examples(folder=root / "test", names=found["test"]),
        }

    def _generate_examples(self, folder: Path, names: list[str]) -> Iterator:
        for name in names:
            image, soft = read_sample(folder, name, self.max_side)
            yield name, self.record(name, image, soft)
