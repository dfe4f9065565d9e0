"""TFDS builder ``celebamask_hq``: CelebAMask-HQ mapped to the HELEN classes.

Layout of the release (``CelebAMask-HQ.zip``)::

    CelebAMask-HQ/
      CelebA-HQ-img/N.jpg                                  N = 0..29999, 1024x1024
      CelebAMask-HQ-mask-anno/K/NNNNN_<part>.png           K = N // 2000, NNNNN = N
                                                           zero-padded to 5 digits,
                                                           binary masks, 512x512

A part file is absent when the part is absent (normal). Mask pixels != 0 belong to the
part (as in the release's ``g_mask.py``).

**Class mapping and overlap precedence.** Parts are painted onto a background map in the
release's own order (``g_mask.py``, later parts overwrite earlier ones)::

    skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, l_ear, r_ear, mouth, u_lip, l_lip,
    hair, hat, ear_r, neck_l, neck, cloth

with each part's value taken from ``CELEBA_TO_SMITH``: skin -> 1 face skin, r_brow -> 2,
l_brow -> 3, r_eye -> 4, l_eye -> 5, nose -> 6, u_lip -> 7, mouth -> 8 inner mouth,
l_lip -> 9, hair -> 10, and eye_g, l_ear, r_ear, hat, ear_r, neck_l, neck, cloth -> 0
background. So the result equals the official 19-class merged map passed through a
look-up table (e.g. a hat over hair is background, hair over a brow is hair, an eye over
glasses is eye). ``soft_labels`` is the one-hot (0/255) form of that Smith map and
``label`` follows from it as for ``helen`` (``nine_class``: skin and hair are background;
``with_skin_hair``: skin = 9, hair = 10).

**Left and right are exchanged on purpose.** The package's "left" is the image's left
(``stn_icnn_jax.taxonomy``); CelebAMask-HQ's ``l_`` is the PERSON's left, i.e. the image's
right. The check the project made (issue #15): in the four sample masks the dataset's
authors publish with their MaskGAN demo, ``l_eye``, ``l_brow`` and ``l_ear`` lie on the
image's right (mean x 310-412 of 512) and ``r_eye``, ``r_brow``, ``r_ear`` on its left
(mean x 79-195). So ``r_brow`` / ``r_eye`` become Smith's left eyebrow / left eye (2, 4,
9-class 1, 3) and ``l_brow`` / ``l_eye`` the right ones (3, 5, 9-class 2, 4). This is a
property of the release, so there is no switch; the painting order above is unchanged.

**Resolution.** The image is resized to its masks' size (512x512) with PIL's LANCZOS
filter (the release's own resize, ``Image.ANTIALIAS``); masks are not resampled. All masks
of one image must have the same size and the image the same aspect ratio.

**Splits** (the paper's 6:2:2, 18,000 / 6,000 / 6,000 of 30,000): the image indices found
are sorted numerically; the first ``n * 6 // 10`` are ``train``, the next ``n * 2 // 10``
are ``validation``, the rest ``test`` (for the full set: 0-17999, 18000-23999,
24000-29999). Deterministic and independent of any random-number generator; a subset
(e.g. a test fixture) is split in the same proportions. At least 5 images are needed.

Checks before anything is written: image names are canonical integers (``7.jpg``, not
``007.jpg``); every mask file is named ``NNNNN_<known part>.png`` inside folder
``N // 2000`` and belongs to an existing image; every image has at least one mask; files
are supported images (``image_io``); images are at most ``max_side`` per side.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from stn_icnn_jax.data.builders import common
from stn_icnn_jax.data import labels as labels_lib
from stn_icnn_jax.data.image_io import (
    DataFormatError,
    ImageInfo,
    probe_gray,
    probe_image,
    raise_problems,
    read_gray,
    read_image_rgb,
)

FOLDER = "CelebAMask-HQ"
IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
IMAGES_PER_MASK_FOLDER = 2000

#: The release's part names in its painting order (later overwrites earlier).
PART_ORDER: tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip
#: CelebAMask-HQ part -> Smith class (0..10); parts not in HELEN map to 0 (background).
#: ``l_*`` (the person's left = the image's right) -> Smith's right classes, see above.
CELEBA_TO_SMITH: dict[str, int] = {
    "skin": 1, "nose": 6, "eye_g": 0, "l_eye": 5, "r_eye": 4, "l_brow": 3, "r_brow": 2,
    "l_ear": 0, "r_ear": 0, "mouth": 8, "u_lip": 7, "l_lip": 9, "hair": 10, "hat": 0,
    "ear_r": 0, "neck_l": 0, "neck": 0, "cloth": 0,
}  # fmt: skip
SPLIT_RATIO = (6, 2, 2)

_MASK_RE = re.compile(r"^(\d{5})_([a-z_]+)\.png$")
_IMAGE_RE = re.compile(r"^(\d+)\.jpg$")


def mask_path(root: Path, index: int, part: str) -> Path:
    return root / MASK_DIR / str(index // IMAGES_PER_MASK_FOLDER) / f"{index:05d}_{part}.png"


def split_indices(indices: list[int]) -> dict[str, list[int]]:
    """The 6:2:2 split of the sorted indices (see the module docstring)."""
    idx = sorted(indices)
    n = len(idx)
    n_train = n * SPLIT_RATIO[0] // 10
    n_val = n * SPLIT_RATIO[1] // 10
    return {
        "train": idx[:n_train],
        "validation": idx[n_train : n_train + n_val],
        "test": idx[n_train + n_val :],
    }


def list_images(root: Path) -> tuple[list[int], list[DataFormatError]]:
    """Image indices in CelebA-HQ-img (sorted) and naming problems."""
    folder = root / IMAGE_DIR
    found, problems = [], []
    for p in folder.iterdir():
        if p.name.startswith(".") or p.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        m = _IMAGE_RE.match(p.name)
        if not m or str(int(m.group(1))) != m.group(1):
            problems.append(
                DataFormatError(p, "image name is not a plain index (expected e.g. 0.jpg, 29999.jpg)")
            )
            continue
        found.append(int(m.group(1)))
    return sorted(found), problems


def list_masks(root: Path, indices: set[int]) -> tuple[dict[int, list[str]], list[DataFormatError]]:
    """index -> parts present, from the mask folders; plus naming/placement problems."""
    folder = root / MASK_DIR
    parts: dict[int, list[str]] = {}
    problems: list[DataFormatError] = []
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir():
            if sub.suffix.lower() == ".png":
                problems.append(DataFormatError(sub, f"mask file is not inside a numbered folder of {MASK_DIR}"))
            continue
        if not sub.name.isdigit():
            problems.append(DataFormatError(sub, "unexpected folder (mask folders are named 0, 1, ..., 14)"))
            continue
        k = int(sub.name)
        for p in sub.iterdir():
            if p.name.startswith(".") or p.suffix.lower() != ".png":
                continue
            m = _MASK_RE.match(p.name)
            if not m or m.group(2) not in CELEBA_TO_SMITH:
                problems.append(
                    DataFormatError(p, f"unexpected mask file name (expected NNNNN_<part>.png with part in {', '.join(PART_ORDER)})")
                )
                continue
            index, part = int(m.group(1)), m.group(2)
            if index // IMAGES_PER_MASK_FOLDER != k:
                problems.append(
                    DataFormatError(p, f"mask of image {index} is in folder {k}; it belongs in folder {index // IMAGES_PER_MASK_FOLDER}")
                )
                continue
            if index not in indices:
                problems.append(
                    DataFormatError(p, f"mask has no image: {IMAGE_DIR}/{index}.jpg is missing")
                )
                continue
            parts.setdefault(index, []).append(part)
    return parts, problems


def smith_map(masks: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Paint binary part masks (part -> (H, W) uint8) into a Smith class map (H, W)."""
    out = np.zeros(shape, dtype=np.uint8)
    for part in PART_ORDER:
        m = masks.get(part)
        if m is not None:
            out[m != 0] = CELEBA_TO_SMITH[part]
    return out


def read_sample(
    root: Path, index: int, parts: list[str], max_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample: image resized to the mask size, and one-hot soft labels."""
    img_path = root / IMAGE_DIR / f"{index}.jpg"
    image = read_image_rgb(img_path, max_side=max_side)
    masks: dict[str, np.ndarray] = {}
    shape = None
    for part in parts:
        p = mask_path(root, index, part)
        m = read_gray(p, max_side=None, what=f"{part} mask")
        if shape is None:
            shape = m.shape
        elif m.shape != shape:
            raise DataFormatError(p, f"{part} mask is {m.shape[1]}x{m.shape[0]}, other masks of image {index} are {shape[1]}x{shape[0]}")
        masks[part] = m
    assert shape is not None
    if image.shape[:2] != shape:
        image = np.asarray(
            Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.LANCZOS),
            dtype=np.uint8,
        )
    return image, labels_lib.one_hot_soft(smith_map(masks, shape))


def _check_sample(root: Path, index: int, parts: list[str], max_side: int) -> list[DataFormatError]:
    problems: list[DataFormatError] = []
    img_path = root / IMAGE_DIR / f"{index}.jpg"
    img: ImageInfo | None = None
    try:
        img = probe_image(img_path, max_side=max_side)
    except DataFormatError as e:
        problems.append(e)
    if not parts:
        problems.append(
            DataFormatError(
                img_path,
                f"image has no mask files (expected {MASK_DIR}/{index // IMAGES_PER_MASK_FOLDER}/{index:05d}_<part>.png)",
            )
        )
        return problems
    first: ImageInfo | None = None
    for part in parts:
        try:
            info = probe_gray(mask_path(root, index, part), max_side=None, what=f"{part} mask")
        except DataFormatError as e:
            problems.append(e)
            continue
        if first is None:
            first = info
        elif info.size != first.size:
            problems.append(
                DataFormatError(info.path, f"{part} mask is {info.width}x{info.height}, but {first.path.name} is {first.width}x{first.height}; all masks of an image must have one size")
            )
    if img is not None and first is not None and img.width * first.height != img.height * first.width:
        problems.append(
            DataFormatError(
                img_path,
                f"image is {img.width}x{img.height} but its masks are {first.width}x{first.height}: "
                "different aspect ratios, so the image cannot be resized to the mask size",
            )
        )
    return problems


class CelebAMaskHQ(common.FaceParsingBuilder):
    """CelebAMask-HQ at 512x512, HELEN classes, 6:2:2 split of the sorted indices."""

    name = "celebamask_hq"
    # 1.1.0: l_*/r_* now map to the image-right/left classes (issue #15), so a 1.0.0 build
    # (sides exchanged) is not picked up again.
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "CelebAMask-HQ's l_* (the person's left) -> the image-right classes.",
    }
    BUILDER_CONFIGS = common.standard_configs()
    DEFAULT_CONFIG_NAME = "nine_class"
    _HOMEPAGE = "https://github.com/switchablenorms/CelebAMask-HQ"
    _DESCRIPTION = __doc__
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
CelebAMask-HQ (Lee et al., CVPR 2020). Download CelebAMask-HQ.zip (linked from
https://github.com/switchablenorms/CelebAMask-HQ), unzip it and put the folder {FOLDER}/
into the manual directory (--manual_dir DIR), so that these exist:

  DIR/{FOLDER}/{IMAGE_DIR}/0.jpg ... 29999.jpg
  DIR/{FOLDER}/{MASK_DIR}/0/00000_skin.png ... {MASK_DIR}/14/29999_<part>.png

(DIR may also be the {FOLDER} folder itself; the other files of the release are not
used.) Then run
  stn-icnn data build celebamask_hq --manual_dir DIR [--config nine_class|with_skin_hair]
"""

    def _split_generators(self, dl_manager):
        root = self._manual_root(dl_manager, FOLDER, (IMAGE_DIR, MASK_DIR))
        indices, problems = list_images(root)
        parts, mask_problems = list_masks(root, set(indices))
        problems.extend(mask_problems)
        if len(indices) < 5:
            problems.append(
                DataFormatError(root / IMAGE_DIR, f"found {len(indices)} images; the 6:2:2 split needs at least 5")
            )
        for index in common.progress(
            indices, desc="Checking CelebAMask-HQ files", enabled=self.show_progress
        ):
            problems.extend(_check_sample(root, index, parts.get(index, []), self.max_side))
        raise_problems(problems)
        # Paint order is fixed by PART_ORDER inside smith_map; sort for stable reading.
        ordered = {i: sorted(parts[i], key=PART_ORDER.index) for i in indices}
        return {
            split: self._generate_examples(root=root, indices=idx, parts=ordered)
            for split, idx in split_indices(indices).items()
        }

    def _generate_examples(self, root: Path, indices: list[int], parts: dict[int, list[str]]) -> Iterator:
        for index in indices:
            image, soft = read_sample(root, index, parts[index], self.max_side)
            name = str(index)
            yield name, self.record(name, image, soft)
