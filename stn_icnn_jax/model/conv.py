"""The iCNN's (and the VGG-9 localiser's) convolution: stride 1, "same" zero padding,
NHWC, with a choice of how XLA is asked to compute it.

XLA's CPU convolutions are slow on the iCNN's thin layers, and how slow depends on the
channel counts more than on the work: measured on a 2-core AVX-512 CPU (batch 8 at
128x128, 3x3), the weight gradient of an 8->26 conv took 52 ms but that of an 8->32 conv
10 ms, and the weight gradient of 24->8 took 19 ms but 13 ms when computed as the weight
gradient of the "swapped" conv (``dy`` as the input, ``x`` as the output gradient). So
``impl="channel_tuned"`` computes the same numbers (up to float summation order) in the
shapes XLA's CPU kernels run fastest:

- forward and input gradient: channel counts padded with zeros to a multiple of 8
  (zero weights on zero inputs add exact zeros), the output sliced back;
- weight gradient (a custom VJP): of the two equivalent formulations, the one whose
  output-feature axis is the larger of C_in and C_out, that axis padded to a multiple
  of 16 when it is above 8, summed over chunks of 4 images (the kernels slow down faster
  than the batch grows):

      dW[a, b, i, o] = sum_{n,y,x} xpad[n, y+a, x+b, i] * dy[n, y, x, o]      (direct)
                     = flip_ab(dWs)[a, b, o, i]^T,  dWs = dW of conv(dy -> x)   (swapped)

``impl="xla"`` is ``lax.conv_general_dilated`` with XLA's own gradients; ``"auto"`` is
``"channel_tuned"`` when the default backend is the CPU and ``"xla"`` elsewhere (the
channel rules are facts about XLA's CPU kernels, not about GPUs or TPUs). Whole training
steps: experiments/results/bench_conv_impl_*.md.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

CONV_IMPLS: tuple[str, ...] = ("auto", "xla", "channel_tuned")

__all__ = ["CONV_IMPLS", "Conv", "check_impl", "conv_same", "resolve_impl", "weight_gradient"]


def check_impl(impl: str) -> None:
    """Raise ValueError unless ``impl`` is one of :data:`CONV_IMPLS` (touches no backend,
    so configs can be checked before ``jax.distributed.initialize``)."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {impl!r}")


def resolve_impl(impl: str) -> str:
    """``"auto"`` -> ``"channel_tuned"`` on the CPU backend, ``"xla"`` elsewhere (asks
    jax for its default backend, so call it while tracing, not while configuring)."""
    check_impl(impl)
    if impl == "auto":
        return "channel_tuned" if jax.default_backend() == "cpu" else "xla"
    return impl


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad_last(a: jax.Array, size: int) -> jax.Array:
    extra = size - a.shape[-1]
    if extra == 0:
        return a
    return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, extra)])


def _xla_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    p = kernel.shape[0] // 2
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), ((p, p), (p, p)), dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _padded_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The forward conv with C_in and C_out padded to multiples of 8 (same values)."""
    c_in, c_out = kernel.shape[2], kernel.shape[3]
    c_in_pad, c_out_pad = _round_up(c_in, 8), _round_up(c_out, 8)
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, c_in_pad - c_in), (0, c_out_pad - c_out)))
    return _xla_conv(_pad_last(x, c_in_pad), kernel)[..., :c_out]


def _features_axis(c: int) -> int:
    """The padded size of the weight gradient's output-feature axis."""
    return c if c <= 8 else _round_up(c, 16)


# Images per weight-gradient conv: XLA's CPU weight-gradient kernels slow down faster
# than the batch grows (24->8 at 128x128, batch 32: 164 ms in one conv, 62 ms as 8 convs
# of 4 images; batch 8: 17 ms against 12 ms as 2 convs of 4).
DW_CHUNK = 4


def _xla_weight_gradient(inputs: jax.Array, cotangent: jax.Array, k: int) -> jax.Array:
    """XLA's dL/dW (k, k, C_inputs, C_cotangent) of the same-padded conv of ``inputs``."""
    template = jnp.zeros((k, k, inputs.shape[-1], cotangent.shape[-1]), inputs.dtype)
    return jax.vjp(lambda w: _xla_conv(inputs, w), template)[1](cotangent)[0]


def _weight_gradient_one(x: jax.Array, dy: jax.Array, k: int) -> jax.Array:
    c_in, c_out = x.shape[-1], dy.shape[-1]
    if c_in > c_out:  # swapped: the output-feature axis is C_in
        dws = _xla_weight_gradient(dy, _pad_last(x, _features_axis(c_in)), k)
        return jnp.transpose(jnp.flip(dws, (0, 1)), (0, 1, 3, 2))[:, :, :c_in, :]
    return _xla_weight_gradient(x, _pad_last(dy, _features_axis(c_out)), k)[..., :c_out]


def weight_gradient(x: jax.Array, dy: jax.Array, kernel_size: int) -> jax.Array:
    """dL/dW (k, k, C_in, C_out) of the same-padded conv, from x (N, H, W, C_in) and
    dy (N, H, W, C_out), in the formulation XLA's CPU kernels run fastest (module doc),
    summed over chunks of :data:`DW_CHUNK` images unless both channel counts are <= 8."""
    n = x.shape[0]
    if n <= DW_CHUNK or max(x.shape[-1], dy.shape[-1]) <= 8:
        return _weight_gradient_one(x, dy, kernel_size)
    parts = [_weight_gradient_one(x[i:i + DW_CHUNK], dy[i:i + DW_CHUNK], kernel_size)
             for i in range(0, n, DW_CHUNK)]
    return functools.reduce(jnp.add, parts)


@jax.custom_vjp
def _channel_tuned_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _padded_conv(x, kernel)


def _channel_tuned_fwd(x, kernel):
    return _padded_conv(x, kernel), (x, kernel)


def _channel_tuned_bwd(residuals, dy):
    x, kernel = residuals
    dx = jax.vjp(lambda a: _padded_conv(a, kernel), x)[1](dy)[0]
    return dx, weight_gradient(x, dy, kernel.shape[0]).astype(kernel.dtype)


_channel_tuned_conv.defvjp(_channel_tuned_fwd, _channel_tuned_bwd)


def conv_same(x: Float[Array, "n h w ci"], kernel: Float[Array, "k k ci co"],
              impl: str = "auto") -> Float[Array, "n h w co"]:
    """Stride-1 convolution with "same" zero padding (odd square kernel, HWIO)."""
    k = kernel.shape[0]
    if kernel.ndim != 4 or kernel.shape[1] != k or k % 2 == 0:
        raise ValueError(f"conv_same: expected an odd square (k, k, C_in, C_out) kernel, "
                         f"got shape {kernel.shape}")
    if x.ndim != 4 or x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"conv_same: input {x.shape} does not match kernel {kernel.shape} "
                         "(NHWC input with C_in channels)")
    if resolve_impl(impl) == "xla":
        return _xla_conv(x, kernel)
    return _channel_tuned_conv(x, kernel)


class Conv(nn.Module):
    """``flax.linen.Conv`` for stride 1 and "same" padding with a choice of ``impl``.

    Its parameters (``kernel`` (k, k, C_in, C_out), ``bias`` (C_out,)) have the names,
    shapes, creation order and initialisers of ``nn.Conv``'s, so a checkpoint of either
    loads into the other and ``init`` draws the same values from the same key.
    """

    features: int
    kernel_size: int
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
    bias_init: Callable[..., Any] = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: Float[Array, "n h w ci"]) -> Float[Array, "n h w co"]:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features),
                            jnp.float32)
        y = conv_same(x, kernel.astype(x.dtype), self.impl)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
            y = y + bias.astype(y.dtype)
        return y
