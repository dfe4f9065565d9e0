"""metrics: confusion counts and the paper's merged-class, pooled F1 (docs/authors-code.md §4.1)."""

import math

import numpy as np
import pytest

from stn_icnn_jax import metrics


def test_confusion_matrix_hand_example():
    target = np.array([[0, 1, 1], [3, 4, 8]])
    pred = np.array([[0, 1, 2], [4, 4, 0]])
    conf = np.asarray(metrics.confusion_matrix(pred, target))
    expected = np.zeros((9, 9), int)
    for t, p in [(0, 0), (1, 1), (1, 2), (3, 4), (4, 4), (8, 0)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(conf, expected)


def test_confusion_matrix_matches_numpy_on_random_maps():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 9, size=(2, 17, 13))
    pred = rng.integers(0, 9, size=(2, 17, 13))
    conf = np.asarray(metrics.confusion_matrix(pred, target))
    ref = np.zeros((9, 9), int)
    np.add.at(ref, (target.ravel(), pred.ravel()), 1)
    np.testing.assert_array_equal(conf, ref)
    assert conf.sum() == target.size


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.confusion_matrix(np.zeros((2, 3), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="integer"):
        metrics.confusion_matrix(np.zeros((2, 3)), np.zeros((2, 3), int))


def test_f1_hand_worked_example():
    # Target: 4 px left eye (3), 2 px right eye (4), 2 px nose (5), rest bg.
    # Pred: the 4 left-eye px -> 2 as left eye, 1 as right eye, 1 as bg;
    #       the 2 right-eye px -> right eye; nose px -> 1 nose, 1 left eye; 1 bg px -> nose.
    conf = np.zeros((9, 9), int)
    conf[3, 3] = 2
    conf[3, 4] = 1
    conf[3, 0] = 1
    conf[4, 4] = 2
    conf[5, 5] = 1
    conf[5, 3] = 1
    conf[0, 5] = 1
    conf[0, 0] = 10
    f1 = metrics.f1_scores(conf)
    # eyes = {3,4}: TP = 2+1+2 = 5; GT eyes = 6; predicted eyes = 2+1+2+1 = 6.
    assert f1["eyes"] == pytest.approx(2 * 5 / (6 + 6))
    # nose: TP 1; GT 2; predicted 2 (one true, one from bg).
    assert f1["nose"] == pytest.approx(2 * 1 / (2 + 2))
    # overall = {1..8}: TP = any fg -> any fg = 5 + 1 + 1 = 7 (nose->eye counts);
    # GT fg = 8; predicted fg = 8 (3->0 lost, 0->5 added).
    assert f1["overall"] == pytest.approx(2 * 7 / (8 + 8))
    # Absent sets are undefined.
    assert math.isnan(f1["brows"]) and math.isnan(f1["mouth"])
    assert list(f1) == [
        "eyes", "brows", "nose", "inner_mouth", "upper_lip", "lower_lip", "mouth", "overall"
    ]


def test_f1_pooled_not_averaged_over_images():
    # Image A: perfect 1-px nose. Image B: 9 GT nose px, none predicted.
    a = np.zeros((9, 9), int)
    a[5, 5] = 1
    b = np.zeros((9, 9), int)
    b[5, 0] = 9
    pooled = metrics.f1_scores(a + b)["nose"]
    assert pooled == pytest.approx(2 * 1 / (10 + 1))
    mean_of_images = (metrics.f1_scores(a)["nose"] + metrics.f1_scores(b)["nose"]) / 2
    assert pooled != pytest.approx(mean_of_images)


def test_f1_mouth_merges_lips_and_inner_mouth():
    conf = np.zeros((9, 9), int)
    conf[6, 8] = 3  # upper lip predicted as lower lip
    conf[7, 7] = 2
    f1 = metrics.f1_scores(conf)
    assert f1["mouth"] == pytest.approx(1.0)
    assert f1["upper_lip"] == pytest.approx(0.0)
    assert f1["lower_lip"] == pytest.approx(0.0)
    assert f1["inner_mouth"] == pytest.approx(1.0)


def test_f1_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        metrics.f1_scores(np.zeros((9, 8)))
    with pytest.raises(ValueError, match="classes"):
        metrics.f1_scores(np.zeros((5, 5)))
