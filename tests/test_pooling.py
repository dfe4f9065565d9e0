"""model/pooling.py: max-pool 3x3/s2/p1 values, and the gradient to each window's first
maximum (PyTorch's and flax's rule), against a numpy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stn_icnn_jax.model.pooling import max_pool_3x3_s2


def numpy_pool_and_grad(x, dy):
    """Loops over the windows; ties: the first maximum in row-major window order."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    n, h, w, c = x.shape
    ho, wo = -(-h // 2), -(-w // 2)
    y = np.zeros((n, ho, wo, c))
    dx = np.zeros(x.shape)
    for b in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    best, where = -np.inf, None
                    for r in range(2 * i - 1, 2 * i + 2):
                        for s in range(2 * j - 1, 2 * j + 2):
                            if 0 <= r < h and 0 <= s < w and x[b, r, s, ch] > best:
                                best, where = x[b, r, s, ch], (r, s)
                    y[b, i, j, ch] = best
                    dx[b, where[0], where[1], ch] += dy[b, i, j, ch]
    return y, dx


@pytest.mark.parametrize("shape,ties", [((2, 7, 9, 3), False), ((2, 7, 9, 3), True),
                                        ((1, 8, 8, 2), True), ((1, 11, 6, 1), False)])
def test_values_and_first_max_gradient_match_numpy(shape, ties):
    key = jax.random.key(sum(shape))
    x = (jax.random.randint(key, shape, 0, 3).astype(jnp.float32) if ties
         else jax.random.normal(key, shape))
    y, vjp = jax.vjp(max_pool_3x3_s2, x)
    dy = jax.random.normal(jax.random.key(7), y.shape)
    want_y, want_dx = numpy_pool_and_grad(x, dy)
    np.testing.assert_array_equal(np.asarray(y), want_y)
    dx = np.asarray(vjp(dy)[0])
    np.testing.assert_array_equal(dx != 0, want_dx != 0)
    np.testing.assert_allclose(dx, want_dx, atol=1e-6)


def test_hand_example_ties_go_to_the_first_pixel_of_each_window():
    # A constant 4x4 map: window (i, j) covers rows 2i-1..2i+1 and columns 2j-1..2j+1, so
    # the first real pixels (row-major) of the four windows are (0,0), (0,1), (1,0), (1,1).
    x = jnp.ones((1, 4, 4, 1))
    dy = jnp.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    dx = jax.vjp(max_pool_3x3_s2, x)[1](dy)[0]
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 0, 0], [3, 4, 0, 0],
                                                   [0, 0, 0, 0], [0, 0, 0, 0]])
