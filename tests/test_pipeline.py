"""pipeline: the composed STN-iCNN pass on tiny configs.

Checks what users rely on: ground-truth crops + perfect part predictions paste back to
exactly the label map (docs/authors-code.md §2.5), soft overlapping part probabilities
fuse as eq. 5 (product of backgrounds) against a numpy statement, the training pass returns label crops made with
the same theta, gradients of the part loss reach K and L through the sampler, and the
jitted parse compiles once.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax import losses, part_centers, sampler, taxonomy, theta_geometry
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.model.icnn import ICNNConfig
from stn_icnn_jax.model.localizer import LocalizerConfig

CANVAS = 64
CROP = 15


def tiny_config(**overrides) -> stn_icnn.STNiCNNConfig:
    small = dict(channels=(4, 8), num_interlink_layers=1)
    base = dict(
        rough=ICNNConfig.paper(9).__class__(**{**dataclasses.asdict(ICNNConfig.paper(9)), **small}),
        parts=ICNNConfig.paper(2).__class__(**{**dataclasses.asdict(ICNNConfig.paper(2)), **small}),
        localizer=LocalizerConfig(input_size=16, channels=(4, 4, 8, 8), head_init_scale=1e-2),
        rough_size=16,
        crop_size=CROP,
        canvas_size=CANVAS,
    )
    base.update(overrides)
    return stn_icnn.STNiCNNConfig(**base)


def _label_canvas():
    """A 9-class image of 40x50 on a 64 canvas with each part small enough for a 15 crop."""
    h, w = 40, 50
    label = np.zeros((h, w), np.int32)
    label[5:8, 8:18] = 1     # brow l
    label[5:8, 32:42] = 2    # brow r
    label[11:15, 10:17] = 3  # eye l
    label[11:15, 33:40] = 4  # eye r
    label[16:26, 22:28] = 5  # nose
    label[29:31, 18:32] = 6  # upper lip
    label[31:33, 19:31] = 7  # inner mouth
    label[33:36, 18:32] = 8  # lower lip
    return label


def _batch(label, image_seed=0):
    h, w = label.shape
    top, left = (CANVAS - h) // 2, (CANVAS - w) // 2
    canvas_label = np.zeros((1, CANVAS, CANVAS), np.int32)
    canvas_label[0, top : top + h, left : left + w] = label
    rng = np.random.default_rng(image_seed)
    canvas = np.zeros((1, CANVAS, CANVAS, 3), np.uint8)
    canvas[0, top : top + h, left : left + w] = rng.integers(0, 255, (h, w, 3))
    probs = np.eye(9, dtype=np.float32)[label][None]
    centers, present = part_centers.part_centers(probs, "paper")
    return {
        "rough_image": rng.random((1, 16, 16, 3), dtype=np.float32),
        "canvas": canvas,
        "canvas_label": canvas_label,
        "image_size": np.array([[h, w]], np.int32),
        "image_origin": np.array([[top, left]], np.int32),
        "centers": centers,
        "centers_present": present,
    }


@pytest.mark.parametrize("convention", ["paper", "authors"])
@pytest.mark.parametrize("frame", ["image", "canvas"])
def test_perfect_parts_paste_back_to_the_label_map(convention, frame):
    cfg = tiny_config(theta_convention=convention, theta_frame=frame)
    batch = _batch(_label_canvas())
    theta = stn_icnn.to_canvas_theta(stn_icnn.ground_truth_theta(batch, cfg), batch, cfg)
    part_labels = stn_icnn.crop_label_maps(jnp.asarray(batch["canvas_label"]), theta, cfg)
    # Every labelled pixel of each part lies inside its crop.
    for p, classes in enumerate(taxonomy.PART_CLASSES):
        inside = int((np.asarray(part_labels[p]) > 0).sum())
        assert inside == int(np.isin(batch["canvas_label"], classes).sum())
    probs = tuple(jax.nn.one_hot(lab, 4 if p == 5 else 2) for p, lab in enumerate(part_labels))
    fused = stn_icnn.fuse_parts(probs, theta, (CANVAS, CANVAS), cfg)
    labels = np.asarray(jnp.argmax(fused, -1))
    np.testing.assert_array_equal(labels, batch["canvas_label"])
    np.testing.assert_allclose(np.asarray(fused.sum(-1))[labels > 0], 1.0, atol=1e-6)


# Integer part centres (y, x) on the 64 canvas: brow/eye/nose/mouth windows overlap, and
# the mouth's 15x15 crop runs 6 rows past the bottom edge.
FUSION_CENTERS = np.array([[20, 20], [20, 42], [25, 23], [25, 40], [33, 31], [56, 30]])


def _numpy_fusion(probs, centers, canvas):
    """Eq. 5 restated in numpy for 1:1 crops at integer centres: part pixel (i, j) lies on
    canvas pixel (cy - r + i, cx - r + j); background = product over the parts of their
    background probability (1 outside a part's crop); class c = the foreground
    probability of the one part that holds c (0 outside its crop)."""
    r = CROP // 2
    background = np.ones((canvas, canvas))
    foreground = np.zeros((canvas, canvas, 8))
    for p, (classes, (cy, cx)) in enumerate(zip(taxonomy.PART_CLASSES, centers)):
        y0, x0 = cy - r, cx - r
        ys, xs = slice(max(y0, 0), min(y0 + CROP, canvas)), slice(max(x0, 0), min(x0 + CROP, canvas))
        part = probs[p][max(-y0, 0) : max(-y0, 0) + ys.stop - ys.start,
                        max(-x0, 0) : max(-x0, 0) + xs.stop - xs.start]
        background[ys, xs] *= part[..., 0]
        for k, c in enumerate(classes):
            foreground[ys, xs, c - 1] = part[..., 1 + k]
    return np.concatenate([background[..., None], foreground], axis=-1)


@pytest.mark.parametrize("convention", ["paper", "authors"])
def test_fusion_of_soft_overlapping_parts_is_eq5(convention):
    cfg = tiny_config(theta_convention=convention, theta_frame="canvas")
    theta = theta_geometry.theta_from_centers(jnp.asarray(FUSION_CENTERS[None], jnp.float32),
                                              (CROP, CROP), (CANVAS, CANVAS), convention)
    # The crops really are the integer windows the numpy statement assumes.
    index = np.arange(CANVAS * CANVAS, dtype=np.int32).reshape(1, CANVAS, CANVAS)
    where = np.rint(np.asarray(sampler.crop(jnp.asarray(index, jnp.float32)[..., None], theta,
                                            (CROP, CROP), mode="nearest",
                                            align_corners=cfg.align_corners))[0, ..., 0])
    r = CROP // 2
    for p, (cy, cx) in enumerate(FUSION_CENTERS[:5]):
        np.testing.assert_array_equal(where[p], index[0, cy - r : cy + r + 1, cx - r : cx + r + 1])
    rng = np.random.default_rng(3)
    probs = [np.asarray(jax.nn.softmax(2.0 * rng.normal(size=(CROP, CROP, n)), axis=-1), np.float32)
             for n in taxonomy.PART_NUM_LABELS]
    fused = np.asarray(stn_icnn.fuse_parts(tuple(jnp.asarray(q[None]) for q in probs), theta,
                                           (CANVAS, CANVAS), cfg))[0]
    expected = _numpy_fusion(probs, FUSION_CENTERS, CANVAS)
    np.testing.assert_allclose(fused, expected, atol=1e-6)
    # Hand-worked pixel where brow_L and eye_L overlap and nothing else reaches.
    y, x = 19, 18
    bl = probs[0][y - 20 + r, x - 20 + r]
    el = probs[2][y - 25 + r, x - 23 + r]
    np.testing.assert_allclose(fused[y, x], [bl[0] * el[0], bl[1], 0, el[1], 0, 0, 0, 0, 0],
                               atol=1e-6)
    assert min(bl[0], el[0]) - bl[0] * el[0] > 0.01  # a min-fusion would show here


@pytest.mark.parametrize("convention", ["paper", "authors"])
def test_fuse_labels_is_argmax_of_fused_probabilities_bit_for_bit(convention):
    """The labels made on the paste windows alone equal argmax(fuse_parts) everywhere:
    overlapping windows, windows over the canvas edge or wholly off it, scales other than
    1:1, and exact ties (one-hot parts)."""
    cfg = tiny_config(theta_convention=convention, theta_frame="canvas")
    centers = np.stack([
        FUSION_CENTERS,                                          # overlaps, bottom edge
        FUSION_CENTERS[::-1],                                    # other order
        [[-30, 10], [5, 70], [63, 63], [0, 0], [32, 32], [200, -90]],  # edges, off canvas
        [[30, 30]] * 6,                                          # all on one spot
    ]).astype(np.float32)
    theta = np.array(theta_geometry.theta_from_centers(
        jnp.asarray(centers), (CROP, CROP), (CANVAS, CANVAS), convention))
    rng = np.random.default_rng(5)
    theta[:, :, 0, 0] *= rng.uniform(0.6, 1.4, (4, 6))            # other scales
    theta[:, :, 1, 1] *= rng.uniform(0.6, 1.4, (4, 6))
    probs = []
    for n in taxonomy.PART_NUM_LABELS:
        soft = jax.nn.softmax(2.0 * rng.normal(size=(4, CROP, CROP, n)), axis=-1)
        hard = jax.nn.one_hot(rng.integers(0, n, (4, CROP, CROP)), n)
        probs.append(jnp.asarray(np.where(rng.random((4, 1, 1, 1)) < 0.5, soft, hard),
                                 jnp.float32))
    theta = jnp.asarray(theta)
    want = np.asarray(jnp.argmax(stn_icnn.fuse_parts(tuple(probs), theta, (CANVAS, CANVAS), cfg),
                                 -1))
    got = np.asarray(jax.jit(stn_icnn.fuse_labels, static_argnums=(2, 3))(
        tuple(probs), theta, (CANVAS, CANVAS), cfg))
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert (want > 0).mean() > 0.05 and len(np.unique(want)) == 9  # not trivially background


def test_gt_crops_of_image_and_canvas_frames_agree():
    batch = _batch(_label_canvas())
    a = tiny_config(theta_frame="image")
    b = tiny_config(theta_frame="canvas")
    pa = stn_icnn.crop_patches(jnp.asarray(batch["canvas"]),
                               stn_icnn.to_canvas_theta(stn_icnn.ground_truth_theta(batch, a), batch, a), a)
    pb = stn_icnn.crop_patches(jnp.asarray(batch["canvas"]),
                               stn_icnn.to_canvas_theta(stn_icnn.ground_truth_theta(batch, b), batch, b), b)
    np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), atol=1e-5)
    # The nose crop at an integer centre is the integer slice of the canvas (Fig. 8).
    cy, cx = (np.asarray(batch["centers"][0, 4]) + batch["image_origin"][0]).astype(int)
    r = CROP // 2
    expected = batch["canvas"][0, cy - r : cy + r + 1, cx - r : cx + r + 1] / 255.0
    np.testing.assert_allclose(np.asarray(pa[0, 4]), expected, atol=1e-6)


def test_forward_and_end_to_end_gradients_reach_rough_and_localizer():
    cfg = tiny_config()
    model = stn_icnn.STNiCNN(cfg)
    variables = stn_icnn.init_variables(model, jax.random.key(0))
    batch = jax.tree.map(jnp.asarray, _batch(_label_canvas()))

    def loss_fn(params):
        out, stats = stn_icnn.forward(model, {**variables, "params": params}, batch, train=True)
        return losses.joint_loss(out["part_logits"], out["part_labels"]), (out, stats)

    (loss, (out, stats)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        variables["params"]
    )
    assert np.isfinite(float(loss))
    chex.assert_shape(out["patches"], (1, 6, CROP, CROP, 3))
    assert [z.shape[-1] for z in out["part_logits"]] == [2, 2, 2, 2, 2, 4]
    assert [lab.shape for lab in out["part_labels"]] == [(1, CROP, CROP)] * 6
    for name in ("rough", "localizer", "parts"):
        norm = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads[name]))
        assert norm > 0, f"no gradient reached {name}"
    # Running statistics moved in training mode.
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), stats, variables["batch_stats"])
    assert max(jax.tree.leaves(moved)) > 0


@pytest.mark.parametrize("frame", ["image", "canvas"])
def test_native_localizer_scale_keeps_L_centres_at_the_1_to_1_scale(frame):
    """``localizer_scale="native"``: L's tx, ty kept, sx = sy = eq. 21's crop / size (by
    hand: the 40x50 image, or the 64 canvas, paper convention), and no gradient reaches
    L's scale outputs; ``"predicted"`` is L's theta unchanged."""
    batch = _batch(_label_canvas())
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(1, 6, 2, 3)).astype(np.float32)
    theta[..., 0, 1] = theta[..., 1, 0] = 0.0  # L's form (eq. 15)
    theta = jnp.asarray(theta)
    native = tiny_config(theta_frame=frame, localizer_scale="native")
    out = np.asarray(stn_icnn.localizer_theta(theta, batch, native))
    height, width = (40, 50) if frame == "image" else (CANVAS, CANVAS)
    np.testing.assert_allclose(out[..., 0, 0], CROP / width, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1, 1], CROP / height, rtol=1e-6)
    keep = np.array([[0, 1, 1], [1, 0, 1]], bool)
    np.testing.assert_array_equal(out[..., keep], np.asarray(theta)[..., keep])
    # with L's centres at the labelled ones, the window is the ground truth's
    truth = stn_icnn.ground_truth_theta(batch, native)
    at_truth = theta.at[..., 2].set(truth[..., 2])
    np.testing.assert_allclose(stn_icnn.localizer_theta(at_truth, batch, native), truth,
                               rtol=1e-6)
    grad = jax.grad(lambda t: stn_icnn.localizer_theta(t, batch, native).sum())(theta)
    np.testing.assert_array_equal(np.asarray(grad), np.broadcast_to(keep, theta.shape).astype(np.float32))
    predicted = tiny_config(theta_frame=frame)
    np.testing.assert_array_equal(np.asarray(stn_icnn.localizer_theta(theta, batch, predicted)),
                                  np.asarray(theta))


def test_ground_truth_forward_has_no_rough_pass():
    cfg = tiny_config()
    model = stn_icnn.STNiCNN(cfg)
    variables = stn_icnn.init_variables(model, jax.random.key(1))
    batch = jax.tree.map(jnp.asarray, _batch(_label_canvas()))
    out, _ = stn_icnn.forward(model, variables, batch, train=False, theta_source="ground_truth")
    assert "rough_logits" not in out
    with pytest.raises(ValueError, match="theta_source"):
        stn_icnn.forward(model, variables, batch, train=False, theta_source="oracle")


def test_parse_is_jitted_once_and_labels_are_in_range():
    cfg = tiny_config()
    model = stn_icnn.STNiCNN(cfg)
    variables = stn_icnn.init_variables(model, jax.random.key(2))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(variables, batch):
        return stn_icnn.parse(model, variables, batch)["labels"]

    for seed in range(2):
        batch = jax.tree.map(jnp.asarray, _batch(_label_canvas(), image_seed=seed))
        labels = run(variables, batch)
        assert labels.shape == (1, CANVAS, CANVAS)
        assert 0 <= int(labels.min()) and int(labels.max()) < 9


def test_config_errors():
    with pytest.raises(ValueError, match="odd"):
        tiny_config(crop_size=16)
    with pytest.raises(ValueError, match="theta_frame"):
        tiny_config(theta_frame="face")


def test_end_to_end_theta_loss_weight_adds_the_anchor_term():
    from stn_icnn_jax.train import stages, step

    cfg = tiny_config()
    model = stn_icnn.STNiCNN(cfg)
    variables = stn_icnn.init_variables(model, jax.random.key(3))
    batch = jax.tree.map(jnp.asarray, _batch(_label_canvas()))

    @jax.jit
    def losses_for(variables, batch):
        out = {}
        for weight in (0.0, 0.5):
            stage = stages.StageConfig(learning_rates={"parts": 1.0}, theta_loss_weight=weight)
            loss, (step_metrics, _) = step.stage_loss(
                model, stages.STAGES["end_to_end"], stage, variables["params"], variables["batch_stats"], batch)
            out[weight] = (loss, step_metrics)
        return out

    out = losses_for(variables, batch)
    theta = model.apply(variables, model.apply(variables, batch["rough_image"], False,
                                               method=stn_icnn.STNiCNN.rough_logits),
                        False, method=stn_icnn.STNiCNN.localize)
    anchor = losses.smooth_l1(theta, stn_icnn.ground_truth_theta(batch, cfg))
    (plain, m0), (anchored, m1) = out[0.0], out[0.5]
    assert "theta_loss" not in m0 and float(m1["theta_loss"]) == pytest.approx(float(anchor), rel=1e-5)
    assert float(anchored) == pytest.approx(float(plain) + 0.5 * float(anchor), rel=1e-5)
    assert float(anchor) > 0
