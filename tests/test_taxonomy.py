"""The taxonomy: the layouts, parts, F1 sets and colours agree with each other."""

import numpy as np

from stn_icnn_jax import taxonomy as T


def test_nine_classes_are_the_smith_parts_in_order():
    assert T.NUM_SMITH_CLASSES == 11 and T.NUM_CLASSES == 9
    assert T.CLASS_NAMES == ("background", "left_eyebrow", "right_eyebrow", "left_eye",
                             "right_eye", "nose", "upper_lip", "inner_mouth", "lower_lip")
    for smith, name in enumerate(T.SMITH_CLASS_NAMES):
        label = T.SMITH_TO_CLASS[smith]
        expected = "background" if name in ("background", "face_skin", "hair") else name
        assert T.CLASS_NAMES[label] == expected, name
        assert T.SKIN_HAIR_CLASS_NAMES[T.SMITH_TO_SKIN_HAIR[smith]] == name, name


def test_parts_cover_each_foreground_class_once():
    covered = sorted(c for classes in T.PART_CLASSES for c in classes)
    assert covered == list(range(1, T.NUM_CLASSES))
    assert len(T.PART_NAMES) == len(T.PART_CLASSES) == T.NUM_PARTS == 6
    assert T.PART_NUM_LABELS == (2, 2, 2, 2, 2, 4)
    for name, classes in zip(T.PART_NAMES, T.PART_CLASSES):
        kind = name.split("_")[0]
        assert all(kind in T.CLASS_NAMES[c] or kind == "mouth" for c in classes), name


def test_f1_sets_are_the_papers_columns():
    assert list(T.F1_SETS) == ["eyes", "brows", "nose", "inner_mouth", "upper_lip",
                               "lower_lip", "mouth", "overall"]
    assert T.F1_SETS["overall"] == tuple(range(1, T.NUM_CLASSES))
    for name, members in T.F1_SETS.items():
        assert 0 not in members, name


def test_palettes_give_each_class_its_smith_channels_colour():
    assert T.SMITH_PALETTE.shape == (11, 3) and T.PALETTE.shape == (9, 3)
    assert len({tuple(c) for c in T.SMITH_PALETTE}) == 11  # distinct colours
    for label in range(1, T.NUM_CLASSES):
        smith = int(np.flatnonzero(T.SMITH_TO_CLASS == label)[0])
        np.testing.assert_array_equal(T.PALETTE[label], T.SMITH_PALETTE[smith])
    assert T.class_names() == T.CLASS_NAMES and len(T.class_names(True)) == 11
