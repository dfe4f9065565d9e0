"""photometric: each operation against an independent numpy statement on tiny images,
its draws (probabilities, ranges, determinism), labels untouched and the paper's pipeline
unchanged bit for bit when it is off, and the ``data.photometric`` config key."""

import dataclasses
import hashlib
import json
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from stn_icnn_jax import weights
from stn_icnn_jax.config import base_config, build, load_config
from stn_icnn_jax.data import augment as A
from stn_icnn_jax.data import input_pipeline as ip
from stn_icnn_jax.data import photometric as P
from stn_icnn_jax.photo.api import default_weights_path

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "smoke.py"

#: Every operation applied (default ranges).
EVERY = P.PhotometricConfig(**{
    name: dataclasses.replace(getattr(P.PhotometricConfig(), name), probability=1.0)
    for name in P.OPERATIONS})
#: None applied.
NEVER = P.PhotometricConfig(**{
    name: dataclasses.replace(getattr(P.PhotometricConfig(), name), probability=0.0)
    for name in P.OPERATIONS})

#: Pixels (r, g, b) of a 2x2 image (their BT.601 luma: ``_luma``, written out).
PIXELS = [[(200.0, 40.0, 10.0), (30.0, 180.0, 90.0)], [(0.0, 0.0, 255.0), (128.0, 128.0, 128.0)]]


def _tiny():
    return np.array(PIXELS, np.float32)


def _luma(r, g, b):
    return 0.299 * r + 0.587 * g + 0.114 * b


def _gradient(h=16, w=16):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 255.0 / h, xx * 255.0 / w, 128 + 0 * yy], -1).astype(np.float32)


# --- each operation against a statement by hand -------------------------------------

def test_brightness_multiplies_every_value_and_clips():
    out = P.brightness(_tiny(), 1.5)
    expected = [[[min(255.0, v * 1.5) for v in px] for px in row] for row in PIXELS]
    np.testing.assert_allclose(out, expected, atol=1e-4)
    assert out.dtype == np.float32


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.7])
def test_contrast_stretches_about_the_mean_luma_computed_by_hand(factor):
    lumas = [_luma(*px) for row in PIXELS for px in row]
    mean = sum(lumas) / len(lumas)
    expected = [[[min(255.0, max(0.0, mean + factor * (v - mean))) for v in px] for px in row]
                for row in PIXELS]
    np.testing.assert_allclose(P.contrast(_tiny(), factor), expected, atol=1e-3)


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0, 1.4])
def test_saturation_moves_each_pixel_from_its_own_luma(factor):
    expected = [[[min(255.0, max(0.0, _luma(*px) + factor * (v - _luma(*px)))) for v in px]
                 for px in row] for row in PIXELS]
    out = P.saturation(_tiny(), factor)
    np.testing.assert_allclose(out, expected, atol=1e-3)
    if factor == 0.0:  # greyscale: the three channels equal
        np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-4)


def test_hue_third_of_a_turn_cycles_the_primaries_and_keeps_grey():
    image = np.array([[(255, 0, 0), (0, 255, 0), (0, 0, 255), (90, 90, 90)]], np.float32)
    out = P.hue(image, 1 / 3)
    np.testing.assert_allclose(out, [[(0, 255, 0), (0, 0, 255), (255, 0, 0), (90, 90, 90)]],
                               atol=1e-3)
    np.testing.assert_allclose(P.hue(image, 0.0), image, atol=1e-4)
    m = P.hue_matrix(0.07)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)  # a rotation
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_small_hue_turn_keeps_each_pixels_channel_mean():
    image = np.array([[(120, 100, 90), (60, 140, 110)]], np.float32)  # far from the cube's faces
    out = P.hue(image, 0.04)
    np.testing.assert_allclose(out.mean(-1), image.mean(-1), atol=1e-3)
    assert not np.allclose(out, image, atol=1.0)


@pytest.mark.parametrize("exponent", [0.5, 2.0])
def test_gamma_by_hand(exponent):
    values = [0.0, 51.0, 127.5, 255.0]
    image = np.array([[[v] * 3 for v in values]], np.float32)
    expected = [[[255.0 * (v / 255.0) ** exponent] * 3 for v in values]]
    np.testing.assert_allclose(P.gamma(image, exponent), expected, atol=1e-3)


def test_blur_spreads_a_single_bright_pixel_symmetrically_and_keeps_its_sum():
    image = np.zeros((15, 15, 3), np.float32)
    image[7, 7, 0] = 255.0
    out = P.blur(image, 1.0)
    red = out[..., 0]
    np.testing.assert_allclose(red, red[::-1], atol=1e-4)
    np.testing.assert_allclose(red, red[:, ::-1], atol=1e-4)
    np.testing.assert_allclose(red, red.T, atol=1e-4)
    assert red.sum() == pytest.approx(255.0, rel=1e-3)
    assert red.argmax() == 7 * 15 + 7 and (out[..., 1:] == 0).all()
    # the separable Gaussian of radius ceil(3 sigma) = 3, normalised, written in numpy
    taps = np.exp(-np.arange(-3, 4) ** 2 / 2.0)
    taps /= taps.sum()
    expected = np.zeros((15, 15))
    expected[4:11, 4:11] = 255.0 * np.outer(taps, taps)
    np.testing.assert_allclose(red, expected, atol=1e-3)


def test_jpeg_at_quality_100_is_close_and_low_quality_is_worse():
    image = _gradient()
    best, worst = P.jpeg(image, 100), P.jpeg(image, 5)
    assert best.shape == image.shape and best.dtype == np.float32
    np.testing.assert_array_equal(best, np.rint(best))  # decoded uint8 values
    # OpenCV subsamples chroma 4:2:0 at every quality: luma is kept to rounding, colour
    # to a few levels on this steep gradient
    assert np.abs((best - image) @ P.LUMA).max() <= 2.0
    assert np.abs(best - image).mean() < 1.5
    assert np.abs(worst - image).mean() > 2 * np.abs(best - image).mean()


def test_colour_operations_keep_values_in_range():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 7, 3)).astype(np.float32)
    image[0, 0], image[0, 1] = 0, 255
    for name, value in [("brightness", 3.0), ("brightness", 0.0), ("contrast", 4.0),
                        ("saturation", 5.0), ("hue", 0.25), ("hue", -0.4), ("gamma", 0.2),
                        ("gamma", 3.0), ("blur", 2.0), ("jpeg", 1)]:
        out = P.OPERATIONS[name](image, value)
        assert out.shape == image.shape and out.dtype == np.float32, name
        assert out.min() >= 0.0 and out.max() <= 255.0, (name, value)


def test_bad_configs_and_images_are_refused():
    with pytest.raises(ValueError, match="probability"):
        P.PhotometricConfig(blur=P.Op(1.5, 0.5, 1.0))
    with pytest.raises(ValueError, match="low <= high"):
        P.PhotometricConfig(gamma=P.Op(0.5, 2.0, 1.0))
    with pytest.raises(ValueError, match="quality"):
        P.PhotometricConfig(jpeg=P.Op(0.5, 0, 90))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        P.brightness(np.zeros((4, 4)), 1.0)


# --- the draws -------------------------------------------------------------------------

def test_draws_follow_each_operations_probability_and_range():
    config = P.PhotometricConfig()
    rng = np.random.default_rng(3)
    draws = [P.sample(config, rng) for _ in range(3000)]
    for name in P.OPERATIONS:
        op = getattr(config, name)
        values = [d[name] for d in draws if d[name] is not None]
        assert len(values) / len(draws) == pytest.approx(op.probability, abs=0.03), name
        assert op.low <= min(values) and max(values) <= op.high, name
        if name == "jpeg":
            assert all(isinstance(v, int) for v in values) and {30, 95} <= set(values)


def test_one_operations_probability_does_not_shift_the_others_draws():
    no_blur = dataclasses.replace(EVERY, blur=dataclasses.replace(EVERY.blur, probability=0.0))
    for seed in range(5):
        a = P.sample(EVERY, np.random.default_rng(seed))
        b = P.sample(no_blur, np.random.default_rng(seed))
        assert b["blur"] is None and {k: v for k, v in a.items() if k != "blur"} == {
            k: v for k, v in b.items() if k != "blur"}


def test_apply_is_deterministic_given_the_seed_and_never_is_the_identity():
    image = _gradient()
    a = P.apply(image, EVERY, np.random.default_rng(5))
    b = P.apply(image, EVERY, np.random.default_rng(5))
    c = P.apply(image, EVERY, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(P.apply(image, NEVER, np.random.default_rng(5)), image)


# --- inside the augmentation and the pipeline ------------------------------------------

def _face(h=40, w=48):
    soft = np.zeros((h, w, 11), np.uint8)
    soft[..., 0] = 255
    soft[10:20, 8:30, 0], soft[10:20, 8:30, 6] = 0, 255
    soft[24:30, 12:26, 0], soft[24:30, 12:26, 9] = 0, 255
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([yy * 255 // h, xx * 255 // w, (yy + xx) * 3 % 256], -1).astype(np.uint8)
    image[10:20, 8:30] = (200, 150, 120)
    return image, soft


@pytest.mark.parametrize("scheme", [A.AugmentConfig(), A.AugmentConfig.authors()],
                         ids=["paper", "authors"])
def test_labels_are_bit_identical_and_images_change(scheme):
    image, soft = _face()
    with_photometric = dataclasses.replace(scheme, photometric=EVERY)
    for copy in range(5):
        for seed in (0, 1):
            plain = A.augment(image, soft, copy, scheme, seed)
            photo = A.augment(image, soft, copy, with_photometric, seed)
            np.testing.assert_array_equal(photo[1], plain[1])
            assert not np.array_equal(photo[0], plain[0]), (copy, seed)
    a = A.augment(image, soft, 3, with_photometric, seed=4)
    b = A.augment(image, soft, 3, with_photometric, seed=4)
    c = A.augment(image, soft, 3, with_photometric, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_photometric_draws_continue_the_augmentations_generator():
    """Copy 0 warps nothing: its image is the photometric operations drawn from
    ``default_rng(seed)`` right after the scheme's own draws, rounded to uint8."""
    image, soft = _face()
    config = A.AugmentConfig(photometric=EVERY)
    rng = np.random.default_rng(9)
    A._choose_ops(0, config, rng)
    expected = np.clip(np.rint(P.apply(image.astype(np.float32), EVERY, rng)), 0, 255)
    np.testing.assert_array_equal(A.augment(image, soft, 0, config, 9)[0], expected)


def _records():
    image, soft = _face()
    small, small_soft = _face(44, 36)
    return [{"image": image, "soft_labels": soft, "name": "r0"},
            {"image": small, "soft_labels": small_soft, "name": "r1"}]


def _epoch(augment, seed=3):
    cfg = ip.InputConfig(rough_size=24, canvas_size=64, batch_size=5, augment=augment, seed=seed)
    return list(ip.make_loader(_records(), ip.FEATURES, cfg))


def test_off_the_pipeline_is_bit_identical_to_before_photometric_existed():
    """The digest of an augmented epoch of every feature, recorded with the code of commit
    ec68e76 (before this module; OpenCV's optimised paths on and off gave the same)."""
    digest = hashlib.sha256()
    for batch in _epoch(A.AugmentConfig()):
        for key in sorted(batch):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(batch[key]).tobytes())
    assert digest.hexdigest() == (
        "25d7d2df194df050c058700588baeec93cd57095c62a4c8c36c38dc87efd7525")


def test_pipeline_labels_are_bit_identical_with_photometric_on():
    plain = _epoch(A.AugmentConfig())
    photo = _epoch(A.AugmentConfig(photometric=P.PhotometricConfig()))
    assert len(plain) == len(photo) == 2
    changed = 0
    for a, b in zip(plain, photo):
        for key in ip.FEATURES:
            if key in ("rough_image", "canvas"):
                continue
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        changed += sum(not np.array_equal(x, y) for x, y in zip(a["canvas"], b["canvas"]))
    assert changed >= 5  # of 10 examples; each draws an operation with probability ~0.95
    again = _epoch(A.AugmentConfig(photometric=P.PhotometricConfig()))
    other = _epoch(A.AugmentConfig(photometric=P.PhotometricConfig()), seed=4)
    for a, b in zip(photo, again):
        np.testing.assert_array_equal(a["canvas"], b["canvas"])
    assert not all(np.array_equal(a["canvas"], b["canvas"]) for a, b in zip(photo, other))


# --- the config key ---------------------------------------------------------------------

def test_config_key_round_trips_through_the_build():
    assert base_config().data.photometric == "none"
    off = build.input_config(load_config(SMOKE), 2, training=True)
    assert off.augment == dataclasses.replace(A.AugmentConfig(), copies=2)  # today's
    config = load_config(SMOKE, ["--config.data.photometric=default"])
    for loaded in (config, ml_collections.ConfigDict(json.loads(config.to_json()))):
        train = build.input_config(loaded, 2, training=True)
        assert train.augment == dataclasses.replace(
            A.AugmentConfig(), copies=2, photometric=P.PhotometricConfig())
        assert build.input_config(loaded, 2, training=False).augment is None
    config.data.augment = "authors"
    assert build.input_config(config, 2, training=True).augment == dataclasses.replace(
        A.AugmentConfig.authors(), copies=2, photometric=P.PhotometricConfig())
    config.data.augment = "none"  # photometric only: one copy, no warp, no noise
    assert build.input_config(config, 2, training=True).augment == A.AugmentConfig(
        copies=1, photometric=P.PhotometricConfig())
    config.data.photometric = "strong"
    with pytest.raises(ValueError, match="data.photometric must be one of"):
        build.input_config(config, 2, training=True)


def test_a_config_without_the_key_still_builds_the_papers_augmentation():
    """A config.json or weights file's config written before ``data.photometric`` existed
    means ``"none"`` (``ADDED_KEYS``; resuming such a work directory is tested with the
    other added keys in test_run_rules.py)."""
    old = json.loads(base_config().to_json(sort_keys=True))
    del old["data"]["photometric"]
    inputs = build.input_config(ml_collections.ConfigDict(old), 4, training=True)
    assert inputs.augment == A.AugmentConfig()
    assert inputs.augment.photometric is None
    bundled = weights.load(default_weights_path()).config  # trained with "default"
    assert bundled.data.photometric == "default"
    assert build.input_config(bundled, 4, training=True).augment.photometric == P.PhotometricConfig()
