"""input_pipeline: the grain loader's layout (rough image = bilinear RGB resize, checked
against a numpy statement), augmentation seeds per example, determinism, workers and errors."""

import numpy as np
import pytest

from stn_icnn_jax import part_centers
from stn_icnn_jax.data import augment, input_pipeline as ip, labels
from stn_icnn_jax.train.stages import STAGES


def _records(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(50, 90, 2))
        soft = np.zeros((h, w, 11), np.uint8)
        soft[..., 0] = 255
        y, x = int(rng.integers(5, h - 20)), int(rng.integers(5, w - 20))
        soft[y : y + 9, x : x + 15, 0] = 0
        soft[y : y + 9, x : x + 15, 6] = 255  # nose block
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        out.append({"image": image, "soft_labels": soft, "name": f"rec{i}"})
    return out


def _config(**kw):
    base = dict(rough_size=32, canvas_size=96, batch_size=3, augment=None, shuffle=False)
    base.update(kw)
    return ip.InputConfig(**base)


def test_layout_without_augmentation_matches_the_records():
    recs = _records()
    batches = list(ip.make_loader(recs, STAGES["end_to_end"].eval_features, _config()))
    assert len(batches) == 2
    for b, chunk in zip(batches, (recs[:3], recs[3:])):
        for k, rec in enumerate(chunk):
            h, w = rec["image"].shape[:2]
            top, left = b["image_origin"][k]
            assert (top, left) == ((96 - h) // 2, (96 - w) // 2)
            assert tuple(b["image_size"][k]) == (h, w)
            np.testing.assert_array_equal(b["canvas"][k, top : top + h, left : left + w], rec["image"])
            assert b["canvas"][k].sum() == rec["image"].astype(np.int64).sum()  # zero padding
            np.testing.assert_array_equal(
                b["canvas_label"][k, top : top + h, left : left + w],
                labels.hard_label(rec["soft_labels"]),
            )
            expected, present = part_centers.part_centers(
                labels.class_probs(rec["soft_labels"])[None], "paper"
            )
            np.testing.assert_array_equal(b["centers"][k], expected[0])
            assert b["centers_present"][k].tolist() == [False] * 4 + [True, False]
            assert b["rough_image"].shape == (3, 32, 32, 3) and b["rough_image"].max() <= 1.0
            assert set(np.unique(b["rough_label"][k])) <= {0, 5}


def test_stage_features():
    recs = _records()
    for stage in STAGES.values():
        for feats in (stage.features, stage.eval_features):
            batch = next(iter(ip.make_loader(recs, feats, _config())))
            assert set(batch) == set(feats)


def test_augmented_epoch_is_five_copies_and_deterministic():
    recs = _records()
    cfg = _config(augment=augment.AugmentConfig(), shuffle=True, batch_size=5, seed=3)
    a = list(ip.make_loader(recs, STAGES["rough"].features, cfg))
    b = list(ip.make_loader(recs, STAGES["rough"].features, cfg))
    assert len(a) == 6  # 6 records x 5 copies / 5
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["rough_image"], y["rough_image"])
    c = list(ip.make_loader(recs, STAGES["rough"].features, _config(augment=augment.AugmentConfig(), seed=4,
                                                   shuffle=True, batch_size=5)))
    assert not np.array_equal(a[0]["rough_image"], c[0]["rough_image"])


def test_workers_need_parsed_flags_and_the_loader_does_not_parse_them():
    from absl import flags

    if flags.FLAGS.is_parsed():
        flags.FLAGS.unparse_flags()
    cfg = _config(worker_count=2)
    with pytest.raises(RuntimeError, match="worker_count=2.*absl flags"):
        ip.make_loader(_records(), STAGES["rough"].features, cfg)
    assert not flags.FLAGS.is_parsed()


def test_workers_give_the_same_examples_deterministically(parsed_flags):
    # grain batches inside each worker, so the order depends on worker_count; the
    # examples of an epoch, and the order for a fixed worker_count, do not.
    recs = _records()

    def epoch(workers):
        cfg = _config(augment=augment.AugmentConfig(), shuffle=True, batch_size=5, seed=1,
                      worker_count=workers)
        return list(ip.make_loader(recs, STAGES["parts"].features, cfg))

    def checksums(batches):
        return sorted(int(c.astype(np.int64).sum()) for b in batches for c in b["canvas"])

    inline, pooled, again = epoch(0), epoch(2), epoch(2)
    assert checksums(inline) == checksums(pooled)
    for x, y in zip(pooled, again):
        np.testing.assert_array_equal(x["canvas"], y["canvas"])
        np.testing.assert_array_equal(x["centers"], y["centers"])


def test_batches_per_epoch_by_hand():
    # 1,000 records in batches of 8: 125 in the main process; workers share the records
    # round robin and each drops its own remainder: 500 + 500 -> 62 + 62,
    # 334 + 333 + 333 -> 41 * 3; without dropping, 334 -> 42 and 333 -> 42
    assert ip.batches_per_epoch(1000, 8) == 125
    assert ip.batches_per_epoch(1000, 8, worker_count=2) == 124
    assert ip.batches_per_epoch(1000, 8, worker_count=3) == 123
    assert ip.batches_per_epoch(1000, 8, worker_count=3, drop_remainder=False) == 126
    assert ip.batches_per_epoch(5, 8, worker_count=2) == 0


@pytest.mark.parametrize("workers,drop", [(0, True), (2, True), (3, True), (3, False)])
def test_batches_per_epoch_is_what_the_loader_yields(parsed_flags, workers, drop):
    """7 records in batches of 3: 2 batches inline, 2 with 2 workers (4 + 3 records),
    1 with 3 workers (3 + 2 + 2), 3 with 3 workers keeping the short batches."""
    cfg = _config(batch_size=3, worker_count=workers, drop_remainder=drop)
    got = len(list(ip.make_loader(_records(7), STAGES["rough"].features, cfg)))
    assert got == ip.batches_per_epoch(7, 3, workers, drop)
    assert got == {(0, True): 2, (2, True): 2, (3, True): 1, (3, False): 3}[workers, drop]


def test_image_larger_than_canvas_names_the_record():
    recs = _records()
    with pytest.raises(Exception, match=r"rec0.*does not fit the 40x40 canvas"):
        list(ip.make_loader(recs, STAGES["end_to_end"].eval_features, _config(canvas_size=40)))


def test_unknown_feature():
    with pytest.raises(ValueError, match="unknown batch features"):
        ip.make_loader(_records(), ("rough_image", "stage9"), _config())


def _bilinear_resize(image, size):
    """Half-pixel-centre bilinear resize (what cv2.INTER_LINEAR does), restated in numpy:
    output pixel o samples the input at (o + 0.5) * n / size - 0.5, clamped to the edge."""

    def axis(n):
        src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, src - lo

    image = image.astype(np.float64)
    (y0, y1, fy), (x0, x1, fx) = axis(image.shape[0]), axis(image.shape[1])
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def test_rough_image_is_the_bilinear_resize_of_the_rgb_image():
    recs = _records(3)
    # A smooth image (bilinear and nearest differ by a lot on it) with distinct channels.
    h, w = recs[1]["image"].shape[:2]
    y, x = np.mgrid[:h, :w]
    recs[1]["image"] = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 3.0 + y / 5.0)],
                                -1).astype(np.uint8)
    batch = next(iter(ip.make_loader(recs, ("rough_image", "canvas"), _config())))
    for k, rec in enumerate(recs):
        expected = _bilinear_resize(rec["image"], 32) / 255.0
        # cv2 interpolates uint8 in fixed point: at most one grey level off.
        np.testing.assert_allclose(batch["rough_image"][k], expected, atol=1.01 / 255)
    # Hand-worked: a 4x4 -> 2x2 resize averages each 2x2 block (sample at 0.5, 2.5).
    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, -1) * 10
    tiny = next(iter(ip.make_loader([{**recs[0], "image": image, "soft_labels": recs[0]["soft_labels"][:4, :4]}],
                                    ("rough_image",), _config(rough_size=2, batch_size=1))))
    np.testing.assert_allclose(tiny["rough_image"][0, ..., 0] * 255, [[25, 45], [105, 125]], atol=0.51)


def test_rough_image_and_canvas_keep_rgb_channel_order():
    rec = _records(1)[0]
    rec["image"] = np.zeros_like(rec["image"])
    rec["image"][..., 0] = 250  # red
    rec["image"][..., 2] = 20   # a little blue
    batch = next(iter(ip.make_loader([rec], ("rough_image", "canvas", "image_origin"),
                                     _config(batch_size=1))))
    np.testing.assert_allclose(batch["rough_image"][0, ..., 0], 250 / 255, atol=1e-6)
    np.testing.assert_allclose(batch["rough_image"][0, ..., 1], 0.0)
    np.testing.assert_allclose(batch["rough_image"][0, ..., 2], 20 / 255, atol=1e-6)
    top, left = batch["image_origin"][0]
    assert tuple(batch["canvas"][0, top + 3, left + 3]) == (250, 0, 20)


def test_copies_of_identical_records_get_different_augmentations():
    """Augmentation seeds depend on the example index: the same copy of two identical
    records (examples i and i + 5) is augmented differently; copy 0 stays the original."""
    rec = _records(1)[0]
    cfg = _config(augment=augment.AugmentConfig(), batch_size=5, seed=2)
    first, second = list(ip.make_loader([rec, dict(rec)], ("canvas",), cfg))
    np.testing.assert_array_equal(first["canvas"][0], second["canvas"][0])
    for copy in range(1, 5):
        assert not np.array_equal(first["canvas"][copy], second["canvas"][copy]), copy


def test_center_jitter_moves_each_centre_within_its_bound_per_seed():
    """``center_jitter=J``: every centre moves by at most J along each axis, by different
    shifts for different examples, parts and seeds (epochs), the same for the same seed;
    every other feature is unchanged."""
    recs = _records(n=6)
    features = STAGES["parts"].features
    augment_none = augment.AugmentConfig(copies=1, max_rotation_deg=0.0, max_shift=0.0,
                                         scale_range=(1.0, 1.0), noise_std=0.0)

    def batches(jitter, seed):
        config = _config(batch_size=6, augment=augment_none, seed=seed, center_jitter=jitter)
        return list(ip.make_loader(recs, features, config))[0]

    plain = batches(0.0, seed=3)
    jittered, again, other_seed = batches(4.0, seed=3), batches(4.0, seed=3), batches(4.0, seed=4)
    shift = jittered["centers"] - plain["centers"]
    assert np.abs(shift).max() <= 4.0 + 1e-5 and np.abs(shift).max() > 2.0
    assert len(np.unique(np.round(shift, 4))) == shift.size  # no two shifts alike
    np.testing.assert_array_equal(again["centers"], jittered["centers"])
    assert not np.allclose(other_seed["centers"], jittered["centers"])
    for key in features:
        if key != "centers":
            np.testing.assert_array_equal(jittered[key], plain[key], err_msg=key)


def test_crop_jitter_reaches_the_parts_stages_training_batches_only():
    from stn_icnn_jax.config import base_config, build

    c = base_config()
    c.model.crop_size = 81
    c.stages.parts.crop_jitter = 0.2
    assert build.input_config(c, 8, training=True, stage="parts").center_jitter == pytest.approx(16.2)
    assert build.input_config(c, 8, training=False, stage="parts").center_jitter == 0.0
    assert build.input_config(c, 8, training=True, stage="localizer").center_jitter == 0.0
    c.stages.localizer.crop_jitter = 0.1  # L's targets are the centres: refused
    with pytest.raises(ValueError, match="crop_jitter applies to the parts stage only"):
        build.stage_config(c, "localizer")
    c.stages.localizer.crop_jitter = 0.0
    c.stages.parts.crop_jitter = 0.5
    with pytest.raises(ValueError, match=r"crop_jitter must be in \[0, 0.5\)"):
        build.stage_config(c, "parts")
