"""BatchNorm with a choice of running-variance update (flax's or PyTorch's).

Normalisation is the usual one in both cases: training mode normalises with the batch
mean and the *biased* batch variance, evaluation mode with the running averages. They
differ only in what training mode adds to the running variance:

- ``running_var="biased"`` (flax's ``nn.BatchNorm``): ``var <- m var + (1 - m) v``
  with ``v`` the biased batch variance (divide by n);
- ``running_var="unbiased"`` (``torch.nn.BatchNorm2d``): the same with ``v n/(n - 1)``,
  n = the number of values per channel (N x H x W).

Variables and names are those of ``flax.linen.BatchNorm`` (params ``scale``, ``bias``;
batch_stats ``mean``, ``var``), so weights are interchangeable with it. ``momentum`` is
flax's (torch momentum 0.1 = flax 0.9).
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

RunningVar = Literal["biased", "unbiased"]
RUNNING_VAR_CHOICES: tuple[str, ...] = ("biased", "unbiased")


def check_running_var(value: str) -> None:
    if value not in RUNNING_VAR_CHOICES:
        raise ValueError(f"bn_running_var must be one of {RUNNING_VAR_CHOICES}, got {value!r}")


class BatchNorm(nn.Module):
    """Channels-last BatchNorm: (..., C) -> (..., C), statistics over all other axes."""

    use_running_average: bool
    momentum: float = 0.9
    epsilon: float = 1e-5
    running_var: RunningVar = "biased"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_running_var(self.running_var)
        c = x.shape[-1]
        axes = tuple(range(x.ndim - 1))
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # bf16 widened, f64 kept
            mean = jnp.mean(xf, axis=axes)
            var = jnp.mean(jnp.square(xf - mean), axis=axes)
            if not self.is_initializing():
                n = x.size // c
                update = var * (n / max(n - 1, 1)) if self.running_var == "unbiased" else var
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1.0 - m) * mean
                ra_var.value = m * ra_var.value + (1.0 - m) * update
        y = (x - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias
        return y.astype(x.dtype)
