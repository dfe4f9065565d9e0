"""The STN localisation net L (paper sec. 2.3, Fig. 3) and the theta parametrisation.

Input: the stage-1 rough prediction, softmax probabilities (N, H, W, 9) (128x128 in the
pipeline). Output: theta (N, 6, 2, 3), one affine matrix per part in
:data:`stn_icnn_jax.taxonomy.PART_NAMES` order, constrained as the paper's eq. 15::

    theta_k = [[sx, 0, tx],
               [0, sy, ty]]      (scale + translation only; off-diagonals exactly 0)

theta maps normalised *output-grid* coordinates to normalised *source* coordinates
(``affine_grid`` convention), so (tx, ty) is the patch centre and (sx, sy) its half-size
in the source frame's [-1, 1] units. Which frame (the 1024 canvas as in the authors'
code, or the image) and which align_corners convention are the sampler's and trainer's
business; this module only predicts the 4 numbers per part.

Backbones (``LocalizerConfig.backbone``)
----------------------------------------
``"vgg9"`` (default, the paper's Fig. 3): 8 x [conv3x3/s1/p1 + BN + ReLU] with an
average pooling k3/s2 after every two convs, then ONE dense layer. Choices the paper
leaves open, documented here:

- channel widths: ``channels`` = (32, 32, 64, 64, 128, 128, 256, 256) by default (VGG's
  doubling pattern at a quarter of VGG16's widths; the input has only 9 channels).
- pooling padding 1, ``count_include_pad=False`` (border windows average only the
  valid pixels): n -> ceil(n/2), so 128 -> 64 -> 32 -> 16 -> 8; the dense layer sees
  8*8*256 = 16384 features (flattened, VGG-style; hence the input size is fixed by
  ``input_size``).
- the dense layer outputs the free numbers directly. The paper puts a ReLU on it, but
  a ReLU on theta would forbid negative translations (parts left of / above the centre)
  and negative-slope gradients; ``fc_relu=True`` restores the literal reading.

``"resnet18"`` (what the authors' released model uses, notes sec. 2.1): torchvision's
ResNet-18 with a 9-channel 7x7/s2/p3 conv1 without bias, BasicBlocks [2, 2, 2, 2],
global average pooling and a dense 512 -> 6*4 (the authors' dense has 36 outputs of
which 12 are multiplied by 0; only the 24 used ones are created here). Any input size
>= 32. :func:`torch_resnet18_to_flax` ports the authors' ``select_net`` weights.

Head initialisation
-------------------
The dense kernel is zero (``head_init_scale`` = 0) and its bias holds ``init_params``,
so the untrained net predicts the configured mean part boxes for every input (the
trainer should put the dataset's mean theta there). Consequence: at initialisation the
gradient w.r.t. the input and the conv weights is zero; only the dense layer moves on
the first step, then everything trains (like zero-initialised residual branches).

Coordinate channels (``coord_channels``)
----------------------------------------
Off by default (the paper's L sees the 9 probabilities only). On, two channels holding
each pixel's normalised x and y in [-1, 1] (``linspace(-1, 1, side)``: the first and last
pixel centres at -1 and 1) are appended to the input before the first conv ("CoordConv",
Liu et al. 2018): a convolutional net regresses positions poorly from translation-
equivariant features alone, and L's job is regressing part positions. Not in the paper or
the authors' code; measured in experiments/results/parts_crop_jitter/.

Isotropic switch
----------------
The paper's text says "isotropic scaling by varying s" while eq. 15 has sx and sy. With
``isotropic=False`` (default, eq. 15 and the authors' code) the net predicts
(sx, sy, tx, ty) per part; with ``isotropic=True`` it predicts (s, tx, ty) and
sx = sy = s (the init bias uses the mean of the configured sx, sy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from stn_icnn_jax.model.batchnorm import BatchNorm, check_running_var
from stn_icnn_jax.model.conv import Conv, check_impl
from stn_icnn_jax.model.pooling import max_pool_3x3_s2
from stn_icnn_jax.taxonomy import NUM_CLASSES

__all__ = [
    "DEFAULT_INIT_PARAMS",
    "LocalizerConfig",
    "Localizer",
    "theta_from_params",
    "with_coordinates",
    "params_from_theta",
    "torch_resnet18_to_flax",
]

DEFAULT_INIT_PARAMS: tuple[tuple[float, float, float, float], ...] = (
    # (sx,   sy,   tx,    ty)    part
    (0.25, 0.25, -0.35, -0.35),  # brow_L  (left of the image centre)
    (0.25, 0.25, 0.35, -0.35),   # brow_R
    (0.20, 0.20, -0.35, -0.12),  # eye_L
    (0.20, 0.20, 0.35, -0.12),   # eye_R
    (0.25, 0.25, 0.0, 0.15),     # nose
    (0.35, 0.35, 0.0, 0.50),     # mouth
)
"""Rough boxes for a frontal face filling the whole [-1, 1]^2 frame (image-left = the
``_L`` parts): centres at typical facial-landmark positions, half-sizes a bit larger
than the part. A placeholder: the trainer should replace it with the dataset mean
(e.g. in the authors' 1024-canvas convention sx = sy = 80/1023 ~= 0.078)."""


def theta_from_params(params: Float[Array, "... 6 4"]) -> Float[Array, "... 6 2 3"]:
    """(..., P, 4) = (sx, sy, tx, ty) -> (..., P, 2, 3) = [[sx, 0, tx], [0, sy, ty]]."""
    params = jnp.asarray(params)
    if params.ndim < 1 or params.shape[-1] != 4:
        raise ValueError(f"theta_from_params: expected (..., 4) = (sx, sy, tx, ty), got {params.shape}")
    sx, sy, tx, ty = (params[..., k] for k in range(4))
    zero = jnp.zeros_like(sx)
    row0 = jnp.stack([sx, zero, tx], axis=-1)
    row1 = jnp.stack([zero, sy, ty], axis=-1)
    return jnp.stack([row0, row1], axis=-2)


def params_from_theta(theta: Float[Array, "... 2 3"]) -> Float[Array, "... 4"]:
    """Inverse of :func:`theta_from_params` (off-diagonal entries are ignored)."""
    theta = jnp.asarray(theta)
    if theta.shape[-2:] != (2, 3):
        raise ValueError(f"params_from_theta: expected (..., 2, 3), got {theta.shape}")
    return jnp.stack([theta[..., 0, 0], theta[..., 1, 1], theta[..., 0, 2], theta[..., 1, 2]], axis=-1)


@dataclasses.dataclass(frozen=True)
class LocalizerConfig:
    """Hyper-parameters of the localisation net (hashable; a flax module field).

    Attributes:
      backbone: "vgg9" (paper Fig. 3) or "resnet18" (authors' released model).
      in_channels: channels of the rough prediction (9 classes).
      input_size: H = W the vgg9 backbone expects (its dense layer flattens).
      channels: widths of the 8 vgg9 convs (pooling after every two).
      pool_window, pool_stride, pool_padding: vgg9 average pooling (3, 2, 1).
      num_parts: parts predicted (6).
      isotropic: tie sx = sy (3 free numbers per part instead of 4).
      fc_relu: ReLU on the dense output (the paper's literal Fig. 3; off by default).
      init_params: (num_parts, 4) (sx, sy, tx, ty) the untrained net outputs.
      head_init_scale: std of the dense kernel's normal init (0 = zeros).
      bn_epsilon, bn_momentum: flax BatchNorm settings.
      bn_running_var: "biased" (flax) or "unbiased" (PyTorch) running-variance update.
      conv: how XLA computes the VGG-9's 3x3 convolutions ("auto" | "xla" |
        "channel_tuned", ``model/conv.py``; the ResNet-18's strided convs are flax's).
      coord_channels: append x and y coordinate channels to the input (see above).
    """

    backbone: str = "vgg9"
    in_channels: int = NUM_CLASSES
    input_size: int = 128
    channels: tuple[int, ...] = (32, 32, 64, 64, 128, 128, 256, 256)
    pool_window: int = 3
    pool_stride: int = 2
    pool_padding: int = 1
    num_parts: int = 6
    isotropic: bool = False
    fc_relu: bool = False
    init_params: tuple[tuple[float, ...], ...] = DEFAULT_INIT_PARAMS
    head_init_scale: float = 0.0
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    bn_running_var: str = "biased"
    conv: str = "auto"
    coord_channels: bool = False

    def __post_init__(self):
        check_running_var(self.bn_running_var)
        check_impl(self.conv)
        if self.backbone not in ("vgg9", "resnet18"):
            raise ValueError(f"backbone must be 'vgg9' or 'resnet18', got {self.backbone!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) == 0 or len(self.channels) % 2:
            raise ValueError(f"channels needs an even number of conv widths, got {self.channels}")
        init = np.asarray(self.init_params, dtype=np.float64)
        if init.shape != (self.num_parts, 4):
            raise ValueError(f"init_params must have shape ({self.num_parts}, 4) = (sx, sy, tx, ty) "
                             f"per part, got {init.shape}")
        object.__setattr__(self, "init_params", tuple(tuple(float(v) for v in row) for row in init))

    @property
    def num_free(self) -> int:
        """Free numbers per part: 3 (s, tx, ty) if isotropic else 4 (sx, sy, tx, ty)."""
        return 3 if self.isotropic else 4

    def init_free(self) -> np.ndarray:
        """The dense bias at init, (num_parts * num_free,)."""
        p = np.asarray(self.init_params, dtype=np.float32)
        if self.isotropic:
            p = np.stack([(p[:, 0] + p[:, 1]) / 2, p[:, 2], p[:, 3]], axis=-1)
        return p.reshape(-1)

    def feature_size(self) -> int:
        """vgg9: side length after the poolings, e.g. 128 -> 8."""
        s = self.input_size
        for _ in range(len(self.channels) // 2):
            s = (s + 2 * self.pool_padding - self.pool_window) // self.pool_stride + 1
        return s


def _free_to_params(free: jax.Array, isotropic: bool) -> jax.Array:
    if isotropic:
        s, tx, ty = free[..., 0], free[..., 1], free[..., 2]
        return jnp.stack([s, s, tx, ty], axis=-1)
    return free


_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # torchvision's kaiming


def _bn(cfg: LocalizerConfig, train: bool, name: str) -> BatchNorm:
    return BatchNorm(use_running_average=not train, momentum=cfg.bn_momentum,
                     epsilon=cfg.bn_epsilon, running_var=cfg.bn_running_var, name=name)


def with_coordinates(x: Float[Array, "n h w c"]) -> Float[Array, "n h w c+2"]:
    """Appends each pixel's normalised x then y, ``linspace(-1, 1, side)``, as channels."""
    n, h, w, _ = x.shape
    ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h, dtype=x.dtype),
                          jnp.linspace(-1.0, 1.0, w, dtype=x.dtype), indexing="ij")
    coords = jnp.broadcast_to(jnp.stack([xs, ys], axis=-1), (n, h, w, 2))
    return jnp.concatenate([x, coords], axis=-1)


class _VGG9Features(nn.Module):
    config: LocalizerConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        cfg = self.config
        p = cfg.pool_padding
        for k, c in enumerate(cfg.channels):
            x = Conv(c, 3, impl=cfg.conv, kernel_init=_conv_init, name=f"conv_{k}")(x)
            x = nn.relu(_bn(cfg, train, f"bn_{k}")(x))
            if k % 2 == 1:
                x = nn.avg_pool(x, (cfg.pool_window, cfg.pool_window),
                                strides=(cfg.pool_stride, cfg.pool_stride),
                                padding=((p, p), (p, p)), count_include_pad=False)
        return x.reshape(x.shape[0], -1)


class _BasicBlock(nn.Module):
    config: LocalizerConfig
    features: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        cfg, s = self.config, self.stride
        h = nn.Conv(self.features, (3, 3), (s, s), padding=((1, 1), (1, 1)), use_bias=False,
                    kernel_init=_conv_init, name="conv1")(x)
        h = nn.relu(_bn(cfg, train, "bn1")(h))
        h = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                    kernel_init=_conv_init, name="conv2")(h)
        h = _bn(cfg, train, "bn2")(h)
        if s != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), (s, s), padding="VALID", use_bias=False,
                        kernel_init=_conv_init, name="downsample_conv")(x)
            x = _bn(cfg, train, "downsample_bn")(x)
        return nn.relu(h + x)


class _ResNet18Features(nn.Module):
    """torchvision resnet18 body; flax names: conv1, bn1, layer{1-4}_{0,1}/{conv1,bn1,
    conv2,bn2,downsample_conv,downsample_bn} (torch: layerX.Y.*, downsample.0/1)."""

    config: LocalizerConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        cfg = self.config
        x = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False,
                    kernel_init=_conv_init, name="conv1")(x)
        x = nn.relu(_bn(cfg, train, "bn1")(x))
        x = max_pool_3x3_s2(x)
        for layer, (feat, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            x = _BasicBlock(cfg, feat, stride, name=f"layer{layer}_0")(x, train)
            x = _BasicBlock(cfg, feat, 1, name=f"layer{layer}_1")(x, train)
        return jnp.mean(x, axis=(1, 2))


class Localizer(nn.Module):
    """Rough prediction (N, H, W, 9) -> theta (N, num_parts, 2, 3) (eq. 15 form).

    Param tree: ``features/...`` (backbone) and ``fc/{kernel, bias}`` (the dense head,
    kernel (F, num_parts*num_free), bias = ``config.init_free()`` at init).
    ``return_params=True`` also returns the (N, num_parts, 4) (sx, sy, tx, ty).
    """

    config: LocalizerConfig = LocalizerConfig()

    @nn.compact
    def __call__(self, x: Float[Array, "n h w 9"], train: bool,
                 return_params: bool = False) -> Any:
        cfg = self.config
        if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
            raise ValueError(f"Localizer input: expected (N, H, W, {cfg.in_channels}) NHWC "
                             f"probabilities, got shape {x.shape}")
        if cfg.backbone == "vgg9":
            if x.shape[1:3] != (cfg.input_size, cfg.input_size):
                raise ValueError(f"Localizer (vgg9) input: expected H = W = input_size = "
                                 f"{cfg.input_size}, got {x.shape[1:3]} (set LocalizerConfig.input_size)")
        elif min(x.shape[1:3]) < 32:
            raise ValueError(f"Localizer (resnet18) input: H and W must be >= 32, got {x.shape[1:3]}")
        backbone = _VGG9Features if cfg.backbone == "vgg9" else _ResNet18Features
        feats = backbone(cfg, name="features")(with_coordinates(x) if cfg.coord_channels else x, train)

        n_out = cfg.num_parts * cfg.num_free
        bias = jnp.asarray(cfg.init_free())
        kernel_init = (nn.initializers.zeros if cfg.head_init_scale == 0
                       else nn.initializers.normal(cfg.head_init_scale))
        free = nn.Dense(n_out, kernel_init=kernel_init,
                        bias_init=lambda *_: bias, name="fc")(feats)
        if cfg.fc_relu:
            free = nn.relu(free)
        free = free.reshape(x.shape[0], cfg.num_parts, cfg.num_free)
        params = _free_to_params(free, cfg.isotropic)
        theta = theta_from_params(params)
        chex.assert_shape(theta, (x.shape[0], cfg.num_parts, 2, 3))
        return (theta, params) if return_params else theta



# --------------------------------------------------------------------------- torch port

# index of (sx, sy, tx, ty) inside one part's flattened 2x3 theta (torch .view(-1, 6, 2, 3))
_THETA_FLAT_INDEX = (0, 4, 2, 5)


def torch_resnet18_to_flax(state_dict: Mapping[str, Any],
                           config: LocalizerConfig | None = None) -> dict[str, dict]:
    """Convert the authors' ``SelectNet_resnet`` state dict (torchvision resnet18 names;
    ``conv1.weight`` (64, 9, 7, 7), ``fc.weight`` (36, 512)) to flax variables of
    ``Localizer(config)`` with ``backbone="resnet18"``.

    Mapping: ``conv1``/``bn1`` -> ``features/conv1``/``features/bn1``;
    ``layer{L}.{B}.{conv1,bn1,conv2,bn2}`` -> ``features/layer{L}_{B}/...``;
    ``layer{L}.0.downsample.{0,1}`` -> ``features/layer{L}_0/downsample_{conv,bn}``;
    ``fc`` rows ``6k + (0, 4, 2, 5)`` (sx, sy, tx, ty of part k; the 12 masked rows are
    dropped) -> ``fc`` (kernel transposed). Only the anisotropic head can be ported.
    """
    config = config or LocalizerConfig(backbone="resnet18")
    if config.backbone != "resnet18" or config.isotropic or config.fc_relu or config.coord_channels:
        raise ValueError("torch_resnet18_to_flax needs backbone='resnet18', isotropic=False, "
                         "fc_relu=False, coord_channels=False")

    def get(key: str) -> np.ndarray:
        if key not in state_dict:
            raise ValueError(f"torch state dict is missing {key!r}")
        t = state_dict[key]
        if hasattr(t, "detach"):
            t = t.detach().cpu().numpy()
        return np.asarray(t, dtype=np.float32)

    params: dict = {}
    stats: dict = {}

    def conv(torch_name: str, path: tuple[str, ...]) -> None:
        _nested(params, path)["kernel"] = jnp.asarray(get(f"{torch_name}.weight").transpose(2, 3, 1, 0))

    def bn(torch_name: str, path: tuple[str, ...]) -> None:
        p, s = _nested(params, path), _nested(stats, path)
        p["scale"], p["bias"] = jnp.asarray(get(f"{torch_name}.weight")), jnp.asarray(get(f"{torch_name}.bias"))
        s["mean"] = jnp.asarray(get(f"{torch_name}.running_mean"))
        s["var"] = jnp.asarray(get(f"{torch_name}.running_var"))

    conv("conv1", ("features", "conv1"))
    bn("bn1", ("features", "bn1"))
    for layer in range(1, 5):
        for block in range(2):
            t, f = f"layer{layer}.{block}", ("features", f"layer{layer}_{block}")
            conv(f"{t}.conv1", (*f, "conv1"))
            bn(f"{t}.bn1", (*f, "bn1"))
            conv(f"{t}.conv2", (*f, "conv2"))
            bn(f"{t}.bn2", (*f, "bn2"))
            if f"{t}.downsample.0.weight" in state_dict:
                conv(f"{t}.downsample.0", (*f, "downsample_conv"))
                bn(f"{t}.downsample.1", (*f, "downsample_bn"))
    w, b = get("fc.weight"), get("fc.bias")
    if w.shape[0] != 6 * config.num_parts:
        raise ValueError(f"fc.weight must have {6 * config.num_parts} rows (num_parts x 2 x 3), "
                         f"got {w.shape}")
    rows = np.asarray([6 * k + i for k in range(config.num_parts) for i in _THETA_FLAT_INDEX])
    params["fc"] = {"kernel": jnp.asarray(w[rows].T), "bias": jnp.asarray(b[rows])}

    variables = {"params": params, "batch_stats": stats}
    template = jax.eval_shape(lambda: Localizer(config).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, config.in_channels)), train=False))
    want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(template)}
    got = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(variables)}
    if want != got:
        raise ValueError("converted torch weights do not fit Localizer(config): "
                         f"missing {sorted(set(want) - set(got))[:5]}, "
                         f"unexpected {sorted(set(got) - set(want))[:5]}, mismatched "
                         f"{[(k, got[k], want[k]) for k in sorted(set(want) & set(got)) if want[k] != got[k]][:5]}")
    return variables


def _nested(tree: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        tree = tree.setdefault(key, {})
    return tree
