"""Port the authors' PyTorch checkpoints to weights files, and weights files back.

The authors' code (docs/authors-code.md, "Weight layout") saves a *checkpoint
container*: ``torch.save`` of a dict with

- ``model1``: the stage-1 ``FaceModel`` state dict (our ``rough`` network);
- ``model2``: the ``Stage2Model`` state dict, ``model.0..3`` = brow, eye, nose, mouth
  (our ``parts``, shared left/right models);
- ``select_net``: the localiser state dict, torchvision ResNet-18 names with a 9-channel
  ``conv1`` and a 36-way ``fc`` (our ``localizer`` with ``backbone="resnet18"``);
- optionally ``optimizer``, ``optimizer2``, ``optimizer_select``, ``step``, ``epoch``,
  ``best_error`` (bookkeeping: not ported; ``step``/``epoch``/``best_error`` are copied
  into the weights file's record).

A stage's own checkpoint holds a subset of the three networks.

:func:`port_checkpoint` reads a container with ``torch.load(..., weights_only=True)``
(no arbitrary unpickling), checks every network it holds against the layout the model
expects (every unknown key, missing key and wrong shape in one :class:`PortError`), and
writes a weights file (:mod:`stn_icnn_jax.weights`) with the variables, BatchNorm
statistics included, and a config. By default the config is the authors' conventions
(:func:`authors_config`: their layers, ResNet-18, canvas-frame theta with
align_corners=True on a 1024 canvas, their mouth centre, softmax CE, PyTorch's
running-variance update, mirrored patches in separate calls). A container that lacks
a network is refused unless ``allow_partial``: the missing networks then get a fresh
initialisation (:func:`fresh_networks`, seeded) and the record lists them under
``port.initialised`` (evaluating such a file scores an untrained network: the point is
to continue training, e.g. the end-to-end stage from a stage-1 + localiser checkpoint).

:func:`export_weights` goes back: a weights file -> a container the authors' code loads
(same key names and shapes as their layout, ``num_batches_tracked`` = 0). Entries their
model creates but never uses (docs/authors-code.md §1.3) are written as a fresh layer
would hold them after ``zero_``: conv weights and biases 0, BN weight 1, bias 0, running
mean 0, running variance 1. The 12 ``fc`` rows the authors multiply by 0 are written as
0. Round trip: weights -> container -> weights gives bit-identical variables.

The paper's VGG-9 localiser (``backbone="vgg9"``) is in no commit of the authors' code;
it is written in the layout of this project's own PyTorch statement of it
(``convs.{k}``, ``bns.{k}``, ``fc`` with the features flattened in (h, w, c) order).

torch is imported only inside :func:`load_container` and :func:`save_container`
(``pip install 'stn-icnn-jax[torch]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from stn_icnn_jax import weights as weights_lib
from stn_icnn_jax.model.icnn import ICNNConfig, SHARED_PART_MODELS, icnn_torch_name_map
from stn_icnn_jax.model.localizer import LocalizerConfig
from stn_icnn_jax.model.stn_icnn import STNiCNNConfig

__all__ = [
    "CONTAINER_NETWORKS",
    "BOOKKEEPING_KEYS",
    "PortError",
    "authors_config",
    "torch_layout",
    "from_container",
    "to_container",
    "load_container",
    "save_container",
    "port_checkpoint",
    "export_weights",
]

CONTAINER_NETWORKS: dict[str, str] = {"model1": "rough", "select_net": "localizer", "model2": "parts"}
"""Container key -> our network name."""
BOOKKEEPING_KEYS: tuple[str, ...] = ("optimizer", "optimizer2", "optimizer_select", "step",
                                     "epoch", "best_error")
"""Container keys that are not network weights (not ported)."""

_NETWORK_KEYS = {network: key for key, network in CONTAINER_NETWORKS.items()}
# index of (sx, sy, tx, ty) inside one part's flattened 2x3 theta (the authors' .view(-1, 6, 2, 3))
_THETA_FLAT_INDEX = (0, 4, 2, 5)


class PortError(ValueError):
    """A container or weights file that cannot be ported (the message names the file)."""


# --------------------------------------------------------------------------- config


def authors_config() -> ml_collections.ConfigDict:
    """The run configuration for the authors' released HELEN models."""
    from stn_icnn_jax.config import base_config
    from stn_icnn_jax.config.base import apply_authors_conventions

    c = apply_authors_conventions(base_config())
    c.data.name = "helen"
    return c


# --------------------------------------------------------------------------- layout tables
# A row (flax path inside the network, torch name, kind) says how one layer maps; kinds:
# "conv" (weight OIHW <-> kernel HWIO, bias if the flax layer has one), "bn" (weight,
# bias, running_mean, running_var, num_batches_tracked <-> scale, bias, mean, var),
# "dense" (weight (out, in) <-> kernel (in, out)), "theta_dense" (the authors' 36-way fc:
# rows 6k + (0, 4, 2, 5) <-> our 24 outputs (sx, sy, tx, ty) per part).


def _check_authors_icnn(cfg: ICNNConfig, network: str) -> None:
    same = dataclasses.replace(ICNNConfig.authors(cfg.num_labels), channels=cfg.channels,
                               num_interlink_layers=cfg.num_interlink_layers,
                               bn_running_var=cfg.bn_running_var, bn_momentum=cfg.bn_momentum,
                               torch_init=cfg.torch_init)
    if cfg != same:
        raise PortError(f"the {network} iCNN is not the authors' FaceModel (use icnn_preset "
                        f"'authors'; only channels and interlinking layers may differ)")
    if cfg.num_interlink_layers < 1:
        raise PortError(f"the {network} iCNN needs at least one interlinking layer for the "
                        "authors' layout")


def _icnn_rows(cfg: ICNNConfig, path: tuple[str, ...], prefix: str) -> list[tuple]:
    return [((*path, *fpath), prefix + tname, kind) for fpath, tname, kind in icnn_torch_name_map(cfg)]


def _icnn_unused(cfg: ICNNConfig, prefix: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """The torch entries the authors' FaceModel creates but never uses: name -> (shape, kind).

    Output-integration convs of every interlinking layer but the last, node S-1's of the
    last (input width 2 c_{S-1}: 64 for the authors' widths), and the BNs of head convs 2
    and 3 (docs/authors-code.md §1.3)."""
    c, k, L, S = cfg.channels, cfg.kernel_size, cfg.num_labels, cfg.num_scales
    widths = [c[i] + c[i + 1] for i in range(S - 1)] + [2 * c[-1]]
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for layer in range(cfg.num_interlink_layers):
        for i in range(S):
            if layer == cfg.num_interlink_layers - 1 and i < S - 1:
                continue
            name = f"{prefix}interlink_layers.{layer}.iCNN_Nodelist.{i}.output_conv_node"
            out[name] = ((c[i], widths[i], k, k), "conv")
            out[name + "_batchnorm"] = ((c[i],), "bn")
    out[f"{prefix}last_con2_bnm"] = ((L,), "bn")
    out[f"{prefix}last_conv3_bnm"] = ((L,), "bn")
    return out


def _localizer_rows(cfg: LocalizerConfig) -> list[tuple]:
    if cfg.backbone == "vgg9":
        rows = []
        for k in range(len(cfg.channels)):
            rows += [(("features", f"conv_{k}"), f"convs.{k}", "conv"),
                     (("features", f"bn_{k}"), f"bns.{k}", "bn")]
        return rows + [(("fc",), "fc", "dense")]
    if cfg.isotropic or cfg.fc_relu:
        raise PortError("the authors' ResNet-18 localiser has the anisotropic head without "
                        "ReLU (isotropic=False, fc_relu=False)")
    rows = [(("features", "conv1"), "conv1", "conv"), (("features", "bn1"), "bn1", "bn")]
    for layer in range(1, 5):
        for block in range(2):
            t, f = f"layer{layer}.{block}", ("features", f"layer{layer}_{block}")
            rows += [((*f, "conv1"), f"{t}.conv1", "conv"), ((*f, "bn1"), f"{t}.bn1", "bn"),
                     ((*f, "conv2"), f"{t}.conv2", "conv"), ((*f, "bn2"), f"{t}.bn2", "bn")]
            if layer > 1 and block == 0:
                rows += [((*f, "downsample_conv"), f"{t}.downsample.0", "conv"),
                         ((*f, "downsample_bn"), f"{t}.downsample.1", "bn")]
    return rows + [(("fc",), "fc", "theta_dense")]


def _rows(network: str, config: STNiCNNConfig) -> tuple[list[tuple], dict]:
    """(rows, unused torch entries) of one network."""
    if network == "rough":
        _check_authors_icnn(config.rough, "rough")
        return _icnn_rows(config.rough, (), ""), _icnn_unused(config.rough, "")
    if network == "parts":
        if not config.share_left_right:
            raise PortError("the authors' Stage2Model shares the left/right models "
                            "(share_left_right=True)")
        rows, unused = [], {}
        for k, name in enumerate(SHARED_PART_MODELS):
            cfg = dataclasses.replace(config.parts, num_labels=(2, 2, 2, 4)[k])
            _check_authors_icnn(cfg, f"{name} part")
            rows += _icnn_rows(cfg, (name,), f"model.{k}.")
            unused.update(_icnn_unused(cfg, f"model.{k}."))
        return rows, unused
    if network == "localizer":
        return _localizer_rows(config.localizer), {}
    raise ValueError(f"unknown network {network!r}")


@functools.lru_cache(maxsize=8)
def _template(config: STNiCNNConfig) -> dict:
    """Shapes of the model's variables (cached: tracing the full model takes seconds)."""
    from stn_icnn_jax.model import stn_icnn

    model = stn_icnn.STNiCNN(config)
    return jax.eval_shape(lambda: stn_icnn.init_variables(model, jax.random.key(0, impl="rbg")))


def _get(tree: Mapping, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _torch_entries(kind: str, params: Mapping, num_parts: int) -> dict[str, tuple[int, ...]]:
    """torch suffix -> shape of one layer, from the flax layer's params (shapes only)."""
    if kind == "conv":
        kh, kw, cin, cout = params["kernel"].shape
        out = {"weight": (cout, cin, kh, kw)}
        if "bias" in params:
            out["bias"] = (cout,)
        return out
    if kind == "bn":
        c = params["scale"].shape
        return {"weight": c, "bias": c, "running_mean": c, "running_var": c,
                "num_batches_tracked": ()}
    fan_in, n = params["kernel"].shape
    if kind == "theta_dense":
        n = 6 * num_parts
    return {"weight": (n, fan_in), "bias": (n,)}


_UNUSED_SUFFIXES = {"conv": ("weight", "bias"),
                    "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def torch_layout(config: STNiCNNConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """The container the authors' code saves for ``config``'s model: container key ->
    {torch name: shape}, every entry their model classes hold (unused ones included)."""
    tables = {key: _rows(network, config) for key, network in CONTAINER_NETWORKS.items()}
    template = _template(config)  # after the checks of _rows: tracing the model is slow
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, network in CONTAINER_NETWORKS.items():
        rows, unused = tables[key]
        layout: dict[str, tuple[int, ...]] = {}
        for fpath, tname, kind in rows:
            params = _get(template["params"][network], fpath)
            for suffix, shape in _torch_entries(kind, params, config.localizer.num_parts).items():
                layout[f"{tname}.{suffix}"] = shape
        for tname, (shape, kind) in unused.items():
            for suffix in _UNUSED_SUFFIXES[kind]:
                if suffix == "num_batches_tracked":
                    layout[f"{tname}.{suffix}"] = ()
                elif kind == "conv" and suffix == "bias":
                    layout[f"{tname}.{suffix}"] = (shape[0],)
                else:
                    layout[f"{tname}.{suffix}"] = shape
        out[key] = layout
    return out


# --------------------------------------------------------------------------- conversion


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor (torch is not imported here)
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _theta_rows(num_parts: int) -> np.ndarray:
    return np.asarray([6 * k + i for k in range(num_parts) for i in _THETA_FLAT_INDEX])


def container_problems(container: Any, config: STNiCNNConfig) -> tuple[list[str], list[str]]:
    """``(problems, networks present)``: every unknown, missing or mis-shaped entry."""
    if not isinstance(container, Mapping):
        return [f"not a checkpoint container (a dict with {sorted(CONTAINER_NETWORKS)}), "
                f"got {type(container).__name__}"], []
    problems = [f"unknown container key {k!r}" for k in container
                if k not in CONTAINER_NETWORKS and k not in BOOKKEEPING_KEYS]
    present = [k for k in CONTAINER_NETWORKS if k in container]
    if not present:
        problems.append(f"holds none of the networks {sorted(CONTAINER_NETWORKS)} "
                        f"(keys: {sorted(map(str, container))[:8]})")
    layout = torch_layout(config)
    for key in present:
        state = container[key]
        if not isinstance(state, Mapping):
            problems.append(f"{key}: not a state dict ({type(state).__name__})")
            continue
        want = layout[key]
        shapes = {k: tuple(np.shape(_numpy(v))) for k, v in state.items()}
        for what, items in (
                ("unknown key", [repr(k) for k in state if k not in want]),
                ("missing key", [repr(k) for k in want if k not in state]),
                ("wrong shape", [f"{k!r} {shapes[k]}, expected {shape}" for k, shape in want.items()
                                 if k in shapes and shapes[k] != shape])):
            if items:
                shown = ", ".join(items[:_SHOWN]) + (f", ... ({len(items) - _SHOWN} more)"
                                                     if len(items) > _SHOWN else "")
                problems.append(f"{key}: {len(items)} {what}{'s' if len(items) > 1 else ''}: {shown}")
    return problems, [CONTAINER_NETWORKS[k] for k in present]


_SHOWN = 8  # entries of each kind named in an error


def _network_from_torch(state: Mapping, network: str, config: STNiCNNConfig) -> dict:
    rows, _ = _rows(network, config)
    params: dict = {}
    stats: dict = {}
    num_parts = config.localizer.num_parts
    for fpath, tname, kind in rows:
        def get(suffix: str) -> np.ndarray:
            return _numpy(state[f"{tname}.{suffix}"]).astype(np.float32)

        if kind == "conv":
            _set(params, (*fpath, "kernel"), get("weight").transpose(2, 3, 1, 0))
            if f"{tname}.bias" in state:
                _set(params, (*fpath, "bias"), get("bias"))
        elif kind == "bn":
            _set(params, (*fpath, "scale"), get("weight"))
            _set(params, (*fpath, "bias"), get("bias"))
            _set(stats, (*fpath, "mean"), get("running_mean"))
            _set(stats, (*fpath, "var"), get("running_var"))
        else:
            weight, bias = get("weight"), get("bias")
            if kind == "theta_dense":
                rows_ = _theta_rows(num_parts)
                weight, bias = weight[rows_], bias[rows_]
            _set(params, (*fpath, "kernel"), weight.T)
            _set(params, (*fpath, "bias"), bias)
    return {"params": params, "batch_stats": stats}


def from_container(container: Any, config: STNiCNNConfig, fresh: dict | None = None,
                   allow_partial: bool = False, name: str = "checkpoint") -> tuple[dict, list[str]]:
    """The authors' container -> ``({"params", "batch_stats"}, missing networks)``.

    Raises :class:`PortError` listing every problem at once; a network the container
    lacks raises too unless ``allow_partial``, in which case it is taken from ``fresh``
    (complete variables of the model, e.g. a fresh initialisation)."""
    problems, present = container_problems(container, config)
    if problems:
        raise PortError(f"{name}: " + "; ".join(problems))
    missing = [n for n in CONTAINER_NETWORKS.values() if n not in present]
    if missing and not allow_partial:
        raise PortError(f"{name}: holds only {[_NETWORK_KEYS[n] for n in present]}, not "
                        f"{[_NETWORK_KEYS[n] for n in missing]} (--allow-partial ports it "
                        "and leaves the missing networks freshly initialised)")
    variables: dict = {"params": {}, "batch_stats": {}}
    for network in CONTAINER_NETWORKS.values():
        if network in present:
            v = _network_from_torch(container[_NETWORK_KEYS[network]], network, config)
        else:
            if fresh is None:
                raise ValueError(f"network {network} is missing and no fresh variables were given")
            v = {k: jax.tree.map(np.asarray, fresh[k][network]) for k in ("params", "batch_stats")}
        variables["params"][network] = v["params"]
        variables["batch_stats"][network] = v["batch_stats"]
    return variables, missing


def _check_tree(variables: dict, config: STNiCNNConfig, name: Any) -> None:
    """The converted variables have exactly the model's arrays (a converter bug guard)."""
    template = _template(config)
    want = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(
        {k: template[k] for k in ("params", "batch_stats")})}
    have = {jax.tree_util.keystr(p): tuple(np.shape(x))
            for p, x in jax.tree_util.tree_leaves_with_path(variables)}
    if want != have:
        bad = sorted(set(want) ^ set(have)) + sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise PortError(f"{name}: the converted variables do not fit the model: {bad[:_SHOWN]}")


def _network_to_torch(variables: dict, network: str, config: STNiCNNConfig) -> dict[str, np.ndarray]:
    rows, unused = _rows(network, config)
    params, stats = variables["params"][network], variables["batch_stats"][network]
    out: dict[str, np.ndarray] = {}
    num_parts = config.localizer.num_parts
    for fpath, tname, kind in rows:
        p = _get(params, fpath)
        if kind == "conv":
            out[f"{tname}.weight"] = np.asarray(p["kernel"]).transpose(3, 2, 0, 1)
            if "bias" in p:
                out[f"{tname}.bias"] = np.asarray(p["bias"])
        elif kind == "bn":
            s = _get(stats, fpath)
            out[f"{tname}.weight"] = np.asarray(p["scale"])
            out[f"{tname}.bias"] = np.asarray(p["bias"])
            out[f"{tname}.running_mean"] = np.asarray(s["mean"])
            out[f"{tname}.running_var"] = np.asarray(s["var"])
            out[f"{tname}.num_batches_tracked"] = np.zeros((), np.int64)
        else:
            weight, bias = np.asarray(p["kernel"]).T, np.asarray(p["bias"])
            if kind == "theta_dense":
                rows_ = _theta_rows(num_parts)
                full_w = np.zeros((6 * num_parts, weight.shape[1]), weight.dtype)
                full_b = np.zeros((6 * num_parts,), bias.dtype)
                full_w[rows_], full_b[rows_] = weight, bias
                weight, bias = full_w, full_b
            out[f"{tname}.weight"], out[f"{tname}.bias"] = weight, bias
    for tname, (shape, kind) in unused.items():
        c = shape[0]
        if kind == "conv":
            out[f"{tname}.weight"] = np.zeros(shape, np.float32)
            out[f"{tname}.bias"] = np.zeros((c,), np.float32)
        else:
            out[f"{tname}.weight"] = np.ones((c,), np.float32)
            out[f"{tname}.bias"] = np.zeros((c,), np.float32)
            out[f"{tname}.running_mean"] = np.zeros((c,), np.float32)
            out[f"{tname}.running_var"] = np.ones((c,), np.float32)
            out[f"{tname}.num_batches_tracked"] = np.zeros((), np.int64)
    return {k: np.array(v, order="C") for k, v in out.items()}  # copies: writable, 0-d kept


def to_container(variables: dict, config: STNiCNNConfig,
                 networks: tuple[str, ...] = tuple(CONTAINER_NETWORKS.values())) -> dict:
    """Our variables -> the authors' container ({key: {torch name: numpy array}})."""
    return {_NETWORK_KEYS[n]: _network_to_torch(variables, n, config) for n in networks}


# --------------------------------------------------------------------------- files


def load_container(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers
    only, never arbitrary pickled objects."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise PortError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:  # an object that only full unpickling could build: refused
            raise PortError(f"{path}: holds a pickled object ({found.group(1)}) that "
                            "torch.load(weights_only=True) refuses to build; a checkpoint "
                            "container holds only tensors, numbers and dicts") from None
        raise PortError(f"{path}: not a readable PyTorch checkpoint (UnpicklingError)") from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise PortError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def save_container(container: dict, path: str | Path) -> Path:
    """``torch.save`` of the container with numpy arrays turned into tensors."""
    import torch

    def tensors(tree):
        if isinstance(tree, Mapping):
            return {k: tensors(v) for k, v in tree.items()}
        if isinstance(tree, np.ndarray):
            return torch.from_numpy(np.array(tree, order="C"))
        return tree

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(tensors(container), tmp)
    tmp.replace(path)
    return path


def _scalar(value: Any) -> Any:
    value = _numpy(value) if hasattr(value, "detach") else value
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return None


def fresh_networks(config: STNiCNNConfig, networks: list[str], seed: int) -> dict:
    """A fresh initialisation of only ``networks`` (``{"params", "batch_stats"}``)."""
    import jax.numpy as jnp

    from stn_icnn_jax.model import stn_icnn

    model = stn_icnn.STNiCNN(config)
    key = jax.random.key(seed, impl="rbg")
    r, c = config.rough_size, config.crop_size
    calls = {"rough": (stn_icnn.STNiCNN.rough_logits, jnp.zeros((1, r, r, 3))),
             "localizer": (stn_icnn.STNiCNN.localize, jnp.zeros((1, r, r, 9))),
             "parts": (stn_icnn.STNiCNN.part_logits, jnp.zeros((1, 6, c, c, 3)))}
    out: dict = {"params": {}, "batch_stats": {}}
    for network in networks:
        method, x = calls[network]
        v = model.init(jax.random.fold_in(key, list(calls).index(network)), x, False, method=method)
        for k in out:
            out[k][network] = jax.tree.map(np.asarray, v[k][network])
    return out


def port_checkpoint(src: str | Path, out: str | Path,
                    config: ml_collections.ConfigDict | None = None,
                    allow_partial: bool = False, seed: int = 0) -> tuple[Path, dict]:
    """The authors' checkpoint ``src`` -> weights file ``out``; returns (path, record).

    ``config``: the run configuration the weights belong to (default
    :func:`authors_config`); its model must be the authors' (else :class:`PortError`).
    ``allow_partial``: port a container without some networks; those are initialised
    from ``seed`` (:func:`fresh_networks`) and listed in the record."""
    from stn_icnn_jax.config import build

    src = Path(src)
    config = config or authors_config()
    model_config = build.model_config(config)
    container = load_container(src)
    fresh = None
    if allow_partial and isinstance(container, Mapping):
        missing = [n for k, n in CONTAINER_NETWORKS.items() if k not in container]
        fresh = fresh_networks(model_config, missing, seed) if missing else None
    variables, missing = from_container(container, model_config, fresh, allow_partial, str(src))
    record = {"port": {
        "source": str(src),
        "from": "the authors' PyTorch checkpoint container",
        "networks": {n: _NETWORK_KEYS[n] for n in CONTAINER_NETWORKS.values() if n not in missing},
        "initialised": {n: f"fresh initialisation, seed {seed}" for n in missing},
        "not_ported": sorted(k for k in container if k in BOOKKEEPING_KEYS),
    }}
    for key in ("step", "epoch", "best_error"):
        if key in container and _scalar(container[key]) is not None:
            record["port"][key] = _scalar(container[key])
    _check_tree(variables, model_config, src)
    return weights_lib.save(out, variables, config, record), record


def export_weights(weights_path: str | Path, out: str | Path) -> Path:
    """A weights file -> the authors' container at ``out`` (``.pth``)."""
    weights = weights_lib.load(weights_path)
    try:
        _check_tree(weights.variables, weights.model_config(), weights_path)
        container = to_container(weights.variables, weights.model_config())
    except PortError as e:
        raise PortError(f"{weights_path}: {e}") from None
    return save_container(container, out)


def describe(record: dict) -> str:
    """One line about a port (for the command line)."""
    port = record["port"]
    text = "ported " + ", ".join(f"{key} -> {n}" for n, key in port["networks"].items())
    if port["initialised"]:
        text += "; freshly initialised (missing): " + ", ".join(port["initialised"])
    return text + (f"; not ported: {', '.join(port['not_ported'])}" if port["not_ported"] else "")

