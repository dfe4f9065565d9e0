"""TFDS builder ``helen``: the HELEN face-parsing set in Smith et al.'s layout.

Reads the ``SmithCVPR2013_dataset_resized`` release (Smith, Zhang, Brandt, Lin, Yang,
"Exemplar-Based Face Parsing", CVPR 2013), as the reference code does (docs/authors-code.md §3.1)::

    SmithCVPR2013_dataset_resized/
      images/NAME.jpg
      labels/NAME/NAME_lbl00.png ... NAME_lbl10.png   11 8-bit soft maps (Smith order)
      exemplars.txt   train       (2000 lines "index , name")
      tuning.txt      validation  (230)
      testing.txt     test        (100)

Each record: ``image`` (the JPEG, RGB), ``soft_labels`` = the 11 maps stacked in
``lbl00..lbl10`` order, ``label`` = the 9-class map (config ``nine_class``, default) or
the 11-class map with face skin = 9 and hair = 10 (config ``with_skin_hair``); see
``stn_icnn_jax.data.labels``. Records keep the split file's line order.

**Left and right: not verified here.** The package's "left" is the image's left
(``stn_icnn_jax.taxonomy``). Smith et al.'s README names ``lbl02`` "left eyebrow" and
``lbl04`` "left eye" without saying whose left. Searched (Nov 2026) and not stating it:
the release's README (pages.cs.wisc.edu/~lizhang/projects/face-parsing/README.txt, which
only lists the label numbers), the paper's abstract page, public face-parsing code that
loads these maps and GitHub issue threads about HELEN labels and flips (what turned up
swaps the pairs on flips, which holds in either convention). No copy of the label maps
is available here to measure their geometry. So the default configs
(``nine_class``, ``with_skin_hair``) keep the channels as named (``lbl02``/``lbl04`` ->
the image-left classes 1 and 3), and ``nine_class_swap_lr`` / ``with_skin_hair_swap_lr``
exchange ``lbl02``<->``lbl03`` and ``lbl04``<->``lbl05`` (for ``lbl02`` = the person's
left = the image's right). To choose, build the default once and look at one frontal
face: ``x = np.nonzero(record["label"] == 1)[1].mean()``; if ``x`` is less than half the
width, keep the default, otherwise rebuild with ``--config nine_class_swap_lr``.

Checks before anything is written: the split files parse (``index , name`` per non-blank
line, integer index, no duplicate names within or across splits); every listed image and
all 11 label maps exist, are images of a supported mode (see ``image_io``), the image is
at most ``max_side`` (1024) per side and every map has the image's size. Decoding errors
found while writing (e.g. a truncated JPEG) abort the build; TFDS then deletes its
``incomplete.*`` directory, so no partial dataset remains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from stn_icnn_jax.data.builders import common
from stn_icnn_jax.data.image_io import (
    DataFormatError,
    check_same_size,
    probe_gray,
    probe_image,
    raise_problems,
    read_gray,
    read_image_rgb,
)
from stn_icnn_jax.taxonomy import NUM_SMITH_CLASSES

FOLDER = "SmithCVPR2013_dataset_resized"
#: split -> (split file, official number of entries)
SPLIT_FILES: dict[str, tuple[str, int]] = {
    "train": ("exemplars.txt", 2000),
    "validation": ("tuning.txt", 230),
    "test": ("testing.txt", 100),
}


def image_path(root: Path, name: str) -> Path:
    return root / "images" / f"{name}.jpg"


def label_paths(root: Path, name: str) -> list[Path]:
    """The 11 soft-map files of one sample, in Smith channel order."""
    return [root / "labels" / name / f"{name}_lbl{k:02d}.png" for k in range(NUM_SMITH_CLASSES)]


def parse_split_file(path: Path) -> list[str]:
    """Names listed in a Smith split file (lines ``index , name``), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "split file is missing")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(path, f"split file cannot be read as UTF-8 text ({e})") from None
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not fields[1]:
            raise DataFormatError(
                path, f"line {lineno} is {raw!r}; expected 'index , name' (e.g. '1 , 100032540_1')"
            )
        index, name = fields
        try:
            int(index)
        except ValueError:
            raise DataFormatError(
                path, f"line {lineno}: index {index!r} is not an integer"
            ) from None
        if "/" in name or "\\" in name or name in (".", ".."):
            raise DataFormatError(path, f"line {lineno}: {name!r} is not a plain file name")
        if name in seen:
            raise DataFormatError(
                path, f"line {lineno}: name {name!r} is listed twice (first on line {seen[name]})"
            )
        seen[name] = lineno
        names.append(name)
    if not names:
        raise DataFormatError(path, "split file lists no samples")
    return names


def check_sample(root: Path, name: str, max_side: int) -> list[DataFormatError]:
    """Header-level checks of one sample's 12 files; returns the problems found."""
    problems: list[DataFormatError] = []
    img_path = image_path(root, name)
    try:
        img = probe_image(img_path, max_side=max_side)
    except DataFormatError as e:
        problems.append(e)
        img = None
    for k, lp in enumerate(label_paths(root, name)):
        try:
            lab = probe_gray(lp, max_side=None, what=f"label map lbl{k:02d}")
            if img is not None:
                check_same_size(lab, img, what=f"label map lbl{k:02d}")
        except DataFormatError as e:
            problems.append(e)
    return problems


def read_sample(root: Path, name: str, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample: image (H, W, 3) and soft labels (H, W, 11), both uint8."""
    img_path = image_path(root, name)
    image = read_image_rgb(img_path, max_side=max_side)
    maps = []
    for k, lp in enumerate(label_paths(root, name)):
        m = read_gray(lp, max_side=None, what=f"label map lbl{k:02d}")
        if m.shape != image.shape[:2]:
            raise DataFormatError(
                lp,
                f"label map lbl{k:02d} is {m.shape[1]}x{m.shape[0]} (WxH) but its image "
                f"{img_path.name} is {image.shape[1]}x{image.shape[0]}",
            )
        maps.append(m)
    return image, np.stack(maps, axis=-1)


class Helen(common.FaceParsingBuilder):
    """HELEN (Smith et al. 2013 resized release): train 2000 / validation 230 / test 100."""

    name = "helen"
    BUILDER_CONFIGS = common.standard_configs(side_switch=True)
    DEFAULT_CONFIG_NAME = "nine_class"
    _HOMEPAGE = "https://pages.cs.wisc.edu/~lizhang/projects/face-parsing/"
    _DESCRIPTION = __doc__
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
HELEN face parsing, Smith et al. (CVPR 2013) layout. Download
SmithCVPR2013_dataset_resized.zip from the Exemplar-Based Face Parsing page
(https://pages.cs.wisc.edu/~lizhang/projects/face-parsing/), unzip it, and put the
folder {FOLDER}/ into the manual directory (--manual_dir DIR), so that these exist:

  DIR/{FOLDER}/images/NAME.jpg
  DIR/{FOLDER}/labels/NAME/NAME_lbl00.png ... NAME_lbl10.png
  DIR/{FOLDER}/exemplars.txt   (train, 2000 lines "index , name")
  DIR/{FOLDER}/tuning.txt      (validation, 230)
  DIR/{FOLDER}/testing.txt     (test, 100)

(DIR may also be the {FOLDER} folder itself.) Then run
  stn-icnn data build helen --manual_dir DIR [--config nine_class|with_skin_hair]
Smith's lbl02/lbl04 (left brow/eye) are taken to be on the image's left; this is not
verified. Check one built frontal face (label 1 should lie in the left half of the image)
and if it does not, rebuild with --config nine_class_swap_lr (or with_skin_hair_swap_lr).
"""

    def _split_generators(self, dl_manager):
        root = self._manual_root(dl_manager, FOLDER, ("images", "labels", "exemplars.txt"))
        split_names: dict[str, list[str]] = {}
        owner: dict[str, str] = {}
        for split, (fname, _) in SPLIT_FILES.items():
            names = parse_split_file(root / fname)
            for n in names:
                if n in owner:
                    raise DataFormatError(
                        root / fname,
                        f"name {n!r} is also listed in {SPLIT_FILES[owner[n]][0]}; the splits "
                        "must be disjoint",
                    )
                owner[n] = split
            split_names[split] = names
        problems: list[DataFormatError] = []
        total = sum(len(v) for v in split_names.values())
        all_names = [(s, n) for s, names in split_names.items() for n in names]
        for _, n in common.progress(
            all_names, desc="Checking HELEN files", total=total, enabled=self.show_progress
        ):
            problems.extend(check_sample(root, n, self.max_side))
        raise_problems(problems)
        return {
            split: self._generate_examples(root=root, names=names)
            for split, names in split_names.items()
        }

    def _generate_examples(self, root: Path, names: list[str]) -> Iterator:
        for name in names:
            image, soft = read_sample(root, name, self.max_side)
            yield name, self.record(name, image, soft)
