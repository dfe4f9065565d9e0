"""Random images and thetas, and the hypothesis settings, of the sampler and theta tests."""

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
seeds = st.integers(0, 2**31 - 1)


def random_image(seed, shape, dtype=np.float32):
    """Uniform [0, 1) values of ``shape`` (e.g. (N, H, W, C))."""
    return np.random.default_rng(seed).random(shape).astype(dtype)


def random_theta(seed, n, p, scale=(0.3, 1.2), shift=(-1.2, 1.2), dtype=np.float32):
    """Constrained thetas (eq. 15) (n, p, 2, 3): |sx|, sy in ``scale`` (sx of either sign),
    tx, ty in ``shift``, zero off-diagonals."""
    r = np.random.default_rng(seed)
    th = np.zeros((n, p, 2, 3))
    th[..., 0, 0] = r.uniform(*scale, (n, p)) * r.choice([-1, 1], (n, p))
    th[..., 1, 1] = r.uniform(*scale, (n, p))
    th[..., 0, 2] = r.uniform(*shift, (n, p))
    th[..., 1, 2] = r.uniform(*shift, (n, p))
    return th.astype(dtype)
