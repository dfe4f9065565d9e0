"""Max-pooling 3x3, stride 2, padding 1 (padding = -inf), as elementwise maxima of nine
strided views, with a gradient made of elementwise ops too.

The values and the gradient equal ``flax.linen.max_pool(x, (3, 3), (2, 2), ((1, 1),
(1, 1)))`` and PyTorch's ``max_pool2d(x, 3, 2, 1)``: each output's gradient goes to the
first maximum of its window in row-major order (ties included). What differs is how
XLA runs it: differentiating ``reduce_window`` gives a variadic reduce-window over the
input and four int32 index arrays (``iota``s of the padded input's shape), which on
XLA's CPU backend took ~13% of the paper preset's stage-1 training step (measured with
``jax.profiler`` on one core: 126 of 875 ms at batch 8); here the forward pass is one
fused loop over the nine views and the backward pass one fused loop of compares,
selects and strided pads.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["max_pool_3x3_s2"]


def _out_size(n: int) -> int:
    """Output side of a 3x3/s2/p1 pool: floor((n + 2 - 3) / 2) + 1 = ceil(n / 2)."""
    return (n - 1) // 2 + 1


def _views(x: jax.Array) -> list[jax.Array]:
    """The nine (N, ceil(H/2), ceil(W/2), C) strided views of x padded by -inf, one per
    window offset (a, b) in row-major order."""
    n, h, w, c = x.shape
    ho, wo = _out_size(h), _out_size(w)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
    return [jax.lax.slice(xp, (0, a, b, 0), (n, a + 2 * ho - 1, b + 2 * wo - 1, c), (1, 2, 2, 1))
            for a in range(3) for b in range(3)]


@jax.custom_vjp
def max_pool_3x3_s2(x: Float[Array, "n h w c"]) -> Float[Array, "n h2 w2 c"]:
    """Max-pool 3x3, stride 2, padding 1 with -inf: (N, H, W, C) -> (N, ceil(H/2),
    ceil(W/2), C). The gradient goes to each window's first maximum (row-major)."""
    return functools.reduce(jnp.maximum, _views(x))


def _fwd(x):
    out = max_pool_3x3_s2(x)
    return out, (x, out)


def _bwd(residuals, dy):
    x, out = residuals
    n, h, w, c = x.shape
    ho, wo = _out_size(h), _out_size(w)
    views = _views(x)
    taken = jnp.zeros(out.shape, bool)
    dxp = jnp.zeros((n, h + 2, w + 2, c), dy.dtype)
    zero = jnp.zeros((), dy.dtype)
    for k, view in enumerate(views):
        a, b = divmod(k, 3)
        first = (view == out) & ~taken
        taken = taken | first
        # put dy back at rows a, a+2, ... and columns b, b+2, ... of the padded input
        dxp = dxp + jax.lax.pad(
            jnp.where(first, dy, zero), zero,
            ((0, 0, 0), (a, h + 2 - a - (2 * ho - 1), 1), (b, w + 2 - b - (2 * wo - 1), 1),
             (0, 0, 0)))
    return (dxp[:, 1:h + 1, 1:w + 1, :],)


max_pool_3x3_s2.defvjp(_fwd, _bwd)
