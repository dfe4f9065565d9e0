"""part_centers: hand-worked centroids under both conventions, and part label maps."""

import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax import part_centers as pc


def _canvas(h, w):
    lab = np.zeros((1, h, w, 9), np.float32)
    lab[..., 0] = 1.0
    return lab


def _paint(lab, cls, y0, y1, x0, x1, value=1.0):
    lab[0, y0:y1, x0:x1, cls] = value
    lab[0, y0:y1, x0:x1, 0] = 1.0 - value


def test_paper_centres_of_boxes_and_mouth_union():
    lab = _canvas(60, 80)
    _paint(lab, 1, 10, 13, 10, 21)  # brow_l rows 10-12, cols 10-20 -> (11, 15)
    _paint(lab, 2, 10, 13, 50, 61)  # brow_r -> (11, 55)
    _paint(lab, 3, 20, 25, 12, 19)  # eye_l -> (22, 15)
    _paint(lab, 4, 20, 25, 52, 59)  # eye_r -> (22, 55)
    _paint(lab, 5, 28, 37, 33, 38)  # nose -> (32, 35)
    _paint(lab, 6, 44, 46, 25, 46)  # upper lip rows 44-45
    _paint(lab, 8, 46, 50, 25, 46)  # lower lip rows 46-49, closed mouth (no class 7)
    centers, present = pc.part_centers(jnp.asarray(lab), "paper")
    expected = [(11, 15), (11, 55), (22, 15), (22, 55), (32, 35)]
    np.testing.assert_array_equal(np.asarray(centers[0, :5]), expected)
    # Union of 2x21 rows 44-45 and 4x21 rows 46-49: mean row = (2*44.5 + 4*47.5)/6 = 46.5
    # -> rounded half up to 47; col 35.
    np.testing.assert_array_equal(np.asarray(centers[0, 5]), (47, 35))
    assert bool(present.all())


def test_authors_closed_mouth_is_dragged_to_canvas_centre():
    # docs/authors-code.md §2.3: upper lip at y=604, lower lip at y=617, no inner mouth, 1024 canvas
    # -> the authors' mouth centre is y=577 instead of about 610.
    lab = _canvas(1024, 1024)
    # Two-row lips (centroids 604.5 and 617.5 floor to 604 and 617; one-row lips would
    # floor to 603 and 616 because the 1e-10 weights pull every centroid a hair inward).
    _paint(lab, 6, 604, 606, 500, 542)
    _paint(lab, 8, 617, 619, 500, 542)
    centers, present = pc.part_centers(jnp.asarray(lab), "authors")
    assert float(centers[0, 5, 0]) == 577.0
    assert float(centers[0, 5, 1]) == 517.0  # (520 + 511 + 520) / 3: x is dragged too
    # Absent parts sit at floor of the canvas centre, 511.
    np.testing.assert_array_equal(np.asarray(centers[0, 0]), (511, 511))
    assert not bool(present[0, 0]) and bool(present[0, 5])
    paper, _ = pc.part_centers(jnp.asarray(lab), "paper")
    assert float(paper[0, 5, 0]) == 611.0  # (604.5 + 617.5) / 2 = 611


def test_paper_absent_part_uses_fallback():
    lab = _canvas(20, 20)
    _paint(lab, 5, 8, 11, 8, 11)
    fallback = np.tile(np.array([[3.0, 4.0]], np.float32), (6, 1))
    centers, present = pc.part_centers(jnp.asarray(lab), "paper", fallback=fallback)
    assert present.tolist() == [[False, False, False, False, True, False]]
    np.testing.assert_array_equal(np.asarray(centers[0, 0]), (3, 4))
    np.testing.assert_array_equal(np.asarray(centers[0, 4]), (9, 9))


def test_part_label_maps():
    crops = np.zeros((1, 6, 2, 3), np.int32)
    crops[0, 0] = [[1, 2, 0], [3, 1, 1]]
    crops[0, 5] = [[6, 7, 8], [5, 0, 6]]
    maps = pc.part_label_maps(jnp.asarray(crops))
    np.testing.assert_array_equal(np.asarray(maps[0][0]), [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(np.asarray(maps[5][0]), [[1, 2, 3], [0, 0, 1]])


def test_errors():
    with pytest.raises(ValueError, match=r"\(N, H, W, 9\)"):
        pc.part_centers(jnp.zeros((4, 4, 9)))
    with pytest.raises(ValueError, match="convention"):
        pc.part_centers(jnp.zeros((1, 4, 4, 9)), "median")
