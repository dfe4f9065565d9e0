"""TFDS builders: tiny fixtures in the official layouts, every label value checked.

Builds go to tmp_path; records are read back with ``tfds.data_source`` (no TensorFlow).
Expected labels are computed here by an independent per-pixel reference, not by
``stn_icnn_jax.data.labels``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import data_fixtures as fx
import stn_icnn_jax.data  # registers the builders
from stn_icnn_jax import taxonomy
from stn_icnn_jax import cli
from stn_icnn_jax.data import labels as L
from stn_icnn_jax.data.builders import synthetic_faces as synthetic_tfds
from stn_icnn_jax.data.build import build_dataset
from stn_icnn_jax.data.builders.helen import Helen
from stn_icnn_jax.data.image_io import DataFormatError
from stn_icnn_jax.errors import UsageError

SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------- reference helpers


def ref_pixel(px: list[int]) -> tuple[int, int]:
    """(9-class, with-skin-hair) label of one pixel's 11 Smith values, by the book."""
    parts = px[2:10]
    chans = [max(0, 255 - sum(parts))] + parts
    nine = chans.index(max(chans))  # first maximum = ties to the lower index
    if nine:
        return nine, nine
    rest = [max(0, 255 - sum(px[1:])), px[1], px[10]]
    return 0, (0, 9, 10)[rest.index(max(rest))]


def ref_labels(soft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w, _ = soft.shape
    nine = np.zeros((h, w), np.uint8)
    eleven = np.zeros((h, w), np.uint8)
    flat = soft.reshape(-1, 11).tolist()
    for i, px in enumerate(flat):
        nine.flat[i], eleven.flat[i] = ref_pixel(px)
    return nine, eleven


SMITH_NINE = {0: 0, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 0}
SMITH_ELEVEN = {0: 0, 1: 9, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 10}


def read_all(name: str, data_dir: Path) -> dict[str, list[dict]]:
    sources = tfds.data_source(name, data_dir=str(data_dir))
    assert set(sources) == set(SPLITS)
    return {s: [sources[s][i] for i in range(len(sources[s]))] for s in SPLITS}


def assert_no_dataset_left(data_dir: Path, name: str, config: str = "nine_class") -> None:
    version_dir = data_dir / name / config / str(stn_icnn_jax.data.BUILDERS[name].VERSION)
    assert not version_dir.exists(), f"{version_dir} was left behind"
    left = [p for p in data_dir.rglob("*") if "incomplete" in p.name]
    assert not left, f"incomplete TFDS files left behind: {left}"
    assert not (data_dir / name).exists(), "the dataset folder created by the failed build remains"


def build(name, manual, data_dir, config=None, **kw):
    return build_dataset(
        name, manual_dir=manual, data_dir=data_dir, config=config, show_progress=False, **kw
    )


@pytest.fixture(autouse=True)
def _quiet_tfds():
    tfds.disable_progress_bar()
    yield


# ---------------------------------------------------------------- labels module


def test_labels_hand_cases_and_tables():
    for vals, nine, eleven in fx.HELEN_PIXEL_CASES:
        soft = np.zeros((1, 1, 11), np.uint8)
        for ch, v in vals.items():
            soft[0, 0, ch] = v
        assert ref_pixel(soft[0, 0].tolist()) == (nine, eleven), vals  # the reference itself
        assert L.nine_class_label(soft)[0, 0] == nine, vals
        assert L.skin_hair_label(soft)[0, 0] == eleven, vals
        assert L.hard_label(soft, keep_skin_hair=True)[0, 0] == eleven
    soft = np.zeros((1, 11), np.uint8)
    soft[0, [2, 4, 9]] = [100, 90, 80]
    np.testing.assert_array_equal(
        L.nine_channel_soft(soft), [[0, 100, 0, 90, 0, 0, 0, 0, 80]]
    )
    np.testing.assert_allclose(L.class_probs(soft)[0, 1], 100 / 255)
    # one-hot path == look-up tables, for every Smith class
    hard = np.arange(11, dtype=np.uint8).reshape(1, 11)
    oh = L.one_hot_soft(hard)
    assert oh.dtype == np.uint8 and set(np.unique(oh)) == {0, 255}
    for keep, table in ((False, SMITH_NINE), (True, SMITH_ELEVEN)):
        np.testing.assert_array_equal(L.hard_label(oh, keep), L.smith_to_label(hard, keep))
        np.testing.assert_array_equal(L.smith_to_label(hard, keep)[0], [table[c] for c in range(11)])
    # label_to_smith inverts smith_to_label on the 9 classes: by hand, 0 -> 0, nose (5) ->
    # Smith 6, lower lip (8) -> Smith 9; and the one-hot round trip gives the label back
    nine = np.arange(9, dtype=np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(L.label_to_smith(nine)[[0, 1, 2], [0, 2, 2]], [0, 6, 9])
    np.testing.assert_array_equal(L.smith_to_label(L.label_to_smith(nine)), nine)
    np.testing.assert_array_equal(L.hard_label(L.one_hot_soft(L.label_to_smith(nine))), nine)
    assert len(taxonomy.class_names()) == 9 and len(taxonomy.class_names(True)) == 11
    with pytest.raises(ValueError):
        L.nine_class_label(np.zeros((2, 2, 9), np.uint8))
    with pytest.raises(ValueError):
        L.one_hot_soft(np.array([[11]]))


# ---------------------------------------------------------------- helen


@pytest.mark.parametrize("config", ["nine_class", "with_skin_hair"])
def test_helen_builds_exact_values(tmp_path, config):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    written = fx.write_helen(manual)
    path = build("helen", manual, data_dir, config=config)
    assert path == data_dir / "helen" / config / "1.0.0"
    recs = read_all(f"helen/{config}", data_dir)
    keep = config == "with_skin_hair"
    for split in SPLITS:
        expected_names = [n for n, w in written.items() if w["split"] == split]
        assert [r["name"].decode() for r in recs[split]] == expected_names  # split-file order
        for r in recs[split]:
            w = written[r["name"].decode()]
            np.testing.assert_array_equal(r["image"], w["image"])
            np.testing.assert_array_equal(r["soft_labels"], w["soft"])
            nine, eleven = ref_labels(w["soft"])
            np.testing.assert_array_equal(r["label"], eleven if keep else nine)
            assert r["label"].dtype == np.uint8 and r["label"].shape == (30, 40)
            for x, (_, e9, e11) in enumerate(fx.HELEN_PIXEL_CASES):
                assert r["label"][0, x] == (e11 if keep else e9), (x, fx.HELEN_PIXEL_CASES[x])
    # the fixture exercises both background and several part classes
    labels = np.concatenate([r["label"].ravel() for s in SPLITS for r in recs[s]])
    assert len(np.unique(labels)) >= (11 if keep else 9)
    assert "tensorflow" not in sys.modules


def test_helen_manual_dir_may_be_the_folder_itself(tmp_path):
    fx.write_helen(tmp_path / "manual")
    build("helen", tmp_path / "manual" / fx.HELEN_FOLDER, tmp_path / "data")
    assert len(tfds.data_source("helen", data_dir=str(tmp_path / "data"))["test"]) == 2


def _root(manual: Path) -> Path:
    return manual / fx.HELEN_FOLDER


def _lbl(manual, name, k):
    return _root(manual) / "labels" / name / f"{name}_lbl{k:02d}.png"


def _img(manual, name):
    return _root(manual) / "images" / f"{name}.jpg"


def _save_16bit_gray(path, h=30, w=40):
    Image.fromarray((np.arange(h * w).reshape(h, w) * 37 % 65535).astype(np.uint16)).save(
        path, format="PNG"
    )


def _truncate(path):
    b = path.read_bytes()
    path.write_bytes(b[: len(b) // 2])


def _rgba_transparent(path):
    a = np.full((30, 40, 4), 200, np.uint8)
    a[5, 5, 3] = 0
    Image.fromarray(a, "RGBA").save(path, format="PNG")


def _oversize(manual):
    name = "1016484849_1"
    rng = np.random.default_rng(5)
    fx.write_helen_sample(
        _root(manual), name, rng.integers(0, 255, (20, 1030, 3), dtype=np.uint8),
        np.zeros((20, 1030, 11), np.uint8),
    )  # fmt: skip


def _colour_label(path):
    a = np.zeros((30, 40, 3), np.uint8)
    a[..., 0] = 7
    Image.fromarray(a, "RGB").save(path)


def _append(path, text):
    path.write_text(path.read_text() + text)


def _refused(tmp_path, name, write_fixture, mutate, path_part, problem) -> DataFormatError:
    """Builds ``name`` from a fixture broken by ``mutate``; the build must fail naming the
    file and the problem, and leave no dataset behind."""
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    write_fixture(manual)
    mutate(manual)
    with pytest.raises(DataFormatError) as info:
        build(name, manual, data_dir)
    msg = str(info.value)
    assert path_part in msg and problem in msg, msg
    assert_no_dataset_left(data_dir, name)
    return info.value


HELEN_BAD = {
    "missing_label": (
        lambda m: _lbl(m, "100040721_1", 5).unlink(), "100040721_1_lbl05.png", "is missing"),
    "missing_split_file": (lambda m: (_root(m) / "tuning.txt").unlink(), "tuning.txt", "missing"),
    "split_names_absent_image": (
        lambda m: _append(_root(m) / "testing.txt", "3 , 999999_1\n"), "images/999999_1.jpg",
        "image is missing"),
    "bad_split_line": (
        lambda m: (_root(m) / "exemplars.txt").write_text("1 100032540_1\n"), "exemplars.txt",
        "line 1"),
    "name_in_two_splits": (
        lambda m: _append(_root(m) / "testing.txt", "3 , 100032540_1\n"), "testing.txt",
        "also listed in exemplars.txt"),
    "truncated_jpeg": (lambda m: _truncate(_img(m, "1016484849_1")), "1016484849_1.jpg", "truncated"),
    "not_an_image": (
        lambda m: _img(m, "10106347_1").write_bytes(b"\xff\xd8\xffnot a jpeg"), "10106347_1.jpg",
        "not a readable image"),
    "16bit_gray_image": (lambda m: _save_16bit_gray(_img(m, "10106347_1")), "10106347_1.jpg", "16"),
    "16bit_rgb_png_image": (
        lambda m: cv2.imwrite(str(_img(m, "10106347_1")) + ".png", np.ones((30, 40, 3), np.uint16) * 999)
        and shutil.move(str(_img(m, "10106347_1")) + ".png", _img(m, "10106347_1")),
        "10106347_1.jpg", "16-bit PNG"),
    "rgba_transparent": (lambda m: _rgba_transparent(_img(m, "1030333538_1")), "1030333538_1.jpg",
                         "transparent"),
    "label_size_differs": (
        lambda m: Image.fromarray(np.zeros((30, 41), np.uint8)).save(_lbl(m, "103575745_1", 3)),
        "103575745_1_lbl03.png", "same size"),
    "16bit_label_map": (lambda m: _save_16bit_gray(_lbl(m, "100032540_1", 7)), "100032540_1_lbl07.png",
                        "16"),
    "colour_label_map": (lambda m: _colour_label(_lbl(m, "100032540_1", 2)), "100032540_1_lbl02.png",
                         "channels differ"),
    "image_too_large": (_oversize, "1016484849_1.jpg", "larger than the supported 1024"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HELEN_BAD))
def test_helen_bad_input_names_file_and_leaves_nothing(tmp_path, case):
    mutate, path_part, problem = HELEN_BAD[case]
    error = _refused(tmp_path, "helen", fx.write_helen, mutate, path_part, problem)
    assert path_part in str(error.path), str(error)


def test_all_problems_are_reported_together(tmp_path):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    fx.write_helen(manual)
    _lbl(manual, "100040721_1", 5).unlink()
    _img(manual, "1014141265_1").write_bytes(b"junk")
    Image.fromarray(np.zeros((29, 40), np.uint8)).save(_lbl(manual, "1016484849_1", 10))
    with pytest.raises(DataFormatError) as info:
        build("helen", manual, data_dir)
    msg = str(info.value)
    assert "and 2 more problems" in msg
    for part in ("100040721_1_lbl05.png", "1014141265_1.jpg", "1016484849_1_lbl10.png"):
        assert part in msg
    assert len(info.value.all_problems) == 3
    assert_no_dataset_left(data_dir, "helen")


def test_truncated_jpeg_midway_tfds_itself_removes_partial_output(tmp_path):
    """Without the CLI wrapper: the failure comes after train was written; TFDS cleans up."""
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    fx.write_helen(manual)
    _truncate(_img(manual, "1016484849_1"))  # second test sample: train already written
    builder = Helen(data_dir=str(data_dir), show_progress=False)
    with pytest.raises(DataFormatError, match="1016484849_1.jpg.*truncated"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
        )
    assert not (data_dir / "helen" / "nine_class" / "1.0.0").exists()
    assert not [p for p in data_dir.rglob("*") if "incomplete" in p.name]
    assert not list(data_dir.rglob("*.array_record*"))


def test_helen_safe_image_conversions(tmp_path):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    written = fx.write_helen(manual)
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    # grayscale JPEG -> gray copied to R, G, B
    Image.fromarray(gray, "L").save(_img(manual, "100032540_1"), format="JPEG")
    g = fx.jpeg_decode(_img(manual, "100032540_1"))
    with Image.open(_img(manual, "100032540_1")) as im:
        assert im.mode == "L"
    # CMYK JPEG -> PIL's CMYK->RGB
    Image.fromarray(rgb).convert("CMYK").save(_img(manual, "100040721_1"), format="JPEG")
    with Image.open(_img(manual, "100040721_1")) as im:
        assert im.mode == "CMYK"
        cmyk_rgb = np.asarray(im.convert("RGB"))
    # opaque RGBA (PNG content in the .jpg file) -> alpha dropped
    Image.fromarray(np.dstack([rgb, np.full((30, 40), 255, np.uint8)]), "RGBA").save(
        _img(manual, "10106347_1"), format="PNG"
    )
    # palette image -> colours through the palette
    pal_img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_img.save(_img(manual, "1030333538_1"), format="PNG")
    pal_rgb = np.asarray(pal_img.convert("RGB"))
    # label map stored as RGB with equal channels, and as a gray palette PNG: same values
    soft = written["1014141265_1"]["soft"]
    Image.fromarray(np.repeat(soft[..., 4:5], 3, axis=-1)).save(_lbl(manual, "1014141265_1", 4))
    p = Image.fromarray(soft[..., 6], "L").convert("P")
    p.putpalette(sum(([i, i, i] for i in range(256)), []))
    p.save(_lbl(manual, "1014141265_1", 6))
    build("helen", manual, data_dir)
    recs = {r["name"].decode(): r for s in read_all("helen", data_dir).values() for r in s}
    np.testing.assert_array_equal(recs["100032540_1"]["image"], g)
    np.testing.assert_array_equal(g[..., 0], g[..., 2])
    np.testing.assert_array_equal(recs["100040721_1"]["image"], cmyk_rgb)
    np.testing.assert_array_equal(recs["10106347_1"]["image"], rgb)
    np.testing.assert_array_equal(recs["1030333538_1"]["image"], pal_rgb)
    np.testing.assert_array_equal(recs["1014141265_1"]["soft_labels"], soft)


def test_existing_dataset_needs_overwrite(tmp_path):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    fx.write_helen(manual)
    build("helen", manual, data_dir)
    with pytest.raises(ValueError, match="already exists"):
        build("helen", manual, data_dir)
    build("helen", manual, data_dir, overwrite=True)
    assert len(tfds.data_source("helen", data_dir=str(data_dir))["train"]) == 3
    # a failed overwrite puts the previous build back
    _truncate(_img(manual, "1016484849_1"))
    with pytest.raises(DataFormatError, match="truncated"):
        build("helen", manual, data_dir, overwrite=True)
    assert len(tfds.data_source("helen", data_dir=str(data_dir))["test"]) == 2
    assert sorted(p.name for p in data_dir.iterdir() if p.name != "downloads") == ["helen"]
    assert not [p for p in data_dir.rglob("*") if "incomplete" in p.name]


def test_missing_or_wrong_manual_dir(tmp_path):
    with pytest.raises(DataFormatError, match="manual directory does not exist"):
        build("helen", tmp_path / "nope", tmp_path / "data")
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "something.txt").write_text("x")
    with pytest.raises(DataFormatError) as info:
        build("helen", tmp_path / "wrong", tmp_path / "data")
    assert "SmithCVPR2013_dataset_resized" in str(info.value)
    assert_no_dataset_left(tmp_path / "data", "helen")


# ---------------------------------------------------------------- helen_star


@pytest.mark.parametrize("config", ["nine_class", "with_skin_hair"])
def test_helen_star_exact_values(tmp_path, config):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    written = fx.write_helen_star(manual)
    build("helen_star", manual, data_dir, config=config)
    recs = read_all(f"helen_star/{config}", data_dir)
    train_sorted = sorted(n for n, w in written.items() if w["folder"] == "train")
    assert [r["name"].decode() for r in recs["train"]] == train_sorted[:2]
    assert [r["name"].decode() for r in recs["validation"]] == train_sorted[2:]  # last ceil(3/10)=1
    assert [r["name"].decode() for r in recs["test"]] == sorted(
        n for n, w in written.items() if w["folder"] == "test"
    )
    full_train = tfds.data_source(f"helen_star/{config}", split="train+validation",
                                  data_dir=str(data_dir))
    assert [full_train[i]["name"].decode() for i in range(len(full_train))] == train_sorted
    table = SMITH_ELEVEN if config == "with_skin_hair" else SMITH_NINE
    for split in SPLITS:
        for r in recs[split]:
            w = written[r["name"].decode()]
            np.testing.assert_array_equal(r["image"], w["image"])
            cls = w["classes"]
            soft = r["soft_labels"]
            for c in range(11):
                np.testing.assert_array_equal(soft[..., c], np.where(cls == c, 255, 0))
            expected = np.vectorize(table.get, otypes=[np.uint8])(cls)
            np.testing.assert_array_equal(r["label"], expected)


def _star(m):
    return m / "helenstar_release"


HELEN_STAR_BAD = {
    "label_value_out_of_range": (
        lambda m: Image.fromarray(np.full((30, 40), 11, np.uint8)).save(
            _star(m) / "test" / "10405424_1_label.png"),
        "10405424_1_label.png", "class value(s) [11]"),
    "missing_label": (
        lambda m: (_star(m) / "train" / "114530171_1_label.png").unlink(),
        "114530171_1_label.png", "label file is missing"),
    "missing_test_folder": (
        lambda m: shutil.rmtree(_star(m) / "test"), "test", "missing from the manual directory"),
    "label_size_differs": (
        lambda m: Image.fromarray(np.zeros((31, 40), np.uint8)).save(
            _star(m) / "train" / "2228795_1_label.png"),
        "2228795_1_label.png", "same size"),
    "corrupt_image": (
        lambda m: _truncate(_star(m) / "test" / "1030333538_1_image.jpg"),
        "1030333538_1_image.jpg", "truncated"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HELEN_STAR_BAD))
def test_helen_star_bad_input(tmp_path, case):
    mutate, path_part, problem = HELEN_STAR_BAD[case]
    _refused(tmp_path, "helen_star", fx.write_helen_star, mutate, path_part, problem)


# ---------------------------------------------------------------- celebamask_hq


def ref_celeba_smith(masks: dict[str, np.ndarray], shape) -> np.ndarray:
    """Per pixel: the LAST part in the release's order that covers it decides.

    Sides (issue #15): CelebAMask-HQ's ``l_`` is the person's left = the image's right, so
    ``l_brow``/``l_eye`` are Smith's RIGHT brow/eye (3, 5) and ``r_*`` the left ones (2, 4).
    """
    value = {"skin": 1, "r_brow": 2, "l_brow": 3, "r_eye": 4, "l_eye": 5, "nose": 6,
             "u_lip": 7, "mouth": 8, "l_lip": 9, "hair": 10}  # fmt: skip
    out = np.zeros(shape, np.uint8)
    for y in range(shape[0]):
        for x in range(shape[1]):
            for part in reversed(fx.CELEBA_PARTS):
                if part in masks and masks[part][y, x]:
                    out[y, x] = value.get(part, 0)
                    break
    return out


@pytest.mark.parametrize("config", ["nine_class", "with_skin_hair"])
def test_celebamask_exact_values_and_split(tmp_path, config):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    written = fx.write_celebamask(manual)
    build("celebamask_hq", manual, data_dir, config=config)
    recs = read_all(f"celebamask_hq/{config}", data_dir)
    # 10 images -> 6:2:2 of the numerically sorted indices
    assert [r["name"].decode() for r in recs["train"]] == ["0", "1", "2", "3", "4", "5"]
    assert [r["name"].decode() for r in recs["validation"]] == ["6", "7"]
    assert [r["name"].decode() for r in recs["test"]] == ["8", "2001"]
    table = SMITH_ELEVEN if config == "with_skin_hair" else SMITH_NINE
    # hand cases in row 0: hat over hair -> bg; hair over brow -> hair; l_eye over glasses
    # -> Smith right eye (5: CelebAMask-HQ's l_ is the image's right); u_lip over mouth ->
    # upper lip; nose over skin; r_eye -> Smith left eye (4); neck over skin -> bg
    row0_smith = [0, 10, 5, 7, 6, 4, 0, 0]
    for split in SPLITS:
        for r in recs[split]:
            w = written[int(r["name"].decode())]
            assert r["image"].shape == (32, 32, 3) and r["label"].shape == (32, 32)
            resized = np.asarray(
                Image.fromarray(w["image"]).resize((32, 32), Image.Resampling.LANCZOS)
            )
            np.testing.assert_array_equal(r["image"], resized)
            # the resize is a plain downscale of the photo (2x2 block means, roughly)
            blocks = w["image"].reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
            assert np.abs(r["image"].astype(float) - blocks).mean() < 40
            smith = ref_celeba_smith(w["masks"], (32, 32))
            assert smith[0, :8].tolist() == row0_smith
            np.testing.assert_array_equal(
                r["soft_labels"], (np.arange(11) == smith[..., None]).astype(np.uint8) * 255
            )
            expected = np.vectorize(table.get, otypes=[np.uint8])(smith)
            np.testing.assert_array_equal(r["label"], expected)


def _mask_dir(m, k=0):
    return m / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno" / str(k)


def _img_dir(m):
    return m / "CelebAMask-HQ" / "CelebA-HQ-img"


def _move(src, dst):
    shutil.move(str(src), str(dst))


CELEBA_BAD = {
    "mask_without_image": (lambda m: (_img_dir(m) / "3.jpg").unlink(), "00003_", "3.jpg is missing"),
    "image_without_masks": (
        lambda m: [p.unlink() for p in _mask_dir(m).glob("00004_*.png")], "4.jpg", "no mask files"),
    "mask_in_wrong_folder": (
        lambda m: _move(next(_mask_dir(m, 1).glob("02001_*.png")), _mask_dir(m, 0)), "02001_",
        "belongs in folder 1"),
    "unknown_part": (
        lambda m: (_mask_dir(m) / "00001_beard.png").write_bytes(
            (_mask_dir(m) / next(_mask_dir(m).glob("00001_*.png")).name).read_bytes()),
        "00001_beard.png", "unexpected mask file name"),
    "non_canonical_image_name": (
        lambda m: _move(_img_dir(m) / "5.jpg", _img_dir(m) / "005.jpg"), "005.jpg", "plain index"),
    "mask_size_differs": (
        lambda m: Image.fromarray(np.zeros((31, 32), np.uint8)).save(
            next(iter(sorted(_mask_dir(m).glob("00002_*.png"))))), "00002_", "must have one size"),
    "corrupt_image": (lambda m: _truncate(_img_dir(m) / "8.jpg"), "8.jpg", "truncated"),
    "16bit_mask": (
        lambda m: _save_16bit_gray(next(iter(sorted(_mask_dir(m).glob("00006_*.png")))), 32, 32),
        "00006_", "16"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CELEBA_BAD))
def test_celebamask_bad_input(tmp_path, case):
    mutate, path_part, problem = CELEBA_BAD[case]
    _refused(tmp_path, "celebamask_hq", fx.write_celebamask, mutate, path_part, problem)


def test_celebamask_split_sizes_full_and_small():
    from stn_icnn_jax.data.builders.celebamask_hq import split_indices

    full = split_indices(list(range(30000))[::-1])
    assert [len(full[s]) for s in SPLITS] == [18000, 6000, 6000]
    assert full["train"][0] == 0 and full["validation"][0] == 18000 and full["test"][-1] == 29999
    assert [len(v) for v in split_indices(list(range(5))).values()] == [3, 1, 1]


# ---------------------------------------------------------------- synthetic_faces


def _stub_generate(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    h, w = 12 + seed % 5, 16
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    soft = np.zeros((h, w, 11), np.uint8)
    soft[..., 0] = 255
    soft[: h // 2, :, 0] = 0
    soft[: h // 2, :, 2 + seed % 8] = 255
    return {"image": image, "soft_labels": soft, "meta": {"seed": seed}}


def test_synthetic_builder_with_stub_generator(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_tfds, "_face_generator", lambda: _stub_generate)
    data_dir = tmp_path / "data"
    build("synthetic_faces", None, data_dir, config="tiny")
    recs = read_all("synthetic_faces/tiny", data_dir)
    assert [len(recs[s]) for s in SPLITS] == [16, 4, 4]
    seeds = {s: [int(r["name"].decode().split("_")[1]) for r in recs[s]] for s in SPLITS}
    assert seeds["train"] == list(range(16))
    assert seeds["validation"] == list(range(1_000_000, 1_000_004))
    assert seeds["test"] == list(range(2_000_000, 2_000_004))
    for s in SPLITS:
        for r, seed in zip(recs[s], seeds[s]):
            face = _stub_generate(seed)
            np.testing.assert_array_equal(r["image"], face["image"])
            np.testing.assert_array_equal(r["soft_labels"], face["soft_labels"])
            expected = np.zeros(face["image"].shape[:2], np.uint8)
            expected[: expected.shape[0] // 2] = 1 + seed % 8
            np.testing.assert_array_equal(r["label"], expected)


def test_split_limits_read_the_first_records(tmp_path, monkeypatch):
    """config.data.num_<split> > 0 reads a built split's first records (how the main job
    trains on a large split and validates on a small one); more than the split holds is
    one error naming both numbers; ``eval --data`` drops the run's limits."""
    from stn_icnn_jax import evaluation
    from stn_icnn_jax.config import base_config
    from stn_icnn_jax.data.sources import load_sources

    monkeypatch.setattr(synthetic_tfds, "_face_generator", lambda: _stub_generate)
    data_dir = tmp_path / "data"
    build("synthetic_faces", None, data_dir, config="tiny")
    c = base_config()
    c.data.builder_config, c.data.data_dir = "tiny", str(data_dir)
    c.data.num_train, c.data.num_validation, c.data.num_test = 5, 2, 0
    whole = read_all("synthetic_faces/tiny", data_dir)
    sources = load_sources(c, show_progress=False)
    assert [len(sources[s]) for s in SPLITS] == [5, 2, 4]
    for s in SPLITS:
        names = [bytes(r["name"]) for r in sources[s]]
        assert names == [bytes(r["name"]) for r in whole[s][: len(names)]]
    assert len(evaluation.split_source(c, "validation")) == 2
    assert len(evaluation.split_source(evaluation.DataChoice(builder_config="tiny").apply(c),
                                       "validation")) == 4
    c.data.num_validation = 5
    with pytest.raises(UsageError, match=r"has 4 validation records.*first 5 "
                                         r"\(config\.data\.num_validation\)"):
        load_sources(c, show_progress=False)
    c.data.num_validation = -1
    with pytest.raises(UsageError, match="num_validation must be >= 0"):
        load_sources(c, show_progress=False)


@pytest.mark.skipif(
    importlib.util.find_spec("stn_icnn_jax.data.synthetic") is None,
    reason="stn_icnn_jax.data.synthetic not written yet",
)
def test_synthetic_builder_with_real_generator(tmp_path):
    from stn_icnn_jax.data.synthetic import SyntheticFaceConfig, generate_face

    data_dir = tmp_path / "data"
    build("synthetic_faces", None, data_dir, config="tiny")
    recs = read_all("synthetic_faces/tiny", data_dir)
    assert [len(recs[s]) for s in SPLITS] == [16, 4, 4]
    for s, i in (("train", 0), ("train", 15), ("validation", 3), ("test", 0)):
        r = recs[s][i]
        seed = synthetic_tfds.seed_for(s, i)
        assert r["name"].decode() == f"seed_{seed}"
        face = generate_face(seed, SyntheticFaceConfig())
        np.testing.assert_array_equal(r["image"], face["image"])
        np.testing.assert_array_equal(r["soft_labels"], face["soft_labels"])
        np.testing.assert_array_equal(r["label"], ref_labels(np.asarray(face["soft_labels"]))[0])


# ---------------------------------------------------------------- CLI


def test_cli_builds_fixture_and_reports_errors(tmp_path, capsys):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    fx.write_helen(manual)
    argv = ["data", "build", "helen", "--manual_dir", str(manual), "--data_dir", str(data_dir)]
    assert cli.main(argv + ["--config", "with_skin_hair", "--no_progress"]) == 0
    assert "built helen" in capsys.readouterr().out
    assert len(tfds.data_source("helen/with_skin_hair", data_dir=str(data_dir))["validation"]) == 2
    _lbl(manual, "10106347_1", 9).unlink()
    assert cli.main(argv + ["--no_progress"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "10106347_1_lbl09.png" in err and "missing" in err
    assert not (data_dir / "helen" / "nine_class").exists()
    assert (data_dir / "helen" / "with_skin_hair" / "1.0.0").exists()  # earlier build untouched
    assert cli.main(["data", "build", "helen", "--data_dir", str(data_dir)]) == 2  # no manual dir
    captured = capsys.readouterr()
    assert "SmithCVPR2013_dataset_resized" in captured.out  # the instructions
    assert captured.err.startswith("error: helen needs --manual_dir DIR")
    assert len(captured.err.splitlines()) == 1


def test_cli_data_help_list_instructions(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "build" in out and "instructions" in out and "helen" in out
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for n in ("helen", "helen_star", "celebamask_hq", "synthetic_faces", "with_skin_hair", "tiny"):
        assert n in out
    assert cli.main(["data", "instructions", "celebamask_hq"]) == 0
    assert "CelebAMask-HQ-mask-anno" in capsys.readouterr().out
