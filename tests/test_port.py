"""stn_icnn_jax.port: the authors' checkpoint container <-> our weights files.

The container is written by our PyTorch twins of the authors' classes (tests/torch_twin.py)
with torch.save, exactly as their save function lays it out (docs/authors-code.md,
"Weight layout"); the ported variables are checked against the per-network converters
of model/icnn.py and model/localizer.py, and the exported container against the twins'
own state dicts (strict load_state_dict)."""

from __future__ import annotations

import sys

import jax
import numpy as np
import pytest
import torch

from torch_helpers import randomise_batchnorm
from torch_twin import TorchICNNTwin, TorchResNet18Twin, TorchStage2Twin, TorchVGG9Twin

from stn_icnn_jax import port, weights
from stn_icnn_jax.config import build
from stn_icnn_jax.model.icnn import torch_icnn_to_flax, torch_parts_to_flax
from stn_icnn_jax.model.localizer import torch_resnet18_to_flax



def small_authors_config(backbone="resnet18"):
    """The authors' conventions on small sizes (rough 32, crop 15, canvas 96)."""
    c = port.authors_config()
    c.data.canvas_size = 96
    c.model.rough_size = 32
    c.model.crop_size = 15
    c.model.localizer_backbone = backbone
    c.model.localizer_channels = (4, 4, 6, 6, 8, 8, 8, 8)
    return c


def twins(seed=0, backbone="resnet18", input_size=32):
    """Randomly initialised twins with randomised BatchNorm (eval-mode parity sees it)."""
    torch.manual_seed(seed)
    rough = randomise_batchnorm(TorchICNNTwin(9), seed)
    parts = randomise_batchnorm(TorchStage2Twin(), seed + 1)
    localizer = (TorchResNet18Twin() if backbone == "resnet18"
                 else TorchVGG9Twin((4, 4, 6, 6, 8, 8, 8, 8), input_size))
    localizer = randomise_batchnorm(localizer, seed + 2)
    return rough, localizer, parts


def authors_container(rough, localizer, parts):
    """What the authors' save function writes: the three state dicts, an optimiser
    state and counters."""
    opt = torch.optim.Adam(rough.parameters(), lr=1e-3)
    rough(torch.rand(1, 3, 16, 16)).sum().backward()
    opt.step()
    opt.zero_grad()
    return {"model1": rough.state_dict(), "model2": parts.state_dict(),
            "select_net": localizer.state_dict(), "optimizer": opt.state_dict(),
            "step": 1234, "epoch": 7, "best_error": torch.tensor(0.25)}


def leaves(tree):
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def assert_trees_bitwise_equal(a, b):
    la, lb = leaves(a), leaves(b)
    assert sorted(la) == sorted(lb)
    for key in la:
        assert la[key].dtype == lb[key].dtype and la[key].shape == lb[key].shape, key
        assert np.array_equal(la[key], lb[key]), f"{key} differs"


def random_variables(model_config, seed=0):
    """Every array of the model random (variances positive): our variables, any values."""
    rng = np.random.default_rng(seed)
    template = port._template(model_config)

    def draw(path, x):
        if jax.tree_util.keystr(path).endswith("['var']"):
            return rng.uniform(0.5, 1.5, x.shape).astype(np.float32)
        return rng.normal(size=x.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, {k: template[k] for k in ("params", "batch_stats")})


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    """A twin container (torch.save) ported with the default (authors', HELEN) config."""
    tmp = tmp_path_factory.mktemp("port")
    rough, localizer, parts = twins()
    container = authors_container(rough, localizer, parts)
    src = tmp / "authors.pth"
    torch.save(container, src)
    path, record = port.port_checkpoint(src, tmp / "ported.stnw")
    return container, weights.load(path), record, tmp


# --------------------------------------------------------------------------- layout


def test_layout_is_the_authors():
    """The layout the port expects for the authors' model = the facts in
    tests/data (FaceModel, Stage2Model) and torchvision's ResNet-18 with a 9-channel
    conv1 and a 36-way fc."""
    from test_icnn import read_layout

    layout = port.torch_layout(build.model_config(port.authors_config()))
    stage1, stage2 = read_layout()
    assert layout["model1"] == stage1 and layout["model2"] == stage2
    resnet = {k: tuple(v.shape) for k, v in TorchResNet18Twin().state_dict().items()}
    assert layout["select_net"] == resnet
    assert layout["select_net"]["conv1.weight"] == (64, 9, 7, 7)
    assert layout["select_net"]["fc.weight"] == (36, 512)
    assert len(layout["model1"]) == 301 and len(layout["model2"]) == 4 * 301


# --------------------------------------------------------------------------- authors -> ours


def test_port_equals_the_network_converters_and_keeps_bn_statistics(ported):
    container, w, record, _ = ported
    expected = {
        "rough": torch_icnn_to_flax(container["model1"], w.model_config().rough),
        "parts": torch_parts_to_flax(container["model2"], w.model_config().parts),
        "localizer": torch_resnet18_to_flax(container["select_net"], w.model_config().localizer),
    }
    for name, want in expected.items():
        got = {k: w.variables[k][name] for k in ("params", "batch_stats")}
        assert_trees_bitwise_equal(got, jax.tree.map(np.asarray, want))
    # BN statistics are the randomised ones, not an init
    var = w.variables["batch_stats"]["rough"]["input_bnm_0"]["var"]
    np.testing.assert_array_equal(var, container["model1"]["input_bnm.0.running_var"].numpy())
    assert not np.allclose(var, 1.0)
    weights.check_variables(w)
    assert record["port"]["networks"] == {"rough": "model1", "localizer": "select_net",
                                          "parts": "model2"}
    assert record["port"]["initialised"] == {}
    assert record["port"]["not_ported"] == ["best_error", "epoch", "optimizer", "step"]
    assert (record["port"]["step"], record["port"]["epoch"]) == (1234, 7)
    assert w.record == record


def test_port_config_is_the_authors_conventions(ported):
    _, w, _, _ = ported
    m = w.model_config()
    assert (m.theta_frame, m.theta_convention, m.align_corners) == ("canvas", "authors", True)
    assert m.canvas_size == 1024 and m.crop_size == 81 and m.rough_size == 128
    assert m.localizer.backbone == "resnet18" and m.mirrored_pass == "separate"
    assert m.rough.kernel_size == 5 and m.rough.head_kernel_size == 9
    assert m.rough.bn_running_var == "unbiased"
    assert w.config.data.center_convention == "authors"
    assert {s.seg_loss for s in w.config.stages.values()} == {"ce"}
    assert {s.part_reduction for s in w.config.stages.values()} == {"sum"}


# --------------------------------------------------------------------------- ours -> authors


@pytest.mark.parametrize("backbone", ["resnet18", "vgg9"])
def test_round_trip_jax_torch_jax_is_bit_identical(tmp_path, backbone):
    """Fresh variables (BN statistics randomised) -> .pth -> weights: every array equal
    bit for bit; the .pth loads strictly into the twins of the authors' classes."""
    config = small_authors_config(backbone)
    variables = random_variables(build.model_config(config))
    src = weights.save(tmp_path / "ours.stnw", variables, config)
    pth = port.export_weights(src, tmp_path / "ours.pth")
    container = torch.load(pth, weights_only=True)
    rough, localizer, parts = twins(backbone=backbone)
    rough.load_state_dict(container["model1"])
    parts.load_state_dict(container["model2"])
    localizer.load_state_dict(container["select_net"])
    back, _ = port.port_checkpoint(pth, tmp_path / "back.stnw", config=config)
    assert_trees_bitwise_equal(weights.load(back).variables, variables)


def test_exported_unused_entries_and_masked_rows():
    """Entries the authors' model never uses are written as documented (conv 0, BN
    identity) and the 12 masked fc rows are 0."""
    config = build.model_config(small_authors_config())
    variables = random_variables(config)
    container = port.to_container(variables, config)
    rough = container["model1"]
    assert np.all(rough["interlink_layers.0.iCNN_Nodelist.3.output_conv_node.weight"] == 0)
    assert rough["interlink_layers.2.iCNN_Nodelist.3.output_conv_node.weight"].shape == (32, 64, 5, 5)
    assert np.all(rough["last_conv3_bnm.running_var"] == 1)
    fc = container["select_net"]["fc.weight"]
    masked = [6 * k + i for k in range(6) for i in (1, 3)]
    assert np.all(fc[masked] == 0) and np.any(fc[[6 * k for k in range(6)]] != 0)


# --------------------------------------------------------------------------- errors


def test_every_problem_in_one_error(ported):
    container, _, _, tmp = ported
    bad = {k: dict(v) if k in ("model1", "model2") else v for k, v in container.items()}
    bad["model1"]["surprise.weight"] = torch.zeros(3)
    del bad["model1"]["last_conv3.bias"]
    bad["model2"]["model.3.last_conv3.weight"] = torch.zeros(4, 4, 5, 5)
    bad["scheduler"] = {}
    torch.save(bad, tmp / "bad.pth")
    with pytest.raises(port.PortError) as info:
        port.port_checkpoint(tmp / "bad.pth", tmp / "bad.stnw")
    message = str(info.value)
    assert message.startswith(str(tmp / "bad.pth") + ": ")
    for part in ("unknown container key 'scheduler'", "model1: 1 unknown key: 'surprise.weight'",
                 "model1: 1 missing key: 'last_conv3.bias'",
                 "model2: 1 wrong shape: 'model.3.last_conv3.weight' (4, 4, 5, 5), expected (4, 4, 9, 9)"):
        assert part in message
    assert message.count(";") == 3
    assert not (tmp / "bad.stnw").exists()


def test_partial_container_refused_unless_allowed(tmp_path):
    """A container without select_net (a stage-1 + stage-2 file): refused; with
    allow_partial the two networks are ported and the localiser is a fresh init."""
    config = small_authors_config("vgg9")
    rough, _, parts = twins(backbone="vgg9")
    torch.save({"model1": rough.state_dict(), "model2": parts.state_dict(), "epoch": 3},
               tmp_path / "stages.pth")
    with pytest.raises(port.PortError, match=r"holds only \['model1', 'model2'\], not "
                                             r"\['select_net'\].*--allow-partial"):
        port.port_checkpoint(tmp_path / "stages.pth", tmp_path / "x.stnw", config=config)
    assert not (tmp_path / "x.stnw").exists()
    path, record = port.port_checkpoint(tmp_path / "stages.pth", tmp_path / "partial.stnw",
                                        config=config, allow_partial=True, seed=5)
    w = weights.load(path)
    weights.check_variables(w)
    assert record["port"]["networks"] == {"rough": "model1", "parts": "model2"}
    assert record["port"]["initialised"] == {"localizer": "fresh initialisation, seed 5"}
    assert w.record["port"]["epoch"] == 3
    model_config = w.model_config()
    assert_trees_bitwise_equal(
        {k: w.variables[k]["parts"] for k in ("params", "batch_stats")},
        jax.tree.map(np.asarray, torch_parts_to_flax(parts.state_dict(), model_config.parts)))
    stats = w.variables["batch_stats"]["localizer"]["features"]["bn_0"]
    assert np.all(stats["mean"] == 0) and np.all(stats["var"] == 1)  # untrained
    np.testing.assert_array_equal(w.variables["params"]["localizer"]["fc"]["bias"],
                                  model_config.localizer.init_free())  # the configured init


class Gadget:  # an arbitrary object a pickle could smuggle in
    pass


def test_refuses_arbitrary_pickled_objects(tmp_path):
    torch.save({"model1": {}, "extra": Gadget()}, tmp_path / "evil.pth")
    with pytest.raises(port.PortError, match=r"evil.pth: holds a pickled object "
                                             r"\(\S*Gadget\).*weights_only=True"):
        port.load_container(tmp_path / "evil.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(port.PortError, match="junk.pth: not a readable PyTorch checkpoint"):
        port.load_container(tmp_path / "junk.pth")


def test_paper_preset_cannot_become_the_authors_layout():
    config = port.authors_config()
    config.model.icnn_preset = "paper"
    with pytest.raises(port.PortError, match="not the authors' FaceModel"):
        port.torch_layout(build.model_config(config))


# --------------------------------------------------------------------------- command line


def run_cli(capsys, *args):
    """``stn-icnn port-weights ARGS`` in this process: (return code, stdout, stderr)."""
    from stn_icnn_jax.cli.main import main

    code = main(["port-weights", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_both_ways_and_one_line_errors(ported, capsys):
    container, w, _, tmp = ported
    code, _, err = run_cli(capsys, "--from", str(tmp / "ported.stnw"), "--out", str(tmp / "cli.pth"),
                           "--to-torch")
    assert code == 0, err
    back = torch.load(tmp / "cli.pth", weights_only=True)
    for key, name in (("model1", "input_conv.0.weight"), ("model1", "last_con1_bnm.running_var"),
                      ("model2", "model.3.last_conv3.weight"), ("select_net", "layer4.1.bn2.running_mean"),
                      ("select_net", "conv1.weight")):
        assert torch.equal(back[key][name], container[key][name]), (key, name)
    code, stdout, err = run_cli(capsys, "--from", str(tmp / "cli.pth"), "--out", str(tmp / "cli.stnw"))
    assert code == 0, err
    assert "ported model1 -> rough" in stdout
    assert_trees_bitwise_equal(weights.load(tmp / "cli.stnw").variables, w.variables)
    # errors: one line `error: ...`, exit status 1 for a file that cannot be ported, 2
    # for a wrong command line
    torch.save({"model2": container["model2"]}, tmp / "part.pth")
    code, _, err = run_cli(capsys, "--from", str(tmp / "part.pth"), "--out", str(tmp / "part.stnw"))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {tmp / 'part.pth'}: holds only ") and "--allow-partial" in err
    code, _, err = run_cli(capsys, "--from", str(tmp / "missing.pth"), "--out", str(tmp / "x.stnw"))
    assert (code, err) == (1, f"error: {tmp / 'missing.pth'}: no such checkpoint file\n")
    code, _, err = run_cli(capsys, "--from", str(tmp / "ported.stnw"), "--out", str(tmp / "y.pth"),
                           "--to-torch", "--allow-partial")
    assert (code, err) == (2, "error: --to-torch takes the config from the weights file; "
                              "--config, overrides and --allow-partial do not apply\n")
    code, _, err = run_cli(capsys, "--from", str(tmp / "part.pth"), "--out", str(tmp / "x.stnw"),
                           "--config", str(tmp / "nope.py"))
    assert (code, err) == (2, f"error: config file {tmp / 'nope.py'} does not exist\n")
    code, _, err = run_cli(capsys, "--from", str(tmp / "part.pth"), "--out", str(tmp / "x.stnw"),
                           "--config.model.nope=1")
    assert (code, err) == (2, "error: --config.model.nope: no field 'nope' in the config (typo?)\n")
    assert not (tmp / "x.stnw").exists()


def test_cli_without_torch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if absent
    (tmp_path / "their.pth").write_bytes(b"not read")
    code, _, err = run_cli(capsys, "--from", str(tmp_path / "their.pth"), "--out",
                           str(tmp_path / "x.stnw"))
    assert (code, err) == (1, "error: stn-icnn port-weights needs torch: pip install "
                              "'stn-icnn-jax[torch]'\n")
