"""Tests of the STN localisation net and the theta parametrisation (stn_icnn_jax.model.localizer)."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax.model.icnn import count_params
from stn_icnn_jax.model.localizer import (
    DEFAULT_INIT_PARAMS,
    Localizer,
    LocalizerConfig,
    params_from_theta,
    theta_from_params,
    with_coordinates,
)

SMALL = LocalizerConfig(input_size=32, channels=(4, 4, 8, 8))
INIT = np.asarray(DEFAULT_INIT_PARAMS, np.float32)
# rbg keys: threefry under jax_threefry_partitionable (the default) compiles ~5x slower on CPU
KEY = jax.random.key(0, impl="rbg")


def _probs(shape, seed=0):
    logits = np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 3
    return jax.nn.softmax(jnp.asarray(logits), axis=-1)


def _init(model, x):
    return jax.jit(lambda k, x: model.init(k, x, train=False))(KEY, x)


def _perturb_fc(variables, scale=0.05, seed=1):
    fc = variables["params"]["fc"]
    rng = np.random.default_rng(seed)
    new_fc = {"kernel": fc["kernel"] + scale * rng.normal(size=fc["kernel"].shape).astype(np.float32)
              / np.sqrt(fc["kernel"].shape[0]),
              "bias": fc["bias"]}
    return {**variables, "params": {**variables["params"], "fc": new_fc}}


# --------------------------------------------------------------------------- theta


def test_theta_from_params_layout_and_inverse():
    p = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 6, 4)), jnp.float32)
    theta = theta_from_params(p)
    assert theta.shape == (2, 3, 6, 2, 3)
    np.testing.assert_array_equal(theta[..., 0, 0], p[..., 0])  # sx
    np.testing.assert_array_equal(theta[..., 1, 1], p[..., 1])  # sy
    np.testing.assert_array_equal(theta[..., 0, 2], p[..., 2])  # tx
    np.testing.assert_array_equal(theta[..., 1, 2], p[..., 3])  # ty
    np.testing.assert_array_equal(theta[..., 0, 1], 0)
    np.testing.assert_array_equal(theta[..., 1, 0], 0)
    np.testing.assert_array_equal(params_from_theta(theta), p)
    with pytest.raises(ValueError):
        theta_from_params(jnp.zeros((6, 6)))
    with pytest.raises(ValueError):
        params_from_theta(jnp.zeros((6, 3, 2)))


def test_theta_gradient_only_through_free_entries():
    g = jax.grad(lambda p: jnp.sum(theta_from_params(p) * jnp.arange(6.0).reshape(2, 3)))(
        jnp.ones((6, 4)))
    # d/d(sx, sy, tx, ty) picks the weights at (0,0), (1,1), (0,2), (1,2)
    np.testing.assert_array_equal(g, np.tile([0.0, 4.0, 2.0, 5.0], (6, 1)))


# --------------------------------------------------------------------------- vgg9


def test_default_config_documented_sizes():
    cfg = LocalizerConfig()
    assert cfg.channels == (32, 32, 64, 64, 128, 128, 256, 256)
    assert cfg.feature_size() == 8  # 128 -> 64 -> 32 -> 16 -> 8
    assert dataclasses.replace(cfg, input_size=81).feature_size() == 6
    assert not cfg.isotropic and not cfg.fc_relu and cfg.backbone == "vgg9"


def test_init_predicts_mean_boxes_for_any_input():
    """Default config at 128: the untrained net outputs the configured boxes."""
    model = Localizer(LocalizerConfig())
    x = _probs((3, 128, 128, 9))
    v = _init(model, x)
    assert set(v["params"]) == {"features", "fc"}
    assert v["params"]["fc"]["kernel"].shape == (8 * 8 * 256, 24)
    theta, params = jax.jit(lambda v, x: model.apply(v, x, train=False, return_params=True))(v, x)
    assert theta.shape == (3, 6, 2, 3)
    np.testing.assert_allclose(params, np.broadcast_to(INIT, (3, 6, 4)), atol=1e-7)
    np.testing.assert_allclose(theta, theta_from_params(jnp.broadcast_to(INIT, (3, 6, 4))), atol=1e-7)
    # also in train mode and for a completely different input
    theta_t, _ = model.apply(v, jnp.zeros_like(x), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(theta_t, theta, atol=1e-7)


def test_custom_init_params():
    boxes = np.random.default_rng(0).uniform(-0.5, 0.5, size=(6, 4))
    cfg = dataclasses.replace(SMALL, init_params=boxes)
    assert isinstance(cfg.init_params, tuple)  # arrays are stored hashably
    hash(cfg)
    model = Localizer(cfg)
    x = _probs((2, 32, 32, 9))
    theta, params = model.apply(_init(model, x), x, train=False, return_params=True)
    np.testing.assert_allclose(params, np.broadcast_to(boxes, (2, 6, 4)), atol=1e-6)
    with pytest.raises(ValueError, match="init_params"):
        LocalizerConfig(init_params=boxes[:5])


def test_shapes_zeros_and_input_gradient_after_perturbation():
    model = Localizer(SMALL)
    x = _probs((2, 32, 32, 9))
    v = _init(model, x)

    def loss(x, v):
        return jnp.sum(model.apply(v, x, train=False) ** 2)

    # zero-initialised head: no gradient reaches the input at init ...
    g0 = jax.grad(loss)(x, v)
    np.testing.assert_array_equal(g0, 0)
    # ... but after a perturbation of the head it does, and depends on the input
    vp = _perturb_fc(v)
    g = jax.grad(loss)(x, vp)
    assert g.shape == x.shape and float(jnp.max(jnp.abs(g))) > 0
    theta = model.apply(vp, x, train=False)
    assert theta.shape == (2, 6, 2, 3)
    np.testing.assert_array_equal(theta[..., 0, 1], 0)  # exactly zero off-diagonals
    np.testing.assert_array_equal(theta[..., 1, 0], 0)
    assert not np.allclose(theta[0], theta[1])  # different inputs, different boxes
    # gradients also reach the backbone parameters
    gp = jax.grad(lambda v: loss(x, v))(vp)
    assert float(jnp.max(jnp.abs(gp["params"]["features"]["conv_0"]["kernel"]))) > 0


def test_isotropic_ties_scales():
    boxes = np.asarray(DEFAULT_INIT_PARAMS, np.float32).copy()
    boxes[:, 1] += 0.1  # sy != sx in the configured boxes
    cfg = dataclasses.replace(SMALL, isotropic=True, init_params=boxes)
    model = Localizer(cfg)
    x = _probs((2, 32, 32, 9))
    v = _init(model, x)
    assert v["params"]["fc"]["kernel"].shape[-1] == 6 * 3
    _, params = model.apply(v, x, train=False, return_params=True)
    s_init = np.broadcast_to((boxes[:, 0] + boxes[:, 1]) / 2, (2, 6))
    np.testing.assert_allclose(params[..., 0], s_init, atol=1e-6)
    np.testing.assert_allclose(params[..., 1], s_init, atol=1e-6)
    theta = model.apply(_perturb_fc(v, scale=1.0), x, train=False)
    np.testing.assert_array_equal(theta[..., 0, 0], theta[..., 1, 1])
    assert not np.allclose(theta[..., 0, 0], theta[0, 0, 0, 0])  # not frozen


def test_anisotropic_scales_move_independently():
    model = Localizer(SMALL)
    x = _probs((2, 32, 32, 9))
    theta = model.apply(_perturb_fc(_init(model, x), scale=1.0), x, train=False)
    assert not np.allclose(theta[..., 0, 0], theta[..., 1, 1])


def test_fc_relu_switch():
    cfg = dataclasses.replace(SMALL, fc_relu=True)
    model = Localizer(cfg)
    x = _probs((2, 32, 32, 9))
    _, params = model.apply(_init(model, x), x, train=False, return_params=True)
    np.testing.assert_allclose(params, np.broadcast_to(np.maximum(INIT, 0), (2, 6, 4)), atol=1e-7)


def test_train_mode_updates_batch_stats():
    model = Localizer(SMALL)
    x = _probs((4, 32, 32, 9))
    v = _init(model, x)
    _, upd = model.apply(_perturb_fc(v), x, train=True, mutable=["batch_stats"])
    assert not np.allclose(upd["batch_stats"]["features"]["bn_0"]["mean"],
                           v["batch_stats"]["features"]["bn_0"]["mean"])


def test_jit_compiles_once():
    model = Localizer(SMALL)
    x = _probs((2, 32, 32, 9))
    v = _perturb_fc(_init(model, x))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(v, x):
        return model.apply(v, x, train=False)

    f(v, x)
    f(v, _probs((2, 32, 32, 9), seed=5))
    f(_perturb_fc(v, seed=7), x)


@pytest.mark.parametrize(
    "cfg, shape, match",
    [
        (SMALL, (2, 32, 32, 3), "9"),
        (SMALL, (32, 32, 9), "NHWC"),
        (SMALL, (2, 64, 64, 9), "input_size"),
        (LocalizerConfig(backbone="resnet18"), (1, 16, 16, 9), ">= 32"),
    ],
)
def test_bad_input_raises(cfg, shape, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda: Localizer(cfg).init(KEY, jnp.zeros(shape), train=False))


def test_config_validation():
    with pytest.raises(ValueError):
        LocalizerConfig(backbone="vgg16")
    with pytest.raises(ValueError):
        LocalizerConfig(channels=(4, 4, 8))


# --------------------------------------------------------------------------- resnet18


def test_resnet18_param_count_and_layout():
    """torchvision resnet18 with 9-ch conv1 (11,213,796 in torch) minus the 12 dead fc rows."""
    model = Localizer(LocalizerConfig(backbone="resnet18"))
    v = jax.eval_shape(lambda: model.init(KEY, jnp.zeros((1, 128, 128, 9)), train=False))
    assert count_params(v["params"]) == 11_213_796 - 12 * 513
    p = v["params"]["features"]
    assert p["conv1"]["kernel"].shape == (7, 7, 9, 64) and "bias" not in p["conv1"]
    assert "downsample_conv" in p["layer2_0"] and "downsample_conv" not in p["layer1_0"]
    assert v["params"]["fc"]["kernel"].shape == (512, 24)


def test_resnet18_init_boxes_and_any_size():
    model = Localizer(LocalizerConfig(backbone="resnet18"))
    x = _probs((2, 40, 36, 9))
    v = _init(model, x)
    theta, params = model.apply(v, x, train=False, return_params=True)
    np.testing.assert_allclose(params, np.broadcast_to(INIT, (2, 6, 4)), atol=1e-7)
    theta = model.apply(_perturb_fc(v), x, train=False)
    np.testing.assert_array_equal(theta[..., 0, 1], 0)


# --------------------------------------------------------------------------- torch parity


def test_resnet18_parity_with_pytorch():
    import torch
    from torch_helpers import randomise_batchnorm
    from torch_twin import TorchResNet18Twin

    from stn_icnn_jax.model.localizer import torch_resnet18_to_flax

    torch.manual_seed(0)
    twin = TorchResNet18Twin()
    assert sum(p.numel() for p in twin.parameters()) == 11_213_796  # notes sec. 1.5
    randomise_batchnorm(twin, seed=1)
    cfg = LocalizerConfig(backbone="resnet18")
    variables = torch_resnet18_to_flax(twin.state_dict(), cfg)
    x = np.array(_probs((2, 64, 64, 9)))
    theta = jax.jit(lambda v, x: Localizer(cfg).apply(v, x, train=False))(variables, jnp.asarray(x))
    with torch.no_grad():
        theta_t = twin.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(np.asarray(theta), theta_t, rtol=1e-4, atol=1e-5)
    assert np.abs(theta_t).max() > 1e-2
    with pytest.raises(ValueError, match="missing"):
        torch_resnet18_to_flax({k: v for k, v in twin.state_dict().items() if k != "fc.bias"}, cfg)


# --------------------------------------------------------------------------- vgg9 values


def _torch_vgg9(variables, cfg):
    """Our torch statement of the VGG-9 localiser (paper Fig. 3 as documented in
    localizer.py): [conv3x3/p1 + BN + ReLU] x 2 then avg-pool 3/2/1 (valid pixels only),
    repeated, flattened in (h, w, c) order, one dense layer; weights copied from flax."""
    import torch
    from torch import nn as tnn

    p, s = variables["params"]["features"], variables["batch_stats"]["features"]
    layers = []
    in_ch = cfg.in_channels
    for k, c in enumerate(cfg.channels):
        conv, bn = tnn.Conv2d(in_ch, c, 3, 1, 1), tnn.BatchNorm2d(c, eps=cfg.bn_epsilon)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.array(p[f"conv_{k}"]["kernel"]).transpose(3, 2, 0, 1)))
            conv.bias.copy_(torch.from_numpy(np.array(p[f"conv_{k}"]["bias"])))
            bn.weight.copy_(torch.from_numpy(np.array(p[f"bn_{k}"]["scale"])))
            bn.bias.copy_(torch.from_numpy(np.array(p[f"bn_{k}"]["bias"])))
            bn.running_mean.copy_(torch.from_numpy(np.array(s[f"bn_{k}"]["mean"])))
            bn.running_var.copy_(torch.from_numpy(np.array(s[f"bn_{k}"]["var"])))
        layers += [conv, bn, tnn.ReLU()]
        if k % 2 == 1:
            layers.append(tnn.AvgPool2d(3, 2, 1, count_include_pad=False))
        in_ch = c
    body = tnn.Sequential(*layers)
    fc = variables["params"]["fc"]
    w = torch.from_numpy(np.array(fc["kernel"]))
    b = torch.from_numpy(np.array(fc["bias"]))

    def run(x_nhwc, train):
        body.train(train)
        with torch.no_grad():
            f = body(torch.from_numpy(np.array(x_nhwc)).permute(0, 3, 1, 2))
            free = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1) @ w + b
        sx, sy, tx, ty = free.numpy().reshape(-1, cfg.num_parts, 4).transpose(2, 0, 1)
        zero = np.zeros_like(sx)
        return np.stack([np.stack([sx, zero, tx], -1), np.stack([zero, sy, ty], -1)], -2)

    return run


def _random_bn(variables, seed=3):
    """Non-trivial BN scale/bias/statistics so the comparison sees them."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name in ("scale", "var"):
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        if name == "mean" or (name == "bias" and "bn_" in jax.tree_util.keystr(path)):
            return jnp.asarray(rng.normal(size=leaf.shape) * 0.1, leaf.dtype)
        return leaf

    return jax.tree_util.tree_map_with_path(fill, variables)


def test_vgg9_matches_a_torch_statement_eval_and_train():
    cfg = LocalizerConfig(input_size=16, channels=(4, 4, 6, 6, 8, 8, 8, 8), head_init_scale=0.3)
    model = Localizer(cfg)
    x = _probs((3, 16, 16, 9), seed=4)
    variables = _random_bn(_init(model, x))
    torch_run = _torch_vgg9(variables, cfg)
    theta = np.asarray(model.apply(variables, x, train=False))
    expected = torch_run(x, train=False)
    np.testing.assert_allclose(theta, expected, rtol=1e-4, atol=1e-5)
    # the head is not at its init: the features matter
    assert np.abs(theta - np.asarray(theta_from_params(INIT))).max() > 0.01
    theta_t, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(theta_t), torch_run(x, train=True), rtol=1e-4, atol=1e-5)


def test_vgg9_features_are_non_negative_and_pooled_over_valid_pixels():
    """conv_2 receives max(BN output of conv_1, 0) average-pooled 3/2/1 over the valid
    pixels only (a corner averages 2x2 pixels), recomputed by hand in train mode."""
    model = Localizer(SMALL)
    x = _probs((2, 32, 32, 9), seed=6)
    v = _random_bn(_init(model, x))
    _, state = model.apply(v, x, train=True, mutable=["batch_stats", "intermediates"],
                           capture_intermediates=True)
    feats = state["intermediates"]["features"]
    bn1 = np.asarray(feats["bn_1"]["__call__"][0])
    relu1 = np.maximum(bn1, 0.0)
    assert (bn1 < 0).mean() > 0.2
    # conv_2 sees relu1 average-pooled 3/2/1 over the valid pixels only: pool by hand
    # (hand-worked: the corner averages relu1[:2, :2], pixel (1, 1) relu1[1:4, 1:4]) and
    # recompute conv_2's output from it.
    hand = np.zeros((2, 16, 16, relu1.shape[-1]))
    for i in range(16):
        for j in range(16):
            rows = slice(max(2 * i - 1, 0), min(2 * i + 2, 32))
            cols = slice(max(2 * j - 1, 0), min(2 * j + 2, 32))
            hand[:, i, j] = relu1[:, rows, cols].mean((1, 2))
    np.testing.assert_allclose(hand[:, 0, 0], relu1[:, :2, :2].mean((1, 2)))
    np.testing.assert_allclose(hand[:, 1, 1], relu1[:, 1:4, 1:4].mean((1, 2)))
    k2 = v["params"]["features"]["conv_2"]
    recomputed = jax.lax.conv_general_dilated(
        jnp.asarray(hand, jnp.float32), k2["kernel"], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC")) + k2["bias"]
    np.testing.assert_allclose(np.asarray(feats["conv_2"]["__call__"][0]), np.asarray(recomputed),
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- coordinate channels


def test_with_coordinates_hand_worked():
    x = jnp.full((2, 3, 2, 1), 7.0)
    out = np.asarray(with_coordinates(x))
    assert out.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(out[..., 0], 7.0)
    # channel 1: x (column) in [-1, 1]; channel 2: y (row) in [-1, 1]; the same for each image
    np.testing.assert_array_equal(out[1, ..., 1], [[-1, 1], [-1, 1], [-1, 1]])
    np.testing.assert_array_equal(out[1, ..., 2], [[-1, -1], [0, 0], [1, 1]])


@pytest.mark.parametrize("backbone,first", [("vgg9", "conv_0"), ("resnet18", "conv1")])
def test_coord_channels_are_the_first_convs_last_two_inputs(backbone, first):
    """With the switch on, the first conv has 11 input channels; with its last two rows
    zeroed the net computes what the switch-off net computes with the first 9 rows, and
    with them non-zero a spatially uniform input gives a different theta."""
    cfg = dataclasses.replace(SMALL, backbone=backbone)
    on = Localizer(dataclasses.replace(cfg, coord_channels=True))
    off = Localizer(cfg)
    x = jnp.full((2, 32, 32, 9), 1.0 / 9)
    v_on = _perturb_fc(_init(on, x))
    kernel = v_on["params"]["features"][first]["kernel"]
    assert kernel.shape[2] == 11

    def with_kernel(v, k):
        feats = {**v["params"]["features"], first: {**v["params"]["features"][first], "kernel": k}}
        return {**v, "params": {**v["params"], "features": feats}}

    theta_off = off.apply(with_kernel(v_on, kernel[:, :, :9]), x, train=False)
    theta_zeroed = on.apply(with_kernel(v_on, kernel.at[:, :, 9:].set(0.0)), x, train=False)
    np.testing.assert_allclose(theta_zeroed, theta_off, rtol=1e-6, atol=1e-7)
    theta_on = on.apply(v_on, x, train=False)
    assert float(jnp.max(jnp.abs(theta_on - theta_off))) > 1e-4


def test_coord_channels_switch_in_the_config():
    from stn_icnn_jax.config import base_config
    from stn_icnn_jax.config.build import model_config

    c = base_config()
    assert model_config(c).localizer.coord_channels is False  # the paper's L
    c.model.localizer_coord_channels = True
    assert model_config(c).localizer.coord_channels is True
    del c.model["localizer_coord_channels"]  # a config.json written before the key existed
    assert model_config(c).localizer.coord_channels is False
