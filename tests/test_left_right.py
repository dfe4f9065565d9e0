"""Issue #15: one left/right convention ("left" = the IMAGE's left) in every dataset.

* CelebAMask-HQ's ``l_*`` masks lie on the image's right (the person's left); the builder
  must turn them into the RIGHT classes, so its left classes lie on the image's left.
* A synthetic face and a CelebAMask-HQ face agree on the side of every class.
* HELEN / HELEN*: the ``*_swap_lr`` configs exchange the sides as documented.
* Mirroring a labelled face (``labels.mirror_label``) and the mirrored part models.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_fixtures as fx
import stn_icnn_jax.data  # noqa: F401  (registers the builders)
from stn_icnn_jax import taxonomy
from stn_icnn_jax.data import labels as L
from stn_icnn_jax.data.build import build_dataset
from stn_icnn_jax.data.synthetic import generate_face
from stn_icnn_jax.model.icnn import ICNNConfig, PartModels
from test_data_builders import SPLITS, read_all, ref_labels

# 9-class ids (also valid in the 11-class layout)
L_BROW, R_BROW, L_EYE, R_EYE = 1, 2, 3, 4
PAIRS = ((L_BROW, R_BROW), (L_EYE, R_EYE))


@pytest.fixture(autouse=True)
def _quiet_tfds():
    tfds.disable_progress_bar()
    yield


def build(name, manual, data_dir, config):
    return build_dataset(name, manual_dir=manual, data_dir=data_dir, config=config, show_progress=False)


def mean_x(label: np.ndarray, cls: int) -> float | None:
    xs = np.nonzero(label == cls)[1]
    return float(xs.mean()) if xs.size else None


def sides(label: np.ndarray) -> dict[int, str]:
    """For each left/right class present with its partner: 'image-left' or 'image-right'."""
    out = {}
    for a, b in PAIRS:
        xa, xb = mean_x(label, a), mean_x(label, b)
        if xa is not None and xb is not None:
            out[a], out[b] = ("image-left", "image-right") if xa < xb else ("image-right", "image-left")
    return out


# ---------------------------------------------------------------- the convention


def test_taxonomy_states_the_convention():
    doc = taxonomy.__doc__
    assert "IMAGE's left" in doc and "celebamask_hq" in doc and "helen" in doc
    assert taxonomy.CLASS_NAMES[L_BROW] == "left_eyebrow" and taxonomy.CLASS_NAMES[L_EYE] == "left_eye"
    # the mirror tables exchange exactly the brows and the eyes
    assert [taxonomy.SMITH_CLASS_NAMES[c] for c in taxonomy.SMITH_MIRROR[2:6]] == [
        "right_eyebrow", "left_eyebrow", "right_eye", "left_eye"]
    assert [taxonomy.SKIN_HAIR_CLASS_NAMES[c] for c in taxonomy.CLASS_MIRROR[1:5]] == [
        "right_eyebrow", "left_eyebrow", "right_eye", "left_eye"]
    for table in (taxonomy.SMITH_MIRROR, taxonomy.CLASS_MIRROR):
        assert sorted(table) == list(range(11)) and [table[t] for t in table] == list(range(11))


# ---------------------------------------------------------------- CelebAMask-HQ


@pytest.mark.parametrize("config", ["nine_class", "with_skin_hair"])
def test_celebamask_person_left_becomes_image_left_classes(tmp_path, config):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    written = fx.write_celebamask_faces(manual)
    # the fixture is laid out as the release: l_* on the image's right
    for w in written.values():
        for part in ("l_brow", "l_eye", "l_ear"):
            assert np.nonzero(w["masks"][part])[1].mean() > fx.FACE_SIZE / 2
        for part in ("r_brow", "r_eye", "r_ear"):
            assert np.nonzero(w["masks"][part])[1].mean() < fx.FACE_SIZE / 2
    build("celebamask_hq", manual, data_dir, config)
    recs = read_all(f"celebamask_hq/{config}", data_dir)
    half = fx.FACE_SIZE / 2
    n = 0
    for split in SPLITS:
        for r in recs[split]:
            w = written[int(r["name"].decode())]
            label = r["label"]
            assert mean_x(label, L_BROW) < half and mean_x(label, L_EYE) < half
            assert mean_x(label, R_BROW) > half and mean_x(label, R_EYE) > half
            # exactly: left classes = CelebAMask-HQ's r_* masks, right classes = l_*
            np.testing.assert_array_equal(label == L_BROW, w["masks"]["r_brow"])
            np.testing.assert_array_equal(label == R_BROW, w["masks"]["l_brow"])
            np.testing.assert_array_equal(label == L_EYE, w["masks"]["r_eye"])
            np.testing.assert_array_equal(label == R_EYE, w["masks"]["l_eye"])
            # the stored Smith channels follow the same convention
            soft = r["soft_labels"]
            np.testing.assert_array_equal(soft[..., 2] == 255, w["masks"]["r_brow"])
            np.testing.assert_array_equal(soft[..., 4] == 255, w["masks"]["r_eye"])
            n += 1
    assert n == 5


def test_synthetic_and_celebamask_faces_agree_on_sides(tmp_path):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    fx.write_celebamask_faces(manual)
    build("celebamask_hq", manual, data_dir, "nine_class")
    celeba = read_all("celebamask_hq/nine_class", data_dir)["train"][0]["label"]
    expected = {L_BROW: "image-left", R_BROW: "image-right", L_EYE: "image-left", R_EYE: "image-right"}
    assert sides(celeba) == expected
    checked = 0
    for seed in range(12):
        face = generate_face(seed)
        label = L.hard_label(np.asarray(face["soft_labels"]))
        s = sides(label)
        assert s == {c: expected[c] for c in s}, f"seed {seed}: {s}"
        # and as the generator's own landmarks say ("left eye" = smaller x)
        assert face["meta"]["left_eye_x"] < face["meta"]["right_eye_x"]
        checked += len(s)
    assert checked >= 30  # most faces show both brows and both eyes


# ---------------------------------------------------------------- HELEN / HELEN* switch


@pytest.mark.parametrize("on_left", [True, False])
def test_helen_swap_lr_config_moves_sides_as_documented(tmp_path, on_left):
    """The documented check: label 1's mean x below half the width -> keep the default."""
    manual = tmp_path / "manual"
    written = fx.write_helen_faces(manual, lbl02_on_image_left=on_left)
    half = fx.FACE_SIZE / 2
    for config in ("nine_class", "nine_class_swap_lr", "with_skin_hair_swap_lr"):
        data_dir = tmp_path / f"data_{config}"
        build("helen", manual, data_dir, config)
        recs = read_all(f"helen/{config}", data_dir)
        swapped = config.endswith("_swap_lr")
        for split in SPLITS:
            (r,) = recs[split]
            soft = written[r["name"].decode()]["soft"]
            want = soft[..., list(taxonomy.SMITH_MIRROR)] if swapped else soft
            np.testing.assert_array_equal(r["soft_labels"], want)
            nine, eleven = ref_labels(want)
            np.testing.assert_array_equal(r["label"], eleven if "skin_hair" in config else nine)
            # the left classes are on the image's left iff (Smith's left is) XOR (swapped)
            left_is_left = on_left != swapped
            assert (mean_x(r["label"], L_BROW) < half) == left_is_left
            assert (mean_x(r["label"], L_EYE) < half) == left_is_left
            assert (mean_x(r["label"], R_EYE) > half) == left_is_left


def test_helen_swap_lr_hand_pixels(tmp_path):
    manual, data_dir = tmp_path / "manual", tmp_path / "data"
    written = fx.write_helen(manual)
    build("helen", manual, data_dir, "nine_class_swap_lr")
    recs = read_all("helen/nine_class_swap_lr", data_dir)
    for split in SPLITS:
        for r in recs[split]:
            row0 = r["label"][0]
            # fx.HELEN_PIXEL_CASES with lbl02<->lbl03 and lbl04<->lbl05 exchanged:
            assert row0[1] == R_EYE  # lbl04 200 (Smith's left eye) -> right eye
            assert row0[2] == R_BROW  # lbl02 128 > lbl03 127 -> right brow wins
            assert row0[4] == 0  # tie bg 120 / lbl05 120 (now the left eye) -> background
            assert row0[10] == L_BROW  # lbl02 = lbl03 = 255: tie -> lower index (left brow)
            np.testing.assert_array_equal(
                r["soft_labels"], written[r["name"].decode()]["soft"][..., list(taxonomy.SMITH_MIRROR)])


def test_helen_star_swap_lr(tmp_path):
    manual = tmp_path / "manual"
    written = fx.write_helen_star(manual)
    recs = {}
    for config in ("nine_class", "nine_class_swap_lr"):
        build("helen_star", manual, tmp_path / config, config)
        recs[config] = read_all(f"helen_star/{config}", tmp_path / config)
    mirror = np.asarray(taxonomy.SMITH_MIRROR)
    for split in SPLITS:
        for a, b in zip(recs["nine_class"][split], recs["nine_class_swap_lr"][split]):
            classes = written[a["name"].decode()]["classes"]
            np.testing.assert_array_equal(a["label"], taxonomy.SMITH_TO_CLASS[classes])
            np.testing.assert_array_equal(b["label"], taxonomy.SMITH_TO_CLASS[mirror[classes]])
            assert b["label"][0, 2] == R_BROW and b["label"][0, 4] == R_EYE  # Smith 2, 4


def test_celebamask_has_no_side_switch_and_helen_lists_it():
    from stn_icnn_jax.data.builders.celebamask_hq import CelebAMaskHQ
    from stn_icnn_jax.data.builders.helen import Helen
    from stn_icnn_jax.data.builders.helen_star import HelenStar

    base = ["nine_class", "with_skin_hair"]
    assert [c.name for c in CelebAMaskHQ.BUILDER_CONFIGS] == base
    for cls in (Helen, HelenStar):
        assert [c.name for c in cls.BUILDER_CONFIGS] == base + [n + "_swap_lr" for n in base]
        assert cls.DEFAULT_CONFIG_NAME == "nine_class"
        assert "swap_lr" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS


# ---------------------------------------------------------------- mirroring a labelled face


def test_mirror_label_hand_examples():
    x = np.array([[1, 0, 3, 5],
                  [2, 9, 4, 10]], np.uint8)  # fmt: skip
    np.testing.assert_array_equal(
        L.mirror_label(x),
        np.array([[5, 4, 0, 2],
                  [10, 3, 9, 1]], np.uint8))  # fmt: skip
    # a left brow in column 0 of a 1x3 map: the flip moves it to column 2, the image's
    # right, where it is the RIGHT brow
    np.testing.assert_array_equal(L.mirror_label(np.array([[1, 0, 0]])), [[0, 0, 2]])
    np.testing.assert_array_equal(L.mirror_label(np.array([[3, 6, 4]])), [[3, 6, 4]])
    batch = np.stack([x, x[:, ::-1]])
    np.testing.assert_array_equal(L.mirror_label(batch)[1], L.mirror_label(x[:, ::-1]))
    with pytest.raises(ValueError, match="0..10"):
        L.mirror_label(np.array([[11]]))


def test_swap_sides_and_mirror_soft_hand_example():
    soft = np.zeros((1, 2, 11), np.uint8)
    soft[0, 0, 2] = 200  # Smith left brow, column 0
    soft[0, 1, 5] = 100  # Smith right eye, column 1
    soft[0, 1, 7] = 50
    s = L.swap_sides_soft(soft)
    assert s[0, 0, 3] == 200 and s[0, 0, 2] == 0 and s[0, 1, 4] == 100 and s[0, 1, 7] == 50
    m = L.mirror_soft(soft)
    assert m[0, 1, 3] == 200 and m[0, 0, 4] == 100 and m[0, 0, 7] == 50 and m.sum() == soft.sum()


def test_flipping_a_labelled_face_moves_left_classes_and_swaps_names():
    for seed in (0, 3, 7):
        face = generate_face(seed)
        soft = np.asarray(face["soft_labels"])
        label = L.hard_label(soft)
        before = sides(label)
        assert before and all(v == ("image-left" if c in (L_BROW, L_EYE) else "image-right")
                              for c, v in before.items())
        flipped = label[:, ::-1]  # a plain flip: the left classes are now on the right
        assert all(v != before[c] for c, v in sides(flipped).items())
        mirrored = L.mirror_label(label)  # the flip plus swapped names: convention restored
        assert sides(mirrored) == before
        np.testing.assert_array_equal(mirrored, np.asarray(taxonomy.CLASS_MIRROR)[flipped])
        np.testing.assert_array_equal(L.mirror_label(mirrored), label)
        # the soft form commutes with the hard label (no left/right ties in a real face)
        np.testing.assert_array_equal(L.hard_label(L.mirror_soft(soft)), mirrored)


def test_mirrored_part_models_follow_the_convention():
    """PartModels(share_left_right): on the mirrored face (patches flipped, brow/eye
    patches exchanged, as ``mirror_label`` exchanges their classes) the left models give
    the flipped right predictions and vice versa."""
    cfg = ICNNConfig(num_labels=2, channels=(2, 3, 4), num_interlink_layers=1, kernel_size=3,
                     head_kernel_size=3)
    model = PartModels(cfg, share_left_right=True)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 6, 9, 11, 3)), jnp.float32)
    v = jax.jit(lambda key, a: model.init(key, a, train=False))(jax.random.PRNGKey(1), x)
    apply = jax.jit(lambda a: model.apply(v, a, train=False))
    flip = lambda a: jnp.flip(a, axis=2)  # noqa: E731  (width of NHWC)
    order = [1, 0, 3, 2, 4, 5]  # brow_L <-> brow_R, eye_L <-> eye_R
    x_mirror = jnp.stack([flip(x[:, k]) for k in order], axis=1)
    outs, outs_m = apply(x), apply(x_mirror)
    for k in range(4):
        np.testing.assert_allclose(outs_m[k], flip(outs[order[k]]), rtol=1e-5, atol=1e-5)
