"""Tests of the procedural synthetic face generator (stn_icnn_jax.data.synthetic)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from stn_icnn_jax.taxonomy import NUM_SMITH_CLASSES, SMITH_CLASS_NAMES
from stn_icnn_jax.data.synthetic import (
    SyntheticFaceConfig,
    generate_face,
    generate_faces,
)

BG, SKIN, LBROW, RBROW, LEYE, REYE, NOSE, ULIP, IMOUTH, LLIP, HAIR = range(11)

#: no occluders / accessories / hair over the face: every part is visible
CLEAN = SyntheticFaceConfig(occluder_prob=0.0, glasses_prob=0.0, hat_prob=0.0, fringe_prob=0.0)
#: small images: fast tests
SMALL = dict(min_size=120, max_size=200)


def _centroid(soft, c):
    w = soft[..., c].astype(np.float64)
    m = w.sum()
    if m == 0:
        return None, 0.0
    ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(xs * w).sum() / m, (ys * w).sum() / m]), m / 255.0


def test_class_names():
    assert NUM_SMITH_CLASSES == 11 == len(SMITH_CLASS_NAMES)
    assert SMITH_CLASS_NAMES[0] == "background" and SMITH_CLASS_NAMES[8] == "inner_mouth"
    assert SMITH_CLASS_NAMES[2] == "left_eyebrow" and SMITH_CLASS_NAMES[10] == "hair"


def test_deterministic_bitwise():
    a = generate_face(1234)
    b = generate_face(1234)
    assert a["image"].tobytes() == b["image"].tobytes()
    assert a["soft_labels"].tobytes() == b["soft_labels"].tobytes()
    assert a["meta"] == b["meta"]
    c = generate_face(1235)
    assert c["image"].shape != a["image"].shape or not np.array_equal(c["image"], a["image"])


def test_config_is_part_of_the_determinism():
    cfg = SyntheticFaceConfig(jpeg_prob=0.0)
    a, b = generate_face(7, cfg), generate_face(7, cfg)
    assert np.array_equal(a["image"], b["image"])
    assert a["meta"]["jpeg_quality"] == 0


def test_shapes_dtypes_and_partition():
    for f in generate_faces(range(12)):
        img, soft, meta = f["image"], f["soft_labels"], f["meta"]
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape == (h, w, 3)
        assert soft.dtype == np.uint8 and soft.shape == (h, w, NUM_SMITH_CLASSES)
        assert 200 <= h <= 600 and 200 <= w <= 600
        assert (meta["height"], meta["width"]) == (h, w)
        tot = soft.sum(-1, dtype=np.int32)
        assert tot.min() >= 253 and tot.max() <= 257
        # every class map is used by some pixel for the face classes that are always
        # drawn (skin, nose) and the picture is not blank
        assert soft[..., SKIN].max() == 255
        assert img.std() > 10


def test_size_range_and_square():
    cfg = SyntheticFaceConfig(min_size=64, max_size=100)
    sizes = [generate_face(s, cfg)["image"].shape[:2] for s in range(10)]
    for h, w in sizes:
        assert 64 <= h <= 100 and 64 <= w <= 100
    assert any(h != w for h, w in sizes)  # non-square images happen
    sq = SyntheticFaceConfig(min_size=64, max_size=100, square_prob=1.0)
    for s in range(4):
        h, w = generate_face(s, sq)["image"].shape[:2]
        assert h == w


def test_bad_config_and_seed():
    with pytest.raises(ValueError):
        SyntheticFaceConfig(min_size=300, max_size=200)
    with pytest.raises(ValueError):
        SyntheticFaceConfig(max_rotation_deg=120)
    with pytest.raises(ValueError):
        generate_face(-1)


def test_soft_borders():
    f = generate_face(3, CLEAN)
    soft = f["soft_labels"]
    mx = soft.max(-1)
    soft_px = (mx < 250).mean()
    assert soft_px > 0.002  # borders are anti-aliased ...
    assert soft_px < 0.25  # ... but most pixels are sure
    for c in (SKIN, LEYE, NOSE, ULIP):
        ch = soft[..., c]
        assert ((ch > 20) & (ch < 235)).any(), SMITH_CLASS_NAMES[c]


def test_meta_is_plain_scalars():
    m = generate_face(5)["meta"]
    for k, v in m.items():
        assert isinstance(v, (bool, int, float, str, np.generic)), (k, type(v))
    for k in ("mouth_open", "eyes_closed", "glasses", "occluder", "face_center_x",
              "face_scale", "rotation_deg", "yaw_deg", "hair_style", "jpeg_quality"):
        assert k in m


def test_mouth_open_has_inner_mouth_closed_has_none():
    opened = dataclasses.replace(CLEAN, mouth_open_prob=1.0, **SMALL)
    closed = dataclasses.replace(CLEAN, mouth_open_prob=0.0, **SMALL)
    for s in range(6):
        fo = generate_face(s, opened)
        assert fo["meta"]["mouth_open"]
        assert fo["soft_labels"][..., IMOUTH].astype(np.int64).sum() > 255 * 3
        fc = generate_face(s, closed)
        assert not fc["meta"]["mouth_open"]
        assert fc["soft_labels"][..., IMOUTH].max() == 0
        assert fc["soft_labels"][..., ULIP].max() > 200 and fc["soft_labels"][..., LLIP].max() > 200


def test_meta_mouth_flag_matches_labels_by_default():
    for s in range(8):
        f = generate_face(s, dataclasses.replace(SyntheticFaceConfig(), **SMALL))
        if not f["meta"]["mouth_open"]:
            assert f["soft_labels"][..., IMOUTH].max() == 0


def test_closed_eyes_are_thin_slivers():
    # a closed eye keeps a thin sliver along the lash line (>= ~1 px, so on tiny faces
    # it is not much thinner than an open eye: use the default sizes here)
    cfg = dataclasses.replace(CLEAN, eyes_closed_prob=1.0)
    ocfg = dataclasses.replace(CLEAN, eyes_closed_prob=0.0, wink_prob=0.0)
    for s in range(3):
        fc, fo = generate_face(s, cfg), generate_face(s, ocfg)
        assert fc["meta"]["eyes_closed"] and not fo["meta"]["eyes_closed"]
        for c in (LEYE, REYE):
            closed = fc["soft_labels"][..., c].astype(np.int64).sum()
            opened = fo["soft_labels"][..., c].astype(np.int64).sum()
            assert 0 < closed < 0.6 * opened


@pytest.mark.parametrize("hand_fraction", [1.0, 0.0])
def test_occluder_removes_labels_under_it(hand_fraction):
    on = dataclasses.replace(SyntheticFaceConfig(), occluder_prob=1.0, hand_fraction=hand_fraction, **SMALL)
    off = dataclasses.replace(on, occluder_prob=0.0)
    removed_any = 0
    for s in range(6):
        a, b = generate_face(s, on), generate_face(s, off)
        ma = a["meta"]
        assert ma["occluder"] == ("hand" if hand_fraction == 1.0 else "block")
        assert b["meta"]["occluder"] == "none"
        la = a["soft_labels"].astype(np.int32)
        lb = b["soft_labels"].astype(np.int32)
        x0, y0, x1, y1 = ma["occluder_x0"], ma["occluder_y0"], ma["occluder_x1"], ma["occluder_y1"]
        assert 0 <= x0 < x1 <= la.shape[1] and 0 <= y0 < y1 <= la.shape[0]
        # the rest of the face is unchanged (separate random streams)
        inside = np.zeros(la.shape[:2], bool)
        inside[y0:y1, x0:x1] = True
        assert np.array_equal(la[~inside], lb[~inside])
        # under the occluder: no class gains except background
        diff = la - lb
        assert diff[..., 1:].max() <= 1
        assert diff[..., 0].min() >= -1
        removed = (lb[..., 1:10].sum(-1) - la[..., 1:10].sum(-1)) > 128
        removed_any += int(removed.sum() > 0)
    assert removed_any >= 4  # most occluders land on the face


def test_fringe_hides_brows():
    on = dataclasses.replace(CLEAN, fringe_prob=1.0, **SMALL)
    off = dataclasses.replace(on, fringe_prob=0.0)
    covered = 0
    for s in range(12):
        a, b = generate_face(s, on), generate_face(s, off)
        brows_a = a["soft_labels"][..., [LBROW, RBROW]].astype(np.int64).sum()
        brows_b = b["soft_labels"][..., [LBROW, RBROW]].astype(np.int64).sum()
        assert brows_a <= brows_b
        if a["meta"]["brows_covered"]:
            assert brows_a < 0.9 * brows_b
            covered += 1
            # the hidden brow pixels became hair
            gone = (b["soft_labels"][..., LBROW].astype(int) + b["soft_labels"][..., RBROW]) - (
                a["soft_labels"][..., LBROW].astype(int) + a["soft_labels"][..., RBROW]
            )
            assert a["soft_labels"][..., HAIR][gone > 128].min() > 128
    assert covered >= 2


def _axis_positions(soft, rot_deg):
    """Centroids projected on the face's down axis and right axis."""
    r = np.deg2rad(rot_deg)
    down = np.array([-np.sin(r), np.cos(r)])
    right = np.array([np.cos(r), np.sin(r)])
    out = {}
    for c in range(NUM_SMITH_CLASSES):
        p, m = _centroid(soft, c)
        if p is not None and m > 2:
            out[c] = (float(p @ down), float(p @ right))
    return out


def test_left_is_image_left_and_geometry_order():
    cfg = dataclasses.replace(CLEAN, max_rotation_deg=10.0, eyes_closed_prob=0.0, wink_prob=0.0)
    for s in range(10):
        f = generate_face(s, cfg)
        soft = f["soft_labels"]
        for lc, rc in ((LBROW, RBROW), (LEYE, REYE)):
            pl, _ = _centroid(soft, lc)
            pr, _ = _centroid(soft, rc)
            assert pl is not None and pr is not None
            assert pl[0] < pr[0], (s, SMITH_CLASS_NAMES[lc])
        pos = _axis_positions(soft, f["meta"]["rotation_deg"])
        brows = (pos[LBROW][0] + pos[RBROW][0]) / 2
        eyes = (pos[LEYE][0] + pos[REYE][0]) / 2
        nose = pos[NOSE][0]
        mouth = np.mean([pos[c][0] for c in (ULIP, LLIP)])
        assert brows < eyes < nose < mouth, s
        assert pos[ULIP][0] < pos[LLIP][0]
        # proportions: the eyes are about one eye width apart, the mouth is narrower
        # than the face
        io = abs(pos[REYE][1] - pos[LEYE][1])
        assert 0.3 * io < mouth - eyes < 2.0 * io


def test_meta_landmarks_inside_labels():
    f = generate_face(11, CLEAN)
    m, soft = f["meta"], f["soft_labels"]
    for name, c in (("left_eye", LEYE), ("right_eye", REYE), ("nose_tip", NOSE)):
        x, y = int(round(m[f"{name}_x"])), int(round(m[f"{name}_y"]))
        win = soft[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4, c]
        assert win.max() > 128, name


def test_occluders_hair_and_accessories_vary():
    metas = [generate_face(s, dataclasses.replace(SyntheticFaceConfig(), **SMALL))["meta"] for s in range(40)]
    assert len({m["hair_style"] for m in metas}) >= 4
    assert any(m["glasses"] for m in metas)
    assert any(m["occluder"] != "none" for m in metas)
    assert any(m["mouth_open"] for m in metas) and not all(m["mouth_open"] for m in metas)
    assert any(m["fringe"] for m in metas)
    assert min(m["yaw_deg"] for m in metas) < -5 < 5 < max(m["yaw_deg"] for m in metas)


def test_speed_smoke(capsys):
    # not a timed assertion: only reports the time per face
    t = time.process_time()
    n = 10
    for f in generate_faces(range(100, 100 + n)):
        assert f["image"].size > 0
    dt = (time.process_time() - t) / n
    with capsys.disabled():
        print(f"\nsynthetic faces: {dt * 1e3:.0f} ms CPU per face (default config)")


def test_layers_are_an_explicit_back_to_front_list():
    from stn_icnn_jax.data.synthetic.render import LAYERS

    names = [layer.name for layer in LAYERS]
    assert len(set(names)) == len(names)
    assert names[0] == "background" and names[-1] == "occluder"
    # nearer things come later: hair over the face, the fringe over the brows
    assert names.index("face_skin") < names.index("head_hair") < names.index("brows") < names.index("fringe")
    for i, layer in enumerate(LAYERS):
        assert layer.draw.__doc__, layer.name
        # a layer is given only what earlier layers handed on
        assert set(layer.needs) <= set(names[:i]), layer.name


def test_layers_can_be_painted_selectively():
    # the scene is drawn before painting: painting fewer layers leaves the scene alone
    from stn_icnn_jax.data.synthetic.raster import Canvas
    from stn_icnn_jax.data.synthetic.render import LAYERS, paint_layers
    from stn_icnn_jax.data.synthetic.scene import sample_scene

    cfg = dataclasses.replace(CLEAN, **SMALL)
    scene = sample_scene(4, cfg)
    canvas = Canvas(scene.pose.height, scene.pose.width, cfg.supersample)
    facts = paint_layers(scene, canvas, [layer for layer in LAYERS if layer.name in ("background", "face_skin")])
    assert set(facts) == {"background"}
    assert canvas.used_channels == [BG, SKIN]
    np.testing.assert_allclose(canvas.labels.sum(0), 1.0, atol=1e-5)
