"""Argument checks at the public boundary of ``sampler`` and ``theta_geometry``.

Each check raises one ``ValueError`` naming the argument, what it must be and what it
got; nothing is converted or rounded silently.  Only static properties (rank, shape,
dtype, Python ints) are checked, so the checks cost nothing under ``jax.jit``.
"""

from __future__ import annotations

import jax.numpy as jnp


def check_float(x, name: str, what: str = "array") -> None:
    """``x`` must have a floating dtype (integer images / label maps are refused)."""
    if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
        raise ValueError(
            f"{name} must have a floating dtype, got {jnp.asarray(x).dtype}. Integer "
            f"{what}s are not supported: cast explicitly, e.g. {name}.astype(jnp.float32) "
            "(for label maps use a one-hot float encoding and mode='nearest')."
        )


def check_rank(x, rank: int, name: str, layout: str) -> None:
    """``x`` must have ``rank`` axes; ``layout`` (e.g. "(N, H, W, C)") is for the message."""
    if jnp.ndim(x) != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {jnp.shape(x)}")


def check_theta(theta, lead: tuple, name: str = "theta") -> None:
    """theta must be a floating (*lead, 2, 3); entries of ``lead`` that are None are free."""
    shape = jnp.shape(theta)
    want = "(" + ", ".join("?" if d is None else str(d) for d in lead) + ", 2, 3)"
    if len(shape) != len(lead) + 2 or shape[-2:] != (2, 3):
        raise ValueError(f"{name} must have shape {want}, got {shape}")
    for d, s in zip(lead, shape):
        if d is not None and d != s:
            raise ValueError(f"{name} must have shape {want}, got {shape}")
    check_float(theta, name, "theta")


def check_size(size, name: str = "size") -> tuple[int, int]:
    """``size`` must be a pair of positive ints (h, w); returns it as Python ints."""
    try:
        h, w = (int(s) for s in size)
        ok = all(int(s) == s for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of positive ints (h, w), got {size!r}") from None
    if not ok or h < 1 or w < 1:
        raise ValueError(f"{name} must be a pair of positive ints (h, w), got {size!r}")
    return h, w
