"""Tests of the interlinked CNN (stn_icnn_jax.model.icnn).

Most tests use numpy-random variables built from ``jax.eval_shape(init)``: a real
``init`` of the full iCNN compiles ~70 threefry draws (10-20 s on a shared 2-core CPU),
which would dominate the suite. ``init`` itself is exercised on a tiny config.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn as tnn
from torch_helpers import randomise_batchnorm
from torch_twin import TorchICNNTwin, TorchStage2Twin

from stn_icnn_jax.model.icnn import (
    ICNN,
    PART_NUM_LABELS,
    PART_NAMES,
    ICNNConfig,
    PartModels,
    count_params,
    max_pool_down,
    nearest_up,
    torch_icnn_to_flax,
    torch_parts_to_flax,
)

TINY = ICNNConfig(num_labels=3, channels=(2, 3, 4), num_interlink_layers=1, kernel_size=3,
                  head_kernel_size=3)
# Names and shapes of the authors' state dicts (facts kept in the repository).
LAYOUT_FILE = Path(__file__).with_name("data") / "authors_state_dict_layout.txt"


def random_variables(module, x, seed=0, **kwargs):
    """Variables shaped like ``module.init(key, x, ...)``, filled with numpy randoms
    (non-trivial BN scale/bias/statistics so eval-mode tests are meaningful)."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, **kwargs))
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = path[-1].key
        if name == "kernel":
            a = rng.normal(size=s.shape) / math.sqrt(np.prod(s.shape[:-1]))
        elif name in ("scale", "var"):
            a = rng.uniform(0.5, 1.5, size=s.shape)
        else:  # bias, mean
            a = rng.normal(size=s.shape) * 0.1
        return jnp.asarray(a, dtype=s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _eval_apply(module):
    return jax.jit(lambda v, x: module.apply(v, x, train=False))


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("num_labels, expected", [(9, 559_931), (2, 545_588), (4, 548_376)])
def test_authors_used_param_count(num_labels, expected):
    model = ICNN(ICNNConfig.authors(num_labels))
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3)),
                                          train=False))
    assert count_params(v["params"]) == expected
    # the parameters the authors create but never use must not exist
    assert "node_3" not in v["params"]["output_integration"]
    assert "last_con2_bnm" not in v["params"] and "last_conv3_bnm" not in v["params"]
    assert set(v) == {"params", "batch_stats"}


def test_paper_preset_is_3x3_with_bn_relu():
    cfg = ICNNConfig.paper(9)
    v = jax.eval_shape(lambda: ICNN(cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)),
                                              train=False))
    kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(v["params"])
               if path[-1].key == "kernel"]
    assert kernels and all(k[:2] == (3, 3) for k in kernels)
    assert "last_con2_bnm" in v["params"]  # BN after head conv 2 in the paper reading
    assert ICNNConfig.from_preset("paper", 9) == cfg
    with pytest.raises(ValueError, match="preset"):
        ICNNConfig.from_preset("nope", 9)


@pytest.mark.parametrize("hw", [(128, 128), (81, 81), (8, 8), (9, 13), (33, 17), (100, 57)])
def test_output_shapes(hw):
    model = ICNN(ICNNConfig.authors(9))
    x = jax.ShapeDtypeStruct((2, *hw, 3), jnp.float32)
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)),
                                          train=False))
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, x)
    assert out.shape == (2, *hw, 9)


def test_pyramid_sizes():
    cfg = ICNNConfig.authors(9)
    assert cfg.pyramid_sizes(128) == (128, 64, 32, 16)
    assert cfg.pyramid_sizes(81) == (81, 41, 21, 11)
    assert cfg.min_size == 8


def test_forward_runs_on_odd_size_and_is_finite():
    model = ICNN(ICNNConfig.authors(9))
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 11, 9, 3)), jnp.float32)
    v = random_variables(model, x, train=False)
    y = _eval_apply(model)(v, x)
    assert y.shape == (1, 11, 9, 9) and bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize(
    "shape, dtype, match",
    [
        ((16, 16, 3), jnp.float32, "NHWC"),
        ((1, 16, 16, 4), jnp.float32, "channels"),
        ((1, 3, 16, 16), jnp.float32, "channels"),
        ((1, 7, 16, 3), jnp.float32, ">= 8"),
        ((1, 16, 16, 3), jnp.uint8, "float"),
    ],
)
def test_bad_input_raises_value_error(shape, dtype, match):
    model = ICNN(ICNNConfig.authors(9))
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape, dtype),
                                          train=False))


def test_config_validation():
    with pytest.raises(ValueError):
        ICNNConfig(num_labels=9, kernel_size=4)
    with pytest.raises(ValueError):
        ICNNConfig(num_labels=9, input_activation="gelu")
    with pytest.raises(ValueError):
        ICNNConfig(num_labels=0)


# --------------------------------------------------------------------------- init + BN


def test_init_torch_style_bounds_and_pure():
    model = ICNN(TINY)
    x = jnp.zeros((1, 8, 8, 3))
    init = jax.jit(lambda k: model.init(k, x, train=False))
    # rbg keys: threefry with jax_threefry_partitionable (the default) compiles ~5x slower
    # on CPU; the initialisers themselves are the same
    key = jax.random.key(0, impl="rbg")
    v1, v2 = init(key), init(key)
    chex_equal = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), v1, v2)
    assert all(jax.tree_util.tree_leaves(chex_equal))  # pure: same key, same params
    k = v1["params"]["interlink_layers_0"]["node_1"]["inter_conv_node"]
    fan_in = 3 * 3 * (2 + 3 + 4)
    bound = 1 / math.sqrt(fan_in)
    assert float(jnp.max(jnp.abs(k["kernel"]))) <= bound
    assert float(jnp.max(jnp.abs(k["bias"]))) <= bound
    assert float(jnp.std(k["kernel"])) > 0.3 * bound and float(jnp.std(k["bias"])) > 0
    bs = v1["batch_stats"]["input_bnm_0"]
    np.testing.assert_array_equal(bs["mean"], 0)
    np.testing.assert_array_equal(bs["var"], 1)


def test_train_vs_eval_batchnorm():
    model = ICNN(TINY)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.uniform(size=(3, 8, 8, 3)), jnp.float32)
    v = random_variables(model, x, train=False)

    # train mode needs a mutable batch_stats collection and updates it
    with pytest.raises(flax.errors.ModifyScopeVariableError):
        model.apply(v, x, train=True)
    y_train, upd = model.apply(v, x, train=True, mutable=["batch_stats"])
    old = v["batch_stats"]["input_bnm_0"]["mean"]
    new = upd["batch_stats"]["input_bnm_0"]["mean"]
    assert not np.allclose(old, new)
    _, upd2 = model.apply(v, x, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(new, upd2["batch_stats"]["input_bnm_0"]["mean"])  # pure

    # eval mode: no mutation, outputs per sample independent of the rest of the batch
    y_eval = model.apply(v, x, train=False)
    y_eval0 = model.apply(v, x[:1], train=False)
    np.testing.assert_allclose(y_eval[:1], y_eval0, rtol=1e-5, atol=1e-5)
    # train mode: batch statistics couple the samples
    y_train0, _ = model.apply(v, x[:1], train=True, mutable=["batch_stats"])
    assert not np.allclose(y_train[:1], y_train0, atol=1e-4)
    assert not np.allclose(y_train, y_eval, atol=1e-4)


def test_bn_running_mean_update_matches_momentum():
    """flax momentum 0.9 == torch momentum 0.1 on the running mean."""
    model = ICNN(TINY)
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(4, 8, 8, 3)), jnp.float32)
    v = random_variables(model, x, train=False)
    _, upd = model.apply(v, x, train=True, mutable=["batch_stats"])
    # input conv 0 acts on the image directly: recompute its batch mean by hand
    p = v["params"]["input_conv_0"]
    h = jax.lax.conv_general_dilated(x, p["kernel"], (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
    batch_mean = np.asarray(jnp.mean(h, axis=(0, 1, 2)))
    old = np.asarray(v["batch_stats"]["input_bnm_0"]["mean"])
    np.testing.assert_allclose(upd["batch_stats"]["input_bnm_0"]["mean"],
                               0.9 * old + 0.1 * batch_mean, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- helpers


def test_nearest_up_hand_example():
    x = jnp.asarray([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    np.testing.assert_array_equal(
        nearest_up(x, (3, 3))[0, :, :, 0], [[1, 1, 2], [1, 1, 2], [3, 3, 4]])
    np.testing.assert_array_equal(
        nearest_up(x, (4, 3))[0, :, :, 0], [[1, 1, 2], [1, 1, 2], [3, 3, 4], [3, 3, 4]])
    with pytest.raises(ValueError):
        nearest_up(x, (5, 4))


def test_max_pool_down_hand_example_pads_with_minus_inf():
    x = -jnp.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # [[-1,-2,-3],[-4,-5,-6],[-7,-8,-9]]
    out = max_pool_down(x)[0, :, :, 0]
    # zero padding would give 0 everywhere; -inf padding keeps the window maxima
    np.testing.assert_array_equal(out, [[-1, -2], [-4, -5]])
    y = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(max_pool_down(y)[0, :, :, 0], [[5, 7], [13, 15]])


@settings(max_examples=12, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40))
def test_helpers_match_torch(h, w):
    rng = np.random.default_rng(h * 100 + w)
    x = rng.normal(size=(1, h, w, 2)).astype(np.float32)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    down = np.asarray(max_pool_down(jnp.asarray(x)))
    down_t = F.max_pool2d(xt, 3, 2, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(down, down_t)
    # every fine size whose pyramid parent has size (h, w): ceil(H/2) = h <=> H in {2h-1, 2h}
    for size in ((2 * h, 2 * w), (2 * h - 1, 2 * w - 1), (2 * h - 1, 2 * w)):
        up = np.asarray(nearest_up(jnp.asarray(x), size))
        up_t = F.interpolate(xt, size=size, mode="nearest").permute(0, 2, 3, 1).numpy()
        np.testing.assert_array_equal(up, up_t)


def test_count_params():
    assert count_params({"a": jnp.zeros((2, 3)), "b": {"c": jnp.zeros(4)}}) == 10
    assert count_params({}) == 0


# --------------------------------------------------------------------------- stage 2


def _tiny_parts(share):
    return PartModels(dataclasses.replace(TINY, num_labels=2), share_left_right=share)


def test_part_models_shapes_and_structure():
    x = jnp.zeros((2, 6, 9, 10, 3))
    for share, names in ((True, {"brow", "eye", "nose", "mouth"}), (False, set(PART_NAMES))):
        model = _tiny_parts(share)
        v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
        assert set(v["params"]) == names
        outs = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, x)
        assert len(outs) == 6
        assert [o.shape for o in outs] == [(2, 9, 10, c) for c in PART_NUM_LABELS]
    assert PART_NUM_LABELS == (2, 2, 2, 2, 2, 4)
    with pytest.raises(ValueError, match="6"):
        jax.eval_shape(lambda: _tiny_parts(True).init(jax.random.PRNGKey(0),
                                                      jnp.zeros((2, 5, 9, 9, 3)), train=False))


def test_part_models_authors_param_count():
    model = PartModels(ICNNConfig.authors(2))
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 81, 81, 3)),
                                          train=False))
    assert count_params(v["params"]) == 3 * 545_588 + 548_376


def test_flip_sharing_equivariance():
    model = _tiny_parts(True)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(size=(2, 6, 9, 11, 3)), jnp.float32)
    v = random_variables(model, x, train=False)
    outs = model.apply(v, x, train=False)
    flip = lambda a: jnp.flip(a, axis=2)  # noqa: E731
    for name, left, right in (("brow", 0, 1), ("eye", 2, 3)):
        sub = {"params": v["params"][name], "batch_stats": v["batch_stats"][name]}
        single = ICNN(dataclasses.replace(TINY, num_labels=2))
        np.testing.assert_allclose(outs[left], single.apply(sub, x[:, left], train=False),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(outs[right], flip(single.apply(sub, flip(x[:, right]), train=False)),
                                   rtol=1e-5, atol=1e-5)
        # the flip matters: without it the right part would come out differently
        assert not np.allclose(outs[right], single.apply(sub, x[:, right], train=False), atol=1e-4)
    # nose and mouth go through their own models, unflipped
    mouth = {"params": v["params"]["mouth"], "batch_stats": v["batch_stats"]["mouth"]}
    np.testing.assert_allclose(
        outs[5], ICNN(dataclasses.replace(TINY, num_labels=4)).apply(mouth, x[:, 5], train=False),
        rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- torch twin


def test_torch_twin_matches_authors_counts():
    """The twin has the authors' total (822,943) and used (559,931) parameter counts."""
    torch.manual_seed(0)
    twin = TorchICNNTwin(9)
    assert sum(p.numel() for p in twin.parameters()) == 822_943
    twin(torch.rand(2, 3, 16, 16)).sum().backward()
    assert sum(p.numel() for p in twin.parameters() if p.grad is not None) == 559_931


def read_layout() -> tuple[dict, dict]:
    """(stage-1, stage-2) {name: shape} from LAYOUT_FILE; ``model.{0,1,2}.x`` expands to
    one entry per listed index."""
    stage1, stage2, section = {}, {}, None
    for line in LAYOUT_FILE.read_text().splitlines():
        if line.startswith("# stage-1"):
            section = stage1
        elif line.startswith("# stage-2"):
            section = stage2
        elif line.startswith("#") or not line.strip():
            continue
        else:
            m = re.fullmatch(r"(\S+) \((.*)\)", line)
            shape = tuple(int(v) for v in m.group(2).split(",") if v.strip())
            b = re.fullmatch(r"(.*)\{([\d,]+)\}(.*)", m.group(1))
            names = [b.group(1) + k + b.group(3) for k in b.group(2).split(",")] if b else [m.group(1)]
            for name in names:
                assert name not in section, f"{name} listed twice"
                section[name] = shape
    return stage1, stage2


def test_layout_file_is_complete():
    stage1, stage2 = read_layout()
    assert len(stage1) == 301 and len(stage2) == 4 * 301
    assert stage1["last_conv3.weight"] == (9, 9, 9, 9)
    assert stage2["model.3.last_conv2.weight"] == (4, 16, 5, 5)
    assert stage2["model.0.input_conv.0.weight"] == (8, 3, 5, 5)


def test_torch_twin_state_dict_matches_reference_layout():
    stage1, stage2 = read_layout()
    for twin, want in ((TorchICNNTwin(9), stage1), (TorchStage2Twin(), stage2)):
        got = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
        assert got == want


def test_converters_accept_the_reference_layout():
    """A state dict made from the layout facts alone (no twin) converts for the authors'
    presets, and every used tensor lands where its shape says."""
    stage1, stage2 = read_layout()
    rng = np.random.default_rng(0)
    sd1 = {k: rng.normal(size=s).astype(np.float32) for k, s in stage1.items()}
    v = torch_icnn_to_flax(sd1, ICNNConfig.authors(9))
    np.testing.assert_array_equal(v["params"]["last_conv3"]["kernel"],
                                  sd1["last_conv3.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(
        v["batch_stats"]["interlink_layers_2"]["node_1"]["conv_node_batchnorm"]["var"],
        sd1["interlink_layers.2.iCNN_Nodelist.1.conv_node_batchnorm.running_var"])
    sd2 = {k: rng.normal(size=s).astype(np.float32) for k, s in stage2.items()}
    v2 = torch_parts_to_flax(sd2, ICNNConfig.authors(2))
    np.testing.assert_array_equal(v2["params"]["mouth"]["last_conv2"]["bias"],
                                  sd2["model.3.last_conv2.bias"])


def _torch_eval(twin, x_nhwc):
    with torch.no_grad():
        y = twin.eval()(torch.from_numpy(np.asarray(x_nhwc)).permute(0, 3, 1, 2))
    return y.permute(0, 2, 3, 1).numpy()


def test_parity_with_pytorch_eval_and_train():
    """Authors preset (L=9, real layer sizes) = torch twin, eval and train-mode forward."""
    torch.manual_seed(0)
    twin = randomise_batchnorm(TorchICNNTwin(9), seed=1)
    cfg = ICNNConfig.authors(9)
    variables = torch_icnn_to_flax(twin.state_dict(), cfg)
    model = ICNN(cfg)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)

    y_flax = np.asarray(_eval_apply(model)(variables, jnp.asarray(x[:1])))
    y_torch = _torch_eval(twin, x[:1])
    assert y_flax.shape == (1, 32, 32, 9)
    np.testing.assert_allclose(y_flax, y_torch, rtol=1e-4, atol=1e-4)
    assert np.abs(y_torch).max() > 0.1  # non-trivial output
    # odd, non-square size: pyramid 27x21 -> 14x11 -> 7x6 -> 4x3 (odd up-sampling crops)
    x_odd = np.random.default_rng(1).uniform(size=(1, 27, 21, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(_eval_apply(model)(variables, jnp.asarray(x_odd))),
                               _torch_eval(twin, x_odd), rtol=1e-4, atol=1e-4)

    # train mode: both normalise with the (biased) batch statistics
    y_flax_t, upd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, jnp.asarray(x))
    with torch.no_grad():
        y_torch_t = twin.train()(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(y_flax_t), y_torch_t, rtol=1e-4, atol=1e-4)
    # running means move the same way (momentum 0.9 flax == 0.1 torch)
    np.testing.assert_allclose(upd["batch_stats"]["input_bnm_2"]["mean"],
                               twin.input_bnm[2].running_mean.numpy(), rtol=1e-4, atol=1e-5)


def test_parity_with_pytorch_stage2_flip_sharing():
    torch.manual_seed(1)
    twin = randomise_batchnorm(TorchStage2Twin(), seed=2)
    variables = torch_parts_to_flax(twin.state_dict(), ICNNConfig.authors(2))
    model = PartModels(ICNNConfig.authors(2), share_left_right=True)
    x = np.random.default_rng(1).uniform(size=(1, 6, 9, 9, 3)).astype(np.float32)
    outs = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.asarray(x))
    with torch.no_grad():
        touts = twin.eval()(torch.from_numpy(x).permute(0, 1, 4, 2, 3))
    for k, (o, t) in enumerate(zip(outs, touts)):
        np.testing.assert_allclose(np.asarray(o), t.permute(0, 2, 3, 1).numpy(),
                                   rtol=1e-4, atol=1e-4, err_msg=PART_NAMES[k])


class TorchPaperTwin(TorchICNNTwin):
    """Our torch statement of the paper preset (Fig. 2 reading): BN + ReLU after every conv
    but the logit conv, head conv 2 included; the state-dict names are the authors'."""

    def forward(self, x):
        relu = torch.relu
        xs = [x]
        for _ in range(len(self.input_conv) - 1):
            xs.append(F.max_pool2d(xs[-1], 3, 2, 1))
        f = [relu(bn(conv(xi))) for conv, bn, xi in zip(self.input_conv, self.input_bnm, xs)]
        n = len(f)
        for layer in self.interlink_layers:
            new = []
            for i, node in enumerate(layer.iCNN_Nodelist):
                parts = ([F.max_pool2d(f[i - 1], 3, 2, 1)] if i > 0 else []) + [f[i]]
                if i < n - 1:
                    parts.append(F.interpolate(f[i + 1], size=f[i].shape[2:], mode="nearest"))
                h = relu(node.inter_conv_node_batchnorm(node.inter_conv_node(torch.cat(parts, 1))))
                new.append(relu(node.conv_node_batchnorm(node.conv_node(h))))
            f = new
        nodes = self.interlink_layers[-1].iCNN_Nodelist
        g = f[-1]
        for i in reversed(range(n - 1)):
            h = torch.cat([f[i], F.interpolate(g, size=f[i].shape[2:], mode="nearest")], 1)
            g = relu(nodes[i].output_conv_node_batchnorm(nodes[i].output_conv_node(h)))
        h = relu(self.last_con1_bnm(self.last_conv1(g)))
        h = relu(self.last_con2_bnm(self.last_conv2(h)))
        return self.last_conv3(h)


def test_paper_preset_matches_a_torch_statement_eval_and_train():
    """The paper preset (what the shipped configs train), shrunk to tiny widths, against
    TorchPaperTwin with the same weights: eval and train-mode forward and BN statistics."""
    cfg = dataclasses.replace(ICNNConfig.paper(3), channels=(4, 6, 8), num_interlink_layers=2)
    torch.manual_seed(3)
    twin = randomise_batchnorm(TorchPaperTwin(3, chs=cfg.channels, layers=2, k=3, k_last=3), seed=4)
    variables = torch_icnn_to_flax(twin.state_dict(), cfg)
    model = ICNN(cfg)
    x = np.random.default_rng(2).uniform(size=(2, 12, 10, 3)).astype(np.float32)
    y_flax = np.asarray(model.apply(variables, jnp.asarray(x), train=False))
    y_torch = _torch_eval(twin, x)
    assert np.abs(y_torch).max() > 0.05
    np.testing.assert_allclose(y_flax, y_torch, rtol=1e-4, atol=1e-5)

    y_flax_t, upd = model.apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
    with torch.no_grad():
        y_torch_t = twin.train()(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(y_flax_t), y_torch_t, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["last_con2_bnm"]["mean"],
                               twin.last_con2_bnm.running_mean.numpy(), rtol=1e-4, atol=1e-6)


def test_paper_preset_features_are_relu_of_batch_normalised_convs():
    """Properties only BN + ReLU has: in train mode the first input conv's features, before
    the ReLU, have per-channel batch mean beta and std gamma; after it they are >= 0 with
    zeros where the normalised value was negative."""
    cfg = dataclasses.replace(ICNNConfig.paper(3), channels=(4, 6), num_interlink_layers=1)
    model = ICNN(cfg)
    x = jnp.asarray(np.random.default_rng(5).uniform(size=(3, 8, 8, 3)), jnp.float32)
    v = random_variables(model, x, train=False)
    _, state = model.apply(v, x, train=True, mutable=["batch_stats", "intermediates"],
                           capture_intermediates=True)
    inter = state["intermediates"]
    conv = np.asarray(inter["input_conv_0"]["__call__"][0], np.float64)
    bn = np.asarray(inter["input_bnm_0"]["__call__"][0], np.float64)
    gamma = np.asarray(v["params"]["input_bnm_0"]["scale"])
    beta = np.asarray(v["params"]["input_bnm_0"]["bias"])
    expected = (conv - conv.mean((0, 1, 2))) / np.sqrt(conv.var((0, 1, 2)) + cfg.bn_epsilon) * gamma + beta
    np.testing.assert_allclose(bn, expected, rtol=1e-4, atol=1e-5)
    # Inside a node: the second conv receives relu(BN output of the first), recomputed here.
    first = np.asarray(inter["interlink_layers_0"]["node_0"]["inter_conv_node_batchnorm"]["__call__"][0])
    after = np.asarray(inter["interlink_layers_0"]["node_0"]["conv_node"]["__call__"][0])
    k = v["params"]["interlink_layers_0"]["node_0"]["conv_node"]
    relu_first = jnp.asarray(np.maximum(first, 0.0))
    recomputed = jax.lax.conv_general_dilated(relu_first, k["kernel"], (1, 1), ((1, 1), (1, 1)),
                                              dimension_numbers=("NHWC", "HWIO", "NHWC")) + k["bias"]
    np.testing.assert_allclose(after, np.asarray(recomputed), rtol=1e-4, atol=1e-5)
    assert (first < 0).mean() > 0.2  # the ReLU really cuts something


def test_converter_rejects_bad_state_dict():
    sd = TorchICNNTwin(9).state_dict()
    missing = {k: v for k, v in sd.items() if not k.startswith("last_conv3")}
    with pytest.raises(ValueError, match="missing"):
        torch_icnn_to_flax(missing, ICNNConfig.authors(9))
    with pytest.raises(ValueError, match="do not fit"):
        torch_icnn_to_flax(sd, ICNNConfig.authors(4))  # 9-label weights into a 4-label model
