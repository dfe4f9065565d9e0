"""Per-layer check of a custom-VJP convolution whose weight gradient is a batch-chunked
im2col dot (shifted slices concatenated, a ``lax.scan`` over chunks of 4 images, one GEMM
per chunk) against XLA's own backward, on the authors' iCNN layer shapes (5x5; the 9x9 head).

Prints, per layer, fwd+bwd (gradients of x and W of sum(tanh(conv))) time for XLA and for
the im2col weight gradient (best of two interleaved medians of 3), and the relative error
of dW. Usage: ``python experiments/bench_conv_dw.py [BATCH]`` (default 32).
"""
import functools, time, statistics, sys
import jax, jax.numpy as jnp
from jax import lax
DN = ("NHWC", "HWIO", "NHWC")

def conv(x, w, pad):
    return lax.conv_general_dilated(x, w, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=DN)

@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_im2col_dw(x, w, pad, chunk):
    return conv(x, w, pad)

def _fwd(x, w, pad, chunk):
    return conv(x, w, pad), (x, w)

def _bwd(pad, chunk, res, g):
    x, w = res
    k, _, cin, cout = w.shape
    # dx: XLA's transposed conv (the forward of a flipped kernel)
    _, vjp = jax.vjp(lambda xx: conv(xx, w, pad), x)
    dx, = vjp(g)
    n, h, wd, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    def one(carry, xs):
        xc, gc = xs
        cols = jnp.concatenate([xc[:, i:i + h, j:j + wd, :] for i in range(k) for j in range(k)], -1)
        return carry + jnp.dot(cols.reshape(-1, k * k * cin).T, gc.reshape(-1, cout)), None
    nb = n // chunk
    dw, _ = lax.scan(one, jnp.zeros((k * k * cin, cout), x.dtype),
                     (xp.reshape(nb, chunk, *xp.shape[1:]), g.reshape(nb, chunk, *g.shape[1:])))
    return dx, dw.reshape(k, k, cin, cout)

conv_im2col_dw.defvjp(_fwd, _bwd)

def timeit(f, *a, reps=3):
    f = jax.jit(f); jax.block_until_ready(f(*a))
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    layers = [(128, 3, 8, 5), (64, 3, 16, 5), (128, 8, 26, 5), (128, 24, 8, 5), (128, 8, 8, 5), (64, 48, 16, 5), (128, 9, 9, 9), (128, 26, 9, 5)]
    for (s, cin, cout, k) in layers:
        x = jax.random.normal(jax.random.key(0), (n, s, s, cin)); w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.1
        gx = lambda x, w: jax.grad(lambda x, w: jnp.sum(jnp.tanh(conv(x, w, k // 2))), (0, 1))(x, w)
        gc = lambda x, w: jax.grad(lambda x, w: jnp.sum(jnp.tanh(conv_im2col_dw(x, w, k // 2, 4))), (0, 1))(x, w)
        a, b = gx(x, w), jax.jit(gc)(x, w)
        err = float(jnp.max(jnp.abs(a[1] - b[1])) / jnp.max(jnp.abs(a[1])))
        t1 = []; t2 = []
        for _ in range(2):
            t1.append(timeit(gx, x, w)); t2.append(timeit(gc, x, w))
        print(f"{s}x{s} {cin}->{cout} k{k}: xla {min(t1)*1e3:.0f} ms, im2col-dW {min(t2)*1e3:.0f} ms, ratio {min(t1)/min(t2):.2f}, rel err {err:.1e}", flush=True)
