"""The interlinked CNN (iCNN) of Zhou et al., as used by STN-iCNN (Yin et al., sec. 2.2).

One module, :class:`ICNN`, serves both stages: stage 1 (whole face, 9 labels, 128x128)
and stage 2 (one facial part, 2 or 4 labels, 81x81). :class:`PartModels` bundles the
stage-2 part models. All arrays are NHWC; ``init``/``apply`` are pure.

Architecture (S scales, channels ``c_0..c_{S-1}``, scale 0 = full resolution)::

    x_0 = image;  x_i = maxpool3/2/1(x_{i-1})                  image pyramid
    f_i = act_in(BN(conv(x_i)))                                 input convs, 3 -> c_i
    repeat num_interlink_layers times (all nodes from the previous layer's f):
      f_i <- act_il(BN(conv(act_il(BN(conv(cat[down(f_{i-1}), f_i, up(f_{i+1})]))))))
    g_{S-1} = f_{S-1};  g_i = act_out(BN(conv(cat[f_i, up(g_{i+1})])))   i = S-2..0
    logits = conv_k9(conv(act_head(BN(conv(g_0)))))             head: c_0 -> 2L+8 -> L -> L

``down`` = max-pool 3x3/s2/pad 1 (padding is -inf); ``up`` = nearest neighbour to the
target size, implemented as "repeat every pixel 2x, then crop", which equals PyTorch's
``F.interpolate(mode='nearest', size=...)`` for the ceil(n/2) pyramid sizes used here.
Sizes: 128 -> 64/32/16, 81 -> 41/21/11; any input with H, W >= 2**(S-1) works.

Presets
-------
``ICNNConfig.authors(L)``: exactly the layers the authors' PyTorch code *uses*
(reference notes sec. 1): 5x5 convs, 9x9 last conv, tanh after the input, output
integration and first head conv, ReLU inside the interlinking nodes, conv biases
everywhere, BN eps 1e-5 / momentum 0.9 (= torch momentum 0.1), no BN/activation after the
last two head convs, PyTorch's default conv initialisation. The 263,012 parameters their
model creates but never uses (output convs of the non-last layers, node 3's output conv,
two head BNs) are not created. Used parameters: 559,931 (L=9), 545,588 (L=2),
548,376 (L=4).

``ICNNConfig.paper(L)``: the paper's Fig. 2 reading: 3x3 convs everywhere (head
included), BN + ReLU after every conv except the logit conv, flax default init.

Porting the authors' weights
----------------------------
The flax module/parameter names mirror the torch state-dict names
(docs/authors-code.md, "Weight layout"), so the mapping is mechanical::

  flax path (``params`` / ``batch_stats``)       torch state-dict name
  ``input_conv_{i}``                          ``input_conv.{i}``
  ``input_bnm_{i}``                           ``input_bnm.{i}``
  ``interlink_layers_{l}/node_{i}/{sub}``     ``interlink_layers.{l}.iCNN_Nodelist.{i}.{sub}``
      with {sub} in ``inter_conv_node``, ``inter_conv_node_batchnorm``, ``conv_node``,
      ``conv_node_batchnorm``
  ``output_integration/node_{i}/{sub}``       ``interlink_layers.{last}.iCNN_Nodelist.{i}.{sub}``
      with {sub} in ``output_conv_node``, ``output_conv_node_batchnorm``; i < S-1
  ``last_conv1``, ``last_con1_bnm``,          same names
  ``last_conv2``, ``last_conv3``

Conv ``kernel`` (HWIO) = torch ``weight`` (OIHW) transposed with ``(2, 3, 1, 0)``; BN
``scale`` = ``weight``; ``batch_stats`` ``mean``/``var`` = ``running_mean``/``running_var``.
Unused torch entries (``interlink_layers.{0,1}.*.output_conv_node*``, node 3's output
conv, ``last_con2_bnm``, ``last_conv3_bnm``, ``num_batches_tracked``) are dropped.
Stage 2 (torch ``Stage2Model``): ``model.0`` = brow, ``model.1`` = eye, ``model.2`` =
nose, ``model.3`` = mouth, i.e. the flax sub-modules of :class:`PartModels` with
``share_left_right=True``. :func:`torch_icnn_to_flax` and :func:`torch_parts_to_flax`
implement this.

Training mode: torch updates ``running_var`` with the unbiased batch variance
(n/(n-1)), flax with the biased one; ``bn_running_var="unbiased"`` does what torch does
(normalisation itself and eval mode are identical either way).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
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
from stn_icnn_jax.taxonomy import PART_NAMES, PART_NUM_LABELS

__all__ = [
    "ICNNConfig",
    "ICNN",
    "PartModels",
    "PART_NAMES",
    "PART_NUM_LABELS",
    "SHARED_PART_MODELS",
    "MIRRORED_PASSES",
    "count_params",
    "max_pool_down",
    "nearest_up",
    "icnn_torch_name_map",
    "torch_icnn_to_flax",
    "torch_parts_to_flax",
]

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "identity": lambda x: x,
}


# --------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class ICNNConfig:
    """Hyper-parameters of one iCNN (hashable, so usable as a flax module field).

    Attributes:
      num_labels: L, output channels (logits).
      channels: channels per scale, finest first; ``len(channels)`` = number of scales.
      num_interlink_layers: interlinking layers (each: one concat conv + one conv per node).
      kernel_size: kernel of every conv except the last head conv (odd; "same" padding).
      head_kernel_size: kernel of the last head conv (odd).
      head_hidden_channels: width of the first head conv; ``None`` = 2*L + 8 (authors).
      input_activation: after the input convs ("tanh" | "relu" | "identity").
      interlink_activation: after both convs of every interlinking node.
      integration_activation: after the output-integration convs.
      head_activation: after the first head conv.
      head_conv2_norm_act: BN + ``head_activation`` after the second head conv too
        (authors: no; paper reading: yes). The last head conv never has BN/activation.
      use_bias: conv biases (authors: yes, even before BN).
      bn_epsilon, bn_momentum: flax BatchNorm settings (torch momentum m = 1 - flax m).
      bn_running_var: "biased" (flax) or "unbiased" (PyTorch) batch variance in the
        training-mode running-variance update (``model/batchnorm.py``).
      torch_init: PyTorch's default conv init (kaiming_uniform(a=sqrt 5) kernels, bias
        U(+-1/sqrt(fan_in))) instead of flax's (lecun_normal, zero bias).
      in_channels: input channels (RGB = 3).
      conv: how XLA computes the convolutions ("auto" | "xla" | "channel_tuned",
        ``model/conv.py``); the same numbers up to float summation order.
    """

    num_labels: int
    channels: tuple[int, ...] = (8, 16, 24, 32)
    num_interlink_layers: int = 3
    kernel_size: int = 5
    head_kernel_size: int = 9
    head_hidden_channels: int | None = None
    input_activation: str = "tanh"
    interlink_activation: str = "relu"
    integration_activation: str = "tanh"
    head_activation: str = "tanh"
    head_conv2_norm_act: bool = False
    use_bias: bool = True
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    bn_running_var: str = "biased"
    torch_init: bool = True
    in_channels: int = 3
    conv: str = "auto"

    def __post_init__(self):
        if self.num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {self.num_labels}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        check_running_var(self.bn_running_var)
        check_impl(self.conv)
        if len(self.channels) < 1 or min(self.channels) < 1:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {self.channels}")
        if self.num_interlink_layers < 0:
            raise ValueError(f"num_interlink_layers must be >= 0, got {self.num_interlink_layers}")
        for name in ("kernel_size", "head_kernel_size"):
            k = getattr(self, name)
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be a positive odd int, got {k}")
        for name in ("input_activation", "interlink_activation", "integration_activation",
                     "head_activation"):
            if getattr(self, name) not in _ACTIVATIONS:
                raise ValueError(f"{name} must be one of {sorted(_ACTIVATIONS)}, got "
                                 f"{getattr(self, name)!r}")

    # presets ---------------------------------------------------------------
    @classmethod
    def authors(cls, num_labels: int) -> ICNNConfig:
        """The layers the authors' PyTorch ``FaceModel`` actually uses (notes sec. 1)."""
        return cls(num_labels=num_labels)

    @classmethod
    def paper(cls, num_labels: int) -> ICNNConfig:
        """The paper's Fig. 2: 3x3/s1/p1 convs, BN + ReLU after every conv but the last."""
        return cls(
            num_labels=num_labels,
            kernel_size=3,
            head_kernel_size=3,
            input_activation="relu",
            interlink_activation="relu",
            integration_activation="relu",
            head_activation="relu",
            head_conv2_norm_act=True,
            torch_init=False,
        )

    @classmethod
    def from_preset(cls, preset: str, num_labels: int) -> ICNNConfig:
        """``preset`` is "authors" or "paper"."""
        presets = {"authors": cls.authors, "paper": cls.paper}
        if preset not in presets:
            raise ValueError(f"unknown iCNN preset {preset!r}; choose one of {sorted(presets)}")
        return presets[preset](num_labels)

    # derived -----------------------------------------------------------------
    @property
    def num_scales(self) -> int:
        return len(self.channels)

    @property
    def hidden_channels(self) -> int:
        if self.head_hidden_channels is not None:
            return self.head_hidden_channels
        return 2 * self.num_labels + 8

    @property
    def min_size(self) -> int:
        """Smallest accepted H and W: 2**(S-1) (8 for 4 scales)."""
        return 2 ** (self.num_scales - 1)

    def pyramid_sizes(self, size: int) -> tuple[int, ...]:
        """Side lengths of the image pyramid, e.g. 128 -> (128, 64, 32, 16)."""
        sizes = [size]
        for _ in range(self.num_scales - 1):
            sizes.append(-(-sizes[-1] // 2))
        return tuple(sizes)


# --------------------------------------------------------------------------- helpers


def max_pool_down(x: Float[Array, "n h w c"]) -> Float[Array, "n h2 w2 c"]:
    """Max-pool 3x3, stride 2, padding 1 (padding = -inf, like torch): n -> ceil(n/2).

    ``model/pooling.py``: flax's ``max_pool`` values and gradient, in ops XLA's CPU
    backend runs faster."""
    return max_pool_3x3_s2(x)


def nearest_up(x: Float[Array, "n h w c"], size: tuple[int, int]) -> Float[Array, "n H W c"]:
    """Nearest up-sampling to ``size`` = (H, W) with H <= 2h, W <= 2w.

    Repeat every pixel twice along H and W, then crop the bottom/right to ``size``. For
    ``h = ceil(H/2)`` this equals ``torch.nn.functional.interpolate(mode='nearest')``.
    """
    h, w = x.shape[1], x.shape[2]
    H, W = size
    if not (0 < H <= 2 * h and 0 < W <= 2 * w):
        raise ValueError(f"nearest_up: target {size} must be within 2x the source ({h}, {w})")
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return x[:, :H, :W, :]


def count_params(params: Any) -> int:
    """Total number of scalars in a pytree (pass ``variables['params']`` for params only)."""
    return int(sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params)))


def _torch_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# torch kaiming_uniform_(a=sqrt(5)) == U(+-1/sqrt(fan_in)) == variance_scaling(1/3, uniform)
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _conv(cfg: ICNNConfig, features: int, kernel: int, in_features: int, name: str) -> Conv:
    kw: dict[str, Any] = {}
    if cfg.torch_init:
        kw["kernel_init"] = _torch_kernel_init
        kw["bias_init"] = _torch_bias_init(in_features * kernel * kernel)
    return Conv(features, kernel, use_bias=cfg.use_bias, impl=cfg.conv, name=name, **kw)


def _bn(cfg: ICNNConfig, train: bool, name: str) -> BatchNorm:
    return BatchNorm(use_running_average=not train, momentum=cfg.bn_momentum,
                     epsilon=cfg.bn_epsilon, running_var=cfg.bn_running_var, name=name)


def _check_image(x: jax.Array, in_channels: int, min_size: int, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what}: expected an (N, H, W, {in_channels}) NHWC array, got shape {x.shape}")
    if x.shape[-1] != in_channels:
        raise ValueError(f"{what}: expected {in_channels} channels in the last axis (NHWC), "
                         f"got shape {x.shape}")
    if x.shape[1] < min_size or x.shape[2] < min_size:
        raise ValueError(f"{what}: H and W must be >= {min_size} for this config, got {x.shape[1:3]}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{what}: expected a float image (e.g. RGB in [0, 1]), got dtype {x.dtype}")


# --------------------------------------------------------------------------- modules


class _InterlinkNode(nn.Module):
    """One node of an interlinking layer: concat -> conv+BN+act -> conv+BN+act."""

    config: ICNNConfig
    scale: int

    @nn.compact
    def __call__(self, feats: Sequence[jax.Array], train: bool) -> jax.Array:
        cfg, i = self.config, self.scale
        act = _ACTIVATIONS[cfg.interlink_activation]
        own = feats[i]
        parts = []
        if i > 0:
            parts.append(max_pool_down(feats[i - 1]))
        parts.append(own)
        if i < len(feats) - 1:
            parts.append(nearest_up(feats[i + 1], own.shape[1:3]))
        h = jnp.concatenate(parts, axis=-1)
        c = cfg.channels[i]
        h = _conv(cfg, c, cfg.kernel_size, h.shape[-1], "inter_conv_node")(h)
        h = act(_bn(cfg, train, "inter_conv_node_batchnorm")(h))
        h = _conv(cfg, c, cfg.kernel_size, c, "conv_node")(h)
        h = act(_bn(cfg, train, "conv_node_batchnorm")(h))
        return h


class _InterlinkLayer(nn.Module):
    """All S nodes, each computed from the previous layer's features (in parallel)."""

    config: ICNNConfig

    @nn.compact
    def __call__(self, feats: Sequence[jax.Array], train: bool) -> list[jax.Array]:
        return [
            _InterlinkNode(self.config, i, name=f"node_{i}")(feats, train)
            for i in range(len(feats))
        ]


class _OutputIntegrationNode(nn.Module):
    config: ICNNConfig
    scale: int

    @nn.compact
    def __call__(self, own: jax.Array, coarser: jax.Array, train: bool) -> jax.Array:
        cfg, i = self.config, self.scale
        h = jnp.concatenate([own, nearest_up(coarser, own.shape[1:3])], axis=-1)
        h = _conv(cfg, cfg.channels[i], cfg.kernel_size, h.shape[-1], "output_conv_node")(h)
        h = _bn(cfg, train, "output_conv_node_batchnorm")(h)
        return _ACTIVATIONS[cfg.integration_activation](h)


class _OutputIntegration(nn.Module):
    """Coarse-to-fine fusion of the last interlinking layer: g_i from [f_i, up(g_{i+1})]."""

    config: ICNNConfig

    @nn.compact
    def __call__(self, feats: Sequence[jax.Array], train: bool) -> jax.Array:
        g = feats[-1]
        for i in reversed(range(len(feats) - 1)):
            g = _OutputIntegrationNode(self.config, i, name=f"node_{i}")(feats[i], g, train)
        return g


class ICNN(nn.Module):
    """Interlinked CNN: (N, H, W, 3) float image -> (N, H, W, L) logits.

    ``train=True`` uses batch statistics and needs ``mutable=['batch_stats']``;
    ``train=False`` uses the running averages. See the module docstring for the layout.
    """

    config: ICNNConfig

    @nn.compact
    def __call__(self, x: Float[Array, "n h w 3"], train: bool) -> Float[Array, "n h w l"]:
        cfg = self.config
        _check_image(x, cfg.in_channels, cfg.min_size, "ICNN input")
        n, H, W, _ = x.shape

        # image pyramid + input convs
        pyramid = [x]
        for _ in range(cfg.num_scales - 1):
            pyramid.append(max_pool_down(pyramid[-1]))
        act_in = _ACTIVATIONS[cfg.input_activation]
        feats = []
        for i, xi in enumerate(pyramid):
            h = _conv(cfg, cfg.channels[i], cfg.kernel_size, cfg.in_channels, f"input_conv_{i}")(xi)
            feats.append(act_in(_bn(cfg, train, f"input_bnm_{i}")(h)))

        for layer in range(cfg.num_interlink_layers):
            feats = _InterlinkLayer(cfg, name=f"interlink_layers_{layer}")(feats, train)

        g = _OutputIntegration(cfg, name="output_integration")(feats, train)

        act_head = _ACTIVATIONS[cfg.head_activation]
        hid, L = cfg.hidden_channels, cfg.num_labels
        h = _conv(cfg, hid, cfg.kernel_size, cfg.channels[0], "last_conv1")(g)
        h = act_head(_bn(cfg, train, "last_con1_bnm")(h))
        h = _conv(cfg, L, cfg.kernel_size, hid, "last_conv2")(h)
        if cfg.head_conv2_norm_act:
            h = act_head(_bn(cfg, train, "last_con2_bnm")(h))
        logits = _conv(cfg, L, cfg.head_kernel_size, L, "last_conv3")(h)
        chex.assert_shape(logits, (n, H, W, L))
        return logits


# --------------------------------------------------------------------------- stage 2

# The order of the 6 stage-2 patches and each part model's labels (background + the
# part's classes) are defined once, in ``stn_icnn_jax.taxonomy``.

MIRRORED_PASSES: tuple[str, ...] = ("joint", "separate")

SHARED_PART_MODELS: tuple[str, ...] = ("brow", "eye", "nose", "mouth")
"""Sub-module names with ``share_left_right=True`` (= torch ``model.0`` .. ``model.3``)."""


class PartModels(nn.Module):
    """The stage-2 part iCNNs.

    Input: patches (N, 6, h, w, 3) in :data:`PART_NAMES` order. Output: a tuple of 6 logit
    arrays (N, h, w, C_i), C = :data:`PART_NUM_LABELS`.

    Attributes:
      config: iCNN template (e.g. ``ICNNConfig.authors(2)``); its ``num_labels`` is
        replaced by the per-part class counts.
      share_left_right: True (authors' code): 4 models ``brow``, ``eye``, ``nose``,
        ``mouth``; the right brow/eye are mirrored along the width axis, run through the
        left model, and the output mirrored back. Left and mirrored right go through the
        shared model in *one* batch (2N), so in train mode their BN batch statistics are
        pooled, unless ``mirrored_pass="separate"``. False: 6 separate models named
        after :data:`PART_NAMES`.
      mirrored_pass: with shared models, ``"joint"`` runs the left and the mirrored
        right patch as one batch; ``"separate"`` calls the model twice, left first (the
        authors' code): in train mode each call normalises with its own batch
        statistics and updates the running statistics once (two updates per step).
        Identical in eval mode.
    """

    config: ICNNConfig = ICNNConfig.authors(2)
    share_left_right: bool = True
    mirrored_pass: str = "joint"

    def _cfg(self, num_labels: int) -> ICNNConfig:
        return dataclasses.replace(self.config, num_labels=num_labels)

    @nn.compact
    def __call__(self, patches: Float[Array, "n 6 h w 3"], train: bool) -> tuple[jax.Array, ...]:
        cfg = self.config
        if patches.ndim != 5 or patches.shape[1] != len(PART_NAMES):
            raise ValueError(f"PartModels input: expected (N, 6, h, w, {cfg.in_channels}) patches in "
                             f"order {PART_NAMES}, got shape {patches.shape}")
        _check_image(patches[:, 0], cfg.in_channels, cfg.min_size, "PartModels input")
        n, _, h, w, _ = patches.shape
        p = [patches[:, k] for k in range(len(PART_NAMES))]
        flip = lambda a: jnp.flip(a, axis=2)  # noqa: E731  (width axis of NHWC)

        if self.mirrored_pass not in MIRRORED_PASSES:
            raise ValueError(f"mirrored_pass must be one of {MIRRORED_PASSES}, got "
                             f"{self.mirrored_pass!r}")
        if self.share_left_right:
            outs: list[jax.Array | None] = [None] * 6
            for name, (left, right) in (("brow", (0, 1)), ("eye", (2, 3))):
                model = ICNN(self._cfg(PART_NUM_LABELS[left]), name=name)
                if self.mirrored_pass == "separate":
                    outs[left] = model(p[left], train)
                    outs[right] = flip(model(flip(p[right]), train))
                    continue
                both = model(jnp.concatenate([p[left], flip(p[right])], axis=0), train)
                outs[left], outs[right] = both[:n], flip(both[n:])
            outs[4] = ICNN(self._cfg(PART_NUM_LABELS[4]), name="nose")(p[4], train)
            outs[5] = ICNN(self._cfg(PART_NUM_LABELS[5]), name="mouth")(p[5], train)
        else:
            outs = [
                ICNN(self._cfg(PART_NUM_LABELS[k]), name=PART_NAMES[k])(p[k], train)
                for k in range(len(PART_NAMES))
            ]
        for k, o in enumerate(outs):
            chex.assert_shape(o, (n, h, w, PART_NUM_LABELS[k]))
        return tuple(outs)


# --------------------------------------------------------------------------- torch port


def icnn_torch_name_map(config: ICNNConfig) -> list[tuple[tuple[str, ...], str, str]]:
    """(flax module path, torch module name, kind) for every used layer; kind "conv" | "bn".

    Follows the authors' ``FaceModel`` naming (docs/authors-code.md, "Weight layout").
    """
    S, last = config.num_scales, config.num_interlink_layers - 1
    rows: list[tuple[tuple[str, ...], str, str]] = []
    for i in range(S):
        rows.append(((f"input_conv_{i}",), f"input_conv.{i}", "conv"))
        rows.append(((f"input_bnm_{i}",), f"input_bnm.{i}", "bn"))
    for layer in range(config.num_interlink_layers):
        for i in range(S):
            for sub, kind in (("inter_conv_node", "conv"), ("inter_conv_node_batchnorm", "bn"),
                              ("conv_node", "conv"), ("conv_node_batchnorm", "bn")):
                rows.append(((f"interlink_layers_{layer}", f"node_{i}", sub),
                             f"interlink_layers.{layer}.iCNN_Nodelist.{i}.{sub}", kind))
    if last < 0 and S > 1:
        raise ValueError("the torch layout needs at least one interlinking layer")
    for i in range(S - 1):
        for sub, kind in (("output_conv_node", "conv"), ("output_conv_node_batchnorm", "bn")):
            rows.append((("output_integration", f"node_{i}", sub),
                         f"interlink_layers.{last}.iCNN_Nodelist.{i}.{sub}", kind))
    rows.append((("last_conv1",), "last_conv1", "conv"))
    rows.append((("last_con1_bnm",), "last_con1_bnm", "bn"))
    rows.append((("last_conv2",), "last_conv2", "conv"))
    if config.head_conv2_norm_act:
        rows.append((("last_con2_bnm",), "last_con2_bnm", "bn"))
    rows.append((("last_conv3",), "last_conv3", "conv"))
    return rows


def _to_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):  # torch tensor, without importing torch here
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _set(tree: dict, path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def torch_icnn_to_flax(state_dict: Mapping[str, Any], config: ICNNConfig,
                       prefix: str = "") -> dict[str, dict]:
    """Convert one authors' iCNN state dict to flax ``{'params', 'batch_stats'}``.

    ``state_dict`` maps torch names (optionally under ``prefix``, e.g. ``"model.0."``) to
    tensors or arrays. Unused torch entries are ignored; missing or mis-shaped ones raise
    ``ValueError``. Shapes are checked against ``ICNN(config)``'s own parameters.
    """
    params: dict = {}
    stats: dict = {}
    for fpath, tname, kind in icnn_torch_name_map(config):
        def get(suffix: str) -> np.ndarray:
            key = f"{prefix}{tname}.{suffix}"
            if key not in state_dict:
                raise ValueError(f"torch state dict is missing {key!r}")
            return _to_numpy(state_dict[key])

        if kind == "conv":
            _set(params, (*fpath, "kernel"), jnp.asarray(get("weight").transpose(2, 3, 1, 0)))
            if config.use_bias:
                _set(params, (*fpath, "bias"), jnp.asarray(get("bias")))
        else:
            _set(params, (*fpath, "scale"), jnp.asarray(get("weight")))
            _set(params, (*fpath, "bias"), jnp.asarray(get("bias")))
            _set(stats, (*fpath, "mean"), jnp.asarray(get("running_mean")))
            _set(stats, (*fpath, "var"), jnp.asarray(get("running_var")))
    variables = {"params": params, "batch_stats": stats}
    _check_against_template(variables, config)
    return variables


def _check_against_template(variables: dict, config: ICNNConfig) -> None:
    s = max(config.min_size, 8)
    template = jax.eval_shape(
        lambda: ICNN(config).init(jax.random.PRNGKey(0), jnp.zeros((1, s, s, config.in_channels)),
                                  train=False))
    want = {jax.tree_util.keystr(k): v.shape
            for k, v in jax.tree_util.tree_leaves_with_path(template)}
    got = {jax.tree_util.keystr(k): v.shape
           for k, v in jax.tree_util.tree_leaves_with_path(variables)}
    if want != got:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        bad = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        raise ValueError(
            "converted torch weights do not fit ICNN(config): "
            f"missing {missing[:5]}, unexpected {extra[:5]}, "
            f"shape mismatches {[(k, got[k], want[k]) for k in bad[:5]]}")


def torch_parts_to_flax(state_dict: Mapping[str, Any],
                        config: ICNNConfig | None = None) -> dict[str, dict]:
    """Convert the authors' ``Stage2Model`` state dict for ``PartModels(config, True)``.

    ``model.0`` -> ``brow``, ``model.1`` -> ``eye``, ``model.2`` -> ``nose``,
    ``model.3`` -> ``mouth`` (labels from :data:`PART_NUM_LABELS`).
    """
    config = config or ICNNConfig.authors(2)
    labels = {"brow": PART_NUM_LABELS[0], "eye": PART_NUM_LABELS[2], "nose": PART_NUM_LABELS[4],
              "mouth": PART_NUM_LABELS[5]}
    out: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for k, name in enumerate(SHARED_PART_MODELS):
        v = torch_icnn_to_flax(state_dict, dataclasses.replace(config, num_labels=labels[name]),
                               prefix=f"model.{k}.")
        out["params"][name] = v["params"]
        out["batch_stats"][name] = v["batch_stats"]
    return out
