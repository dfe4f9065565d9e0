"""losses against PyTorch's own implementations and hand-worked values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from stn_icnn_jax import losses


def _random_logits_labels(seed, shape=(2, 5, 7), classes=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (classes,)).astype(np.float32) * 3
    labels = rng.integers(0, classes, size=shape)
    return logits, labels


def test_ce_matches_torch_cross_entropy():
    logits, labels = _random_logits_labels(0)
    ours = float(losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels), "ce"))
    ref = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits).permute(0, 3, 1, 2), torch.from_numpy(labels)
    ).item()
    assert ours == pytest.approx(ref, rel=1e-5)


def test_bce_matches_torch_bce_with_logits_on_one_hot():
    logits, labels = _random_logits_labels(1)
    ours = float(losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels), "bce"))
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels), 4).float()
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), onehot
    ).item()
    assert ours == pytest.approx(ref, rel=1e-5)


def test_foreground_weighted_ce_matches_torch_class_weights():
    # Background weight 1, every other class 5: PyTorch's weighted mean sum(w l) / sum(w).
    logits, labels = _random_logits_labels(6)
    ours = float(losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels), "ce",
                                          foreground_weight=5.0))
    ref = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits).permute(0, 3, 1, 2), torch.from_numpy(labels),
        weight=torch.tensor([1.0, 5.0, 5.0, 5.0]),
    ).item()
    assert ours == pytest.approx(ref, rel=1e-5)


def test_foreground_weighted_bce_hand_value():
    # Two pixels (background, class 1), logits 0 and 2 on class 0: per-pixel BCE is the
    # channel mean; weights 1 and 3 give (l0 + 3 l1) / 4.
    logits = jnp.array([[2.0, 0.0], [2.0, 0.0]])
    labels = jnp.array([0, 1])
    sp = lambda x: np.log1p(np.exp(x))  # softplus: BCE(z, t) = softplus(z) - t z
    l0 = ((sp(2.0) - 2.0) + sp(0.0)) / 2
    l1 = (sp(2.0) + (sp(0.0) - 0.0)) / 2
    ours = float(losses.segmentation_loss(logits, labels, "bce", foreground_weight=3.0))
    assert ours == pytest.approx((l0 + 3 * l1) / 4, rel=1e-6)


def test_bce_hand_value():
    # One pixel, two classes, logits 0: every channel has p = 0.5 -> loss = log 2.
    loss = losses.segmentation_loss(jnp.zeros((1, 2)), jnp.array([1]), "bce")
    assert float(loss) == pytest.approx(np.log(2.0), rel=1e-6)


def test_smooth_l1_matches_torch_and_counts_masked_zeros():
    rng = np.random.default_rng(2)
    pred = rng.normal(size=(3, 6, 2, 3)).astype(np.float32) * 2
    target = rng.normal(size=(3, 6, 2, 3)).astype(np.float32)
    pred[..., 0, 1] = target[..., 0, 1] = 0.0
    ours = float(losses.smooth_l1(jnp.asarray(pred), jnp.asarray(target)))
    ref = torch.nn.SmoothL1Loss()(torch.from_numpy(pred), torch.from_numpy(target)).item()
    assert ours == pytest.approx(ref, rel=1e-6)
    # Hand values: |d| = 0.5 -> 0.125 ; |d| = 3 -> 2.5 ; mean over 2 entries.
    assert float(losses.smooth_l1(jnp.array([0.5, 3.0]), jnp.zeros(2))) == pytest.approx(1.3125)


def test_joint_loss_mean_vs_sum_over_parts():
    parts = [_random_logits_labels(s, classes=c) for s, c in [(3, 2), (4, 2), (5, 4)]]
    logits = [jnp.asarray(z) for z, _ in parts]
    labels = [jnp.asarray(j) for _, j in parts]
    each = [float(losses.segmentation_loss(z, j, "ce")) for z, j in zip(logits, labels)]
    assert float(losses.joint_loss(logits, labels, "ce", "sum")) == pytest.approx(sum(each), rel=1e-5)
    assert float(losses.joint_loss(logits, labels, "ce", "mean")) == pytest.approx(
        sum(each) / 3, rel=1e-5
    )


def test_loss_errors_are_clear():
    with pytest.raises(ValueError, match="disagree"):
        losses.segmentation_loss(jnp.zeros((2, 3, 4)), jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="integer"):
        losses.segmentation_loss(jnp.zeros((2, 4)), jnp.zeros((2,)))
    with pytest.raises(ValueError, match="kind"):
        losses.segmentation_loss(jnp.zeros((2, 4)), jnp.zeros((2,), jnp.int32), "hinge")
    with pytest.raises(ValueError, match="one label crop per part"):
        losses.joint_loss([jnp.zeros((1, 2))], [])


def test_softmax_ce_matches_optax_and_its_gradient_has_no_constant_scatter():
    import optax

    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(2, 5, 4, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, (2, 5, 4)), jnp.int32)
    np.testing.assert_allclose(losses.softmax_cross_entropy(z, y),
                               optax.softmax_cross_entropy_with_integer_labels(z, y), rtol=1e-6)
    grad = jax.grad(lambda z: losses.segmentation_loss(z, y, "ce"))(z)
    want = (jax.nn.softmax(z) - jax.nn.one_hot(y, 3)) / y.size  # d mean CE / d logits
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)
    # optax's take(0) adds a second scatter-add (a constant one XLA folds element by
    # element at compile time: 30-80 s for a batch of crops); ours only scatters the labels.
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda z: losses.segmentation_loss(z, y, "ce")))(z))
    assert jaxpr.count("scatter-add") == 1
