"""Tiny fixtures in the exact official layouts of HELEN, HELEN* and CelebAMask-HQ.

Each writer returns what it wrote, so tests can compare every label value that comes
out of a builder with what went in. Images are JPEGs; the expected image is the PIL
decode of the written file (JPEG is lossy). Label maps are PNGs (exact).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HELEN_FOLDER = "SmithCVPR2013_dataset_resized"
HELEN_SPLIT_FILES = {"train": "exemplars.txt", "validation": "tuning.txt", "test": "testing.txt"}

# Hand-made soft-label pixels written into row 0 of every HELEN fixture sample:
# (Smith channel -> value), expected 9-class label, expected with-skin-hair label.
HELEN_PIXEL_CASES = [
    ({}, 0, 0),  # nothing: bg = 255
    ({4: 200}, 3, 3),  # left eye 200 > bg 55
    ({2: 128, 3: 127}, 1, 1),  # bg clipped to 0; l-brow beats r-brow
    ({6: 100, 7: 100}, 5, 5),  # tie nose / upper lip -> lower index (nose)
    ({5: 120, 9: 15}, 0, 0),  # tie bg (120) / right eye (120) -> background
    ({1: 200, 6: 50}, 0, 9),  # skin: bg 205 wins the 9-class map; skin in the 11-class
    ({10: 255}, 0, 10),  # hair
    ({1: 100, 10: 100}, 0, 9),  # tie skin / hair -> skin; 11-class bg = 55
    ({1: 100, 6: 130}, 5, 5),  # nose 130 > bg 125: a part keeps its label
    ({0: 255, 8: 200}, 7, 7),  # lbl00 is not used: inner mouth 200 > 55
    ({9: 255, 3: 255, 2: 255}, 1, 1),  # sum overflows uint8; bg 0; l-brow first
    ({0: 10, 1: 60, 10: 60, 7: 80}, 0, 9),  # bg 175 > u-lip 80; 11-class bg 55 < skin = hair
]


def jpeg_decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save_jpeg(arr: np.ndarray, path: Path) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=95)
    return jpeg_decode(path)


def helen_soft(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random 11-channel soft maps with the hand-made cases in row 0."""
    soft = rng.integers(0, 256, size=(h, w, 11), dtype=np.uint8)
    # make some pixels sparse (a few channels only) so parts and background both win
    sparse = rng.random((h, w, 11)) < 0.7
    soft[sparse] = 0
    assert w >= len(HELEN_PIXEL_CASES)
    for x, (vals, _, _) in enumerate(HELEN_PIXEL_CASES):
        soft[0, x, :] = 0
        for ch, v in vals.items():
            soft[0, x, ch] = v
    return soft


def write_helen_sample(root: Path, name: str, image: np.ndarray, soft: np.ndarray) -> np.ndarray:
    decoded = save_jpeg(image, root / "images" / f"{name}.jpg")
    d = root / "labels" / name
    d.mkdir(parents=True, exist_ok=True)
    for k in range(11):
        Image.fromarray(soft[..., k], mode="L").save(d / f"{name}_lbl{k:02d}.png")
    return decoded


def write_helen(
    manual_dir: Path,
    splits: dict[str, list[str]] | None = None,
    size: tuple[int, int] = (40, 30),
    seed: int = 0,
) -> dict[str, dict]:
    """Write SmithCVPR2013_dataset_resized/ into manual_dir; returns name -> sample dict."""
    if splits is None:
        splits = {
            "train": ["100032540_1", "100040721_1", "10106347_1"],
            "validation": ["1030333538_1", "103575745_1"],
            "test": ["1014141265_1", "1016484849_1"],
        }
    w, h = size
    rng = np.random.default_rng(seed)
    root = Path(manual_dir) / HELEN_FOLDER
    out: dict[str, dict] = {}
    for split, names in splits.items():
        lines = []
        for i, name in enumerate(names, start=1):
            image = random_image(rng, h, w)
            soft = helen_soft(rng, h, w)
            decoded = write_helen_sample(root, name, image, soft)
            out[name] = {"split": split, "image": decoded, "soft": soft}
            lines.append(f"{i} , {name}")
        (root / HELEN_SPLIT_FILES[split]).write_text("\n".join(lines) + "\n")
    return out


def write_helen_star(
    manual_dir: Path,
    train: list[str] | None = None,
    test: list[str] | None = None,
    size: tuple[int, int] = (40, 30),
    seed: int = 1,
) -> dict[str, dict]:
    """Write helenstar_release/{train,test}/ into manual_dir; returns name -> sample dict."""
    train = train or ["2228795_1", "1031767484_1", "114530171_1"]
    test = test or ["1030333538_1", "10405424_1"]
    w, h = size
    rng = np.random.default_rng(seed)
    root = Path(manual_dir) / "helenstar_release"
    out: dict[str, dict] = {}
    for sub, names in (("train", train), ("test", test)):
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        for name in names:
            decoded = save_jpeg(random_image(rng, h, w), d / f"{name}_image.jpg")
            classes = rng.integers(0, 11, size=(h, w), dtype=np.uint8)
            classes[0, :11] = np.arange(11)  # every class at least once
            Image.fromarray(classes, mode="L").save(d / f"{name}_label.png")
            # the release's visualisations must be ignored
            Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(d / f"{name}_viz.jpg")
            out[name] = {"folder": sub, "image": decoded, "classes": classes}
    return out


CELEBA_PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip


def write_celebamask(
    manual_dir: Path,
    indices: list[int] | None = None,
    image_size: int = 64,
    mask_size: int = 32,
    seed: int = 2,
) -> dict[int, dict]:
    """Write CelebAMask-HQ/{CelebA-HQ-img, CelebAMask-HQ-mask-anno} into manual_dir.

    Returns index -> {"image": decoded full-size image, "masks": {part: bool (H, W)}}.
    Index 2001 (if present) lives in mask folder 1, as in the release.
    """
    indices = indices if indices is not None else [0, 1, 2, 3, 4, 5, 6, 7, 8, 2001]
    rng = np.random.default_rng(seed)
    root = Path(manual_dir) / "CelebAMask-HQ"
    img_dir = root / "CelebA-HQ-img"
    out: dict[int, dict] = {}
    for idx in indices:
        decoded = save_jpeg(random_image(rng, image_size, image_size), img_dir / f"{idx}.jpg")
        masks: dict[str, np.ndarray] = {}
        present = [p for p in CELEBA_PARTS if rng.random() < 0.7] or ["skin"]
        for part in present:
            m = rng.random((mask_size, mask_size)) < 0.3
            masks[part] = m
        # hand-made overlaps in row 0 (present parts forced on at chosen pixels)
        cases = [
            (0, ("hair", "hat")),  # hat painted after hair -> background
            (1, ("l_brow", "hair")),  # hair after l_brow -> hair
            (2, ("eye_g", "l_eye")),  # l_eye after eye_g -> eye (Smith right eye, 5)
            (3, ("u_lip", "mouth")),  # u_lip after mouth -> upper lip
            (4, ("skin", "nose")),  # nose after skin -> nose
            (5, ("r_eye",)),
            (6, ("neck", "skin")),  # neck after skin -> background
            (7, ()),  # nothing -> background
        ]
        for x, parts in cases:
            for p in list(masks):
                masks[p][0, x] = False
            for p in parts:
                masks.setdefault(p, np.zeros((mask_size, mask_size), bool))[0, x] = True
        mdir = root / "CelebAMask-HQ-mask-anno" / str(idx // 2000)
        mdir.mkdir(parents=True, exist_ok=True)
        for part, m in masks.items():
            Image.fromarray((m * 255).astype(np.uint8), mode="L").save(mdir / f"{idx:05d}_{part}.png")
        out[idx] = {"image": decoded, "masks": masks}
    return out


# ---------------------------------------------------------------- faces with real sides

# A crude frontal face on a 64x64 canvas: (y0, y1, x0, x1) boxes by the IMAGE side the part
# lies on. "img_left_*" have the smaller x; "img_right_*" are their mirror images.
FACE_SIZE = 64
_IMG_LEFT_BOXES = {"brow": (17, 20, 13, 25), "eye": (24, 28, 15, 24), "ear": (26, 40, 4, 9)}
FACE_BOXES: dict[str, tuple[int, int, int, int]] = {
    "skin": (10, 58, 10, 54), "nose": (29, 40, 29, 35), "u_lip": (43, 46, 24, 40),
    "mouth": (46, 48, 25, 39), "l_lip": (48, 52, 24, 40), "hair": (2, 10, 8, 56),
    **{f"img_left_{k}": b for k, b in _IMG_LEFT_BOXES.items()},
    **{f"img_right_{k}": (y0, y1, FACE_SIZE - x1, FACE_SIZE - x0)
       for k, (y0, y1, x0, x1) in _IMG_LEFT_BOXES.items()},
}  # fmt: skip


def _box_mask(box: tuple[int, int, int, int], shift: int) -> np.ndarray:
    y0, y1, x0, x1 = box
    m = np.zeros((FACE_SIZE, FACE_SIZE), bool)
    m[y0 + shift : y1 + shift, x0:x1] = True
    return m


def _face_image(masks: dict[str, np.ndarray]) -> np.ndarray:
    image = np.full((FACE_SIZE, FACE_SIZE, 3), 90, np.uint8)
    for k, m in enumerate(masks.values()):
        image[m] = (40 + 23 * k) % 256
    return image


def write_celebamask_faces(manual_dir: Path, n: int = 5) -> dict[int, dict]:
    """CelebAMask-HQ faces laid out as the release's own masks are (issue #15): ``l_brow``,
    ``l_eye`` and ``l_ear`` (the person's left) on the IMAGE's right, ``r_*`` on its left.

    Returns index -> {"masks": {part: bool (64, 64)}}; face i is shifted down by i pixels.
    """
    celeba_part = {
        "skin": "skin", "img_left_brow": "r_brow", "img_right_brow": "l_brow",
        "img_left_eye": "r_eye", "img_right_eye": "l_eye", "img_left_ear": "r_ear",
        "img_right_ear": "l_ear", "nose": "nose", "u_lip": "u_lip", "mouth": "mouth",
        "l_lip": "l_lip", "hair": "hair",
    }  # fmt: skip
    root = Path(manual_dir) / "CelebAMask-HQ"
    out: dict[int, dict] = {}
    for idx in range(n):
        masks = {celeba_part[k]: _box_mask(box, idx) for k, box in FACE_BOXES.items()}
        save_jpeg(_face_image(masks), root / "CelebA-HQ-img" / f"{idx}.jpg")
        mdir = root / "CelebAMask-HQ-mask-anno" / "0"
        mdir.mkdir(parents=True, exist_ok=True)
        for part, m in masks.items():
            Image.fromarray((m * 255).astype(np.uint8), mode="L").save(mdir / f"{idx:05d}_{part}.png")
        out[idx] = {"masks": masks}
    return out


def write_helen_faces(manual_dir: Path, lbl02_on_image_left: bool = True) -> dict[str, dict]:
    """HELEN faces (Smith layout, one face per split) whose ``lbl02``/``lbl04`` (Smith's
    "left" brow/eye) lie on the image's left (or, with ``lbl02_on_image_left=False``, on
    its right, as they would if Smith's "left" were the person's left)."""
    side = ("img_left", "img_right") if lbl02_on_image_left else ("img_right", "img_left")
    channel_box = {
        1: "skin", 2: f"{side[0]}_brow", 3: f"{side[1]}_brow", 4: f"{side[0]}_eye",
        5: f"{side[1]}_eye", 6: "nose", 7: "u_lip", 8: "mouth", 9: "l_lip", 10: "hair",
    }  # fmt: skip
    root = Path(manual_dir) / HELEN_FOLDER
    out: dict[str, dict] = {}
    for i, (split, fname) in enumerate(HELEN_SPLIT_FILES.items()):
        name = f"10000{i}_1"
        soft = np.zeros((FACE_SIZE, FACE_SIZE, 11), np.uint8)
        for ch in range(1, 11):  # later channels paint over earlier ones (one-hot)
            m = _box_mask(FACE_BOXES[channel_box[ch]], i)
            soft[m] = 0
            soft[m, ch] = 255
        soft[..., 0] = 255 - soft[..., 1:].max(axis=-1)
        masks = {c: soft[..., c] > 0 for c in range(11)}
        write_helen_sample(root, name, _face_image(masks), soft)
        (root / fname).write_text(f"1 , {name}\n")
        out[name] = {"split": split, "soft": soft}
    return out
