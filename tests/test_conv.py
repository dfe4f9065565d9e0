"""model/conv.py: the channel-tuned convolution computes the same numbers as a plain
convolution, and its weight gradient's two formulations are the weight gradient."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax.model import conv as conv_lib
from stn_icnn_jax.model.icnn import ICNN, ICNNConfig


def numpy_conv_and_grads(x, w, dy):
    """Same-padded stride-1 conv of NHWC x with HWIO w, and dL/dx, dL/dw for
    L = sum(conv * dy), in float64 by explicit loops over the kernel taps."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    k, p = w.shape[0], w.shape[0] // 2
    n, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    y = np.zeros(dy.shape)
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    for a in range(k):
        for b in range(k):
            window = xp[:, a:a + h, b:b + wd, :]
            y += window @ w[a, b]
            dw[a, b] = np.einsum("nhwi,nhwo->io", window, dy)
            dxp[:, a:a + h, b:b + wd, :] += dy @ w[a, b].T
    return y, dxp[:, p:p + h, p:p + wd, :], dw


# (C_in, C_out, kernel): the direct and the swapped weight gradient, each with and
# without padding of its feature axis, the forward's padding of C_in / C_out to 8, and
# the authors' 5x5 and 9x9 kernels.
CASES = [(24, 8, 3), (8, 26, 3), (26, 9, 3), (9, 9, 3), (8, 8, 3), (3, 8, 3), (40, 16, 5),
         (2, 2, 9), (16, 4, 3)]


@pytest.mark.parametrize("c_in,c_out,k", CASES)
def test_channel_tuned_conv_and_gradients_match_numpy(c_in, c_out, k):
    kx, kw, kd = jax.random.split(jax.random.key(c_in * 100 + c_out * 10 + k), 3)
    x = jax.random.normal(kx, (2, 11, 13, c_in))
    w = jax.random.normal(kw, (k, k, c_in, c_out))
    dy = jax.random.normal(kd, (2, 11, 13, c_out))
    y, vjp = jax.vjp(lambda x, w: conv_lib.conv_same(x, w, "channel_tuned"), x, w)
    dx, dw = vjp(dy)
    want_y, want_dx, want_dw = numpy_conv_and_grads(x, w, dy)
    for got, want in ((y, want_y), (dx, want_dx), (dw, want_dw)):
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_weight_gradient_formulations_agree_in_float64():
    with jax.enable_x64(True):
        for c_in, c_out in ((24, 8), (8, 26), (26, 9), (9, 9)):
            x = jax.random.normal(jax.random.key(c_in), (2, 9, 7, c_in), jnp.float64)
            dy = jax.random.normal(jax.random.key(c_out), (2, 9, 7, c_out), jnp.float64)
            _, _, want = numpy_conv_and_grads(x, jnp.zeros((3, 3, c_in, c_out)), dy)
            np.testing.assert_allclose(np.asarray(conv_lib.weight_gradient(x, dy, 3)), want,
                                       rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,c_in,c_out", [(6, 24, 8), (9, 8, 26), (5, 16, 16)])
def test_weight_gradient_over_batch_chunks_matches_numpy(n, c_in, c_out):
    """Batches above conv.DW_CHUNK images are summed chunk by chunk (uneven last chunk)."""
    assert n > conv_lib.DW_CHUNK
    x = jax.random.normal(jax.random.key(n), (n, 10, 12, c_in))
    dy = jax.random.normal(jax.random.key(n + 1), (n, 10, 12, c_out))
    _, _, want = numpy_conv_and_grads(x, np.zeros((3, 3, c_in, c_out)), dy)
    got = np.asarray(conv_lib.weight_gradient(x, dy, 3))
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("torch_init", [False, True])
def test_conv_module_has_nn_conv_parameters_and_values(torch_init):
    kw = {}
    if torch_init:
        kw = dict(kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                  bias_init=nn.initializers.uniform(0.1))
    x = jax.random.normal(jax.random.key(0), (2, 10, 10, 5))
    ours = conv_lib.Conv(7, 3, impl="channel_tuned", **kw)
    flax_conv = nn.Conv(7, (3, 3), padding=((1, 1), (1, 1)), **kw)
    v_ours = ours.init(jax.random.key(1), x)
    v_flax = flax_conv.init(jax.random.key(1), x)
    assert jax.tree.structure(v_ours) == jax.tree.structure(v_flax)
    for a, b in zip(jax.tree.leaves(v_ours), jax.tree.leaves(v_flax)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.apply(v_ours, x), flax_conv.apply(v_flax, x), atol=1e-5)


def test_icnn_gradients_are_the_same_with_either_impl():
    """Whole stage-1 iCNN in float64 (the BN + ReLU network amplifies float32 rounding
    differences of summation order too much for a tight float32 comparison)."""
    with jax.enable_x64(True):
        x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), jnp.float64)
        y = jax.random.randint(jax.random.key(1), (2, 16, 16), 0, 9)
        grads = {}
        for impl in ("xla", "channel_tuned"):
            model = ICNN(dataclasses.replace(ICNNConfig.paper(9), conv=impl))
            v = model.init(jax.random.key(2), x, train=False)
            v = jax.tree.map(lambda a: a.astype(jnp.float64), v)

            def loss(params):
                z, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x,
                                   train=True, mutable=["batch_stats"])
                return -jnp.take_along_axis(jax.nn.log_softmax(z), y[..., None], -1).mean()

            grads[impl] = jax.grad(loss)(v["params"])
        for a, b in zip(jax.tree.leaves(grads["xla"]), jax.tree.leaves(grads["channel_tuned"])):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_impl_choices():
    assert conv_lib.resolve_impl("xla") == "xla"
    assert conv_lib.resolve_impl("auto") == (
        "channel_tuned" if jax.default_backend() == "cpu" else "xla")
    with pytest.raises(ValueError, match="conv impl must be one of"):
        conv_lib.resolve_impl("fast")
    with pytest.raises(ValueError, match="conv impl must be one of"):
        ICNNConfig(num_labels=9, conv="fast")
    with pytest.raises(ValueError, match="odd square"):
        conv_lib.conv_same(jnp.zeros((1, 4, 4, 2)), jnp.zeros((2, 2, 2, 3)))


def test_vgg9_localizer_is_the_same_with_either_impl():
    from stn_icnn_jax.model.localizer import Localizer, LocalizerConfig

    x = jax.nn.softmax(jax.random.normal(jax.random.key(0), (2, 32, 32, 9)), -1)
    out = {}
    for impl in ("xla", "channel_tuned"):
        model = Localizer(LocalizerConfig(input_size=32, channels=(8, 8, 12, 12), conv=impl))
        v = model.init(jax.random.key(1), x, train=False)
        out[impl] = (model.apply(v, x, train=False),
                     jax.grad(lambda p: jnp.sum(model.apply(
                         {"params": p, "batch_stats": v["batch_stats"]}, x, train=False) ** 2))(
                             v["params"]))
    np.testing.assert_allclose(out["xla"][0], out["channel_tuned"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(out["xla"][1]), jax.tree.leaves(out["channel_tuned"][1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(np.abs(a).max()) + 1e-9)
    with pytest.raises(ValueError, match="conv impl must be one of"):
        LocalizerConfig(conv="fast")
