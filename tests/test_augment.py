"""augment: the paper's 5-copy scheme, determinism, image/label consistency, the measured
rotation / shift / scale against the configured ranges and axes, and where noise goes."""

import numpy as np
import pytest

from stn_icnn_jax.data import augment as A


def _face(h=64, w=80):
    """An image whose colour encodes its label: blocks of classes 2, 4 and 6 on bg."""
    soft = np.zeros((h, w, 11), np.uint8)
    soft[..., 0] = 255
    image = np.full((h, w, 3), 40, np.uint8)
    for cls, (y0, y1, x0, x1), colour in [
        (2, (10, 20, 10, 40), (250, 0, 0)),
        (4, (25, 40, 45, 70), (0, 250, 0)),
        (6, (44, 58, 20, 50), (0, 0, 250)),
    ]:
        soft[y0:y1, x0:x1, 0] = 0
        soft[y0:y1, x0:x1, cls] = 255
        image[y0:y1, x0:x1] = colour
    return image, soft


@pytest.mark.parametrize("seed", range(6))
def test_paper_copy_i_applies_i_distinct_operations(seed):
    cfg = A.AugmentConfig()
    for i in range(5):
        ops = A.applied_ops(i, cfg, seed)
        assert len(ops) == i and len(set(ops)) == i


def test_copy_zero_is_the_original_and_results_are_deterministic():
    image, soft = _face()
    for cfg in (A.AugmentConfig(), A.AugmentConfig.authors()):
        out = A.augment(image, soft, 0, cfg, seed=1)
        np.testing.assert_array_equal(out[0], image)
        np.testing.assert_array_equal(out[1], soft)
        a = A.augment(image, soft, 4, cfg, seed=7)
        b = A.augment(image, soft, 4, cfg, seed=7)
        c = A.augment(image, soft, 4, cfg, seed=8)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])


def test_integer_shift_matrix_moves_pixels_exactly():
    import cv2

    image, _ = _face()
    m = A.affine_matrix(image.shape[:2], shift=(3, 5))
    out = cv2.warpAffine(image, m, (80, 64), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[3:, 5:], image[:-3, :-5])
    assert (out[:3] == 0).all() and (out[:, :5] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_image_and_labels_move_together(seed):
    image, soft = _face()
    cfg = A.AugmentConfig(scale_range=(0.7, 1.2), noise_std=0.0)
    out_image, out_soft = A.augment(image, soft, 3, cfg, seed)
    label = out_soft.argmax(-1)
    colour_class = np.select(
        [out_image[..., 0] > 200, out_image[..., 1] > 200, out_image[..., 2] > 200],
        [2, 4, 6], default=0,
    )
    # Colours and labels agree except on one-pixel borders where both are interpolated.
    confident = out_soft.max(-1) > 250
    agree = (label == colour_class)[confident & (out_image.max(-1) > 200) | (label == 0) & confident]
    assert agree.mean() > 0.97
    # The labels stay a partition of 255.
    sums = out_soft.astype(int).sum(-1)
    assert np.abs(sums - 255).max() <= 6


def test_noise_touches_the_image_only():
    image, soft = _face()
    cfg = A.AugmentConfig()
    for seed in range(20):
        if A.applied_ops(1, cfg, seed) == ["noise"]:
            out_image, out_soft = A.augment(image, soft, 1, cfg, seed)
            np.testing.assert_array_equal(out_soft, soft)
            assert np.abs(out_image.astype(int) - image).mean() > 5
            return
    pytest.fail("no seed chose noise alone")


def test_bad_input_errors():
    image, soft = _face()
    with pytest.raises(ValueError, match="uint8"):
        A.augment(image.astype(np.float32), soft, 1, A.AugmentConfig(), 0)
    with pytest.raises(ValueError, match="matching"):
        A.augment(image, soft[:10], 1, A.AugmentConfig(), 0)
    with pytest.raises(ValueError, match="copy_index"):
        A.augment(image, soft, 5, A.AugmentConfig(), 0)


# --------------------------------------------------------------------------- measured geometry
#
# A "coordinate image" holds in each pixel its own (x + 10, y + 10, 200). Bilinear
# interpolation reproduces linear functions exactly, so after a warp every output pixel
# inside the image still holds the source coordinates it was sampled from; a least-squares
# fit then recovers the applied affine map, whatever the code drew.

H, W = 40, 120  # not square: the shift bounds of y (0.2 H) and x (0.2 W) differ


def _coordinate_image(h=H, w=W):
    y, x = np.mgrid[:h, :w]
    return np.stack([x + 10, y + 10, np.full_like(x, 200)], -1).astype(np.uint8)


def _measure(out_image):
    """(angle_deg, scale, (shift_y, shift_x) in pixels) of the forward warp that made
    ``out_image`` from the coordinate image (cv2.getRotationMatrix2D conventions)."""
    inside = out_image[..., 2] == 200
    core = inside.copy()  # drop the pixels next to the border (mixed with black)
    core[1:] &= inside[:-1]
    core[:-1] &= inside[1:]
    core[:, 1:] &= inside[:, :-1]
    core[:, :-1] &= inside[:, 1:]
    v, u = np.nonzero(core)
    assert len(u) >= 30, "too little of the image is left to measure"
    design = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64)
    src = out_image[v, u, :2].astype(np.float64) - 10.0
    inverse, *_ = np.linalg.lstsq(design, src, rcond=None)  # (3, 2): [u v 1] -> (x, y)
    inverse = np.vstack([inverse.T, [0, 0, 1]])
    forward = np.linalg.inv(inverse)
    angle = np.degrees(np.arctan2(forward[0, 1], forward[0, 0]))
    scale = np.hypot(forward[0, 0], forward[0, 1])
    centre = np.array([(W - 1) / 2, (H - 1) / 2, 1.0])
    moved = forward @ centre
    return angle, scale, (moved[1] - centre[1], moved[0] - centre[0])


def test_measurement_recovers_a_known_warp():
    import cv2

    image = _coordinate_image()
    m = A.affine_matrix((H, W), angle_deg=7.0, shift=(-3.0, 11.0), scale=0.8)
    angle, scale, (sy, sx) = _measure(cv2.warpAffine(image, m, (W, H), flags=cv2.INTER_LINEAR))
    assert angle == pytest.approx(7.0, abs=0.1)
    assert scale == pytest.approx(0.8, abs=0.005)
    assert (sy, sx) == pytest.approx((-3.0, 11.0), abs=0.2)


@pytest.mark.parametrize("cfg, seeds", [
    (A.AugmentConfig(noise_std=0.0), range(30)),
    (A.AugmentConfig(noise_std=0.0, max_rotation_deg=5.0, max_shift=0.05,
                     scale_range=(0.9, 1.1)), range(12)),
])
def test_applied_rotation_shift_and_scale_follow_the_configured_ranges_and_axes(cfg, seeds):
    image = _coordinate_image()
    soft = np.zeros((H, W, 11), np.uint8)
    soft[..., 0] = 255
    lo, hi = cfg.scale_range
    angles, scales, shifts_y, shifts_x = [], [], [], []
    for seed in seeds:
        for copy in range(1, 5):
            ops = A.applied_ops(copy, cfg, seed)
            angle, scale, (sy, sx) = _measure(A.augment(image, soft, copy, cfg, seed)[0])
            if "rotate" in ops:
                assert abs(angle) <= cfg.max_rotation_deg + 0.2, (seed, copy, angle)
                angles.append(abs(angle))
            else:
                assert abs(angle) < 0.2, (seed, copy, ops, angle)
            if "scale" in ops:
                assert lo - 0.01 <= scale <= hi + 0.01, (seed, copy, scale)
                scales.append(scale)
            else:
                assert abs(scale - 1) < 0.005, (seed, copy, ops, scale)
            if "shift" in ops:
                # y moves by at most max_shift * H, x by at most max_shift * W
                assert abs(sy) <= cfg.max_shift * H + 0.3, (seed, copy, sy)
                assert abs(sx) <= cfg.max_shift * W + 0.3, (seed, copy, sx)
                shifts_y.append(abs(sy))
                shifts_x.append(abs(sx))
            else:
                assert abs(sy) < 0.3 and abs(sx) < 0.3, (seed, copy, ops, sy, sx)
    # ... and the draws fill those ranges (x shifts go well past the y bound).
    assert max(angles) > 0.6 * cfg.max_rotation_deg
    assert max(shifts_y) > 0.5 * cfg.max_shift * H
    assert max(shifts_x) > 1.5 * cfg.max_shift * H and max(shifts_x) > 0.5 * cfg.max_shift * W
    assert min(scales) < lo + 0.3 * (hi - lo) and max(scales) > hi - 0.3 * (hi - lo)


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("scheme", ["paper", "authors"])
def test_noise_changes_only_the_image_of_the_copies_that_draw_it(scheme):
    """With and without noise (same seed, same draws): the labels are identical for every
    copy, and the image differs exactly in the copies whose ops include noise."""
    image, soft = _face()
    base = A.AugmentConfig() if scheme == "paper" else A.AugmentConfig.authors()
    quiet = A.AugmentConfig(**{**base.__dict__, "noise_std": 0.0})
    with_noise = 0
    for seed in range(6):
        for copy in range(5):
            noisy_image, noisy_soft = A.augment(image, soft, copy, base, seed)
            clean_image, clean_soft = A.augment(image, soft, copy, quiet, seed)
            np.testing.assert_array_equal(noisy_soft, clean_soft)
            if "noise" in A.applied_ops(copy, base, seed):
                with_noise += 1
                assert np.abs(noisy_image.astype(int) - clean_image).mean() > 5
            else:
                np.testing.assert_array_equal(noisy_image, clean_image)
    assert with_noise >= 3


def test_noise_has_the_configured_std_and_where_it_applies():
    grey = np.full((48, 48, 3), 128, np.uint8)
    grey[:, :16] = 0  # black band (padding)
    soft = np.zeros((48, 48, 11), np.uint8)
    soft[..., 0] = 255
    for cfg, black_noisy in ((A.AugmentConfig(noise_std=0.05), True),
                             (A.AugmentConfig.authors(), False)):
        seed = next(s for s in range(50) if A.applied_ops(1, cfg, s) == ["noise"])
        out = A.augment(grey, soft, 1, cfg, seed)[0].astype(float)
        diff = out[:, 16:] - 128.0
        assert diff.std() == pytest.approx(cfg.noise_std * 255.0, rel=0.1)
        assert abs(diff.mean()) < 1.5
        if black_noisy:  # the paper's noise is everywhere (clipped at 0)
            assert (out[:, :16] > 0).mean() > 0.3
        else:  # the authors' keeps black padding black
            assert (out[:, :16] == 0).all()
