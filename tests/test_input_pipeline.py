"""input_pipeline: the grain loader's layout, determinism, workers and errors."""

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


@pytest.fixture
def parsed_flags():
    """grain's workers read absl flags: parse them as a program would, then undo it."""
    from absl import flags

    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.mark_as_parsed()
    yield
    if not was_parsed:
        flags.FLAGS.unparse_flags()


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


def test_image_larger_than_canvas_names_the_record():
    recs = _records()
    with pytest.raises(Exception, match=r"rec0.*does not fit the 40x40 canvas"):
        list(ip.make_loader(recs, STAGES["end_to_end"].eval_features, _config(canvas_size=40)))


def test_unknown_feature():
    with pytest.raises(ValueError, match="unknown batch features"):
        ip.make_loader(_records(), ("rough_image", "stage9"), _config())
