"""augment: the paper's 5-copy scheme, determinism, and image/label consistency."""

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
