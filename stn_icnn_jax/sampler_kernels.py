"""The separable sampling kernel shared by ``sampler.crop`` and ``sampler.paste_window``.

For the model's constrained theta (eq. 15) source rows depend only on output rows and
source columns only on output columns, so sampling is two 1-D interpolations.  B parts
each sample a source ``src_b`` (S, T, C) at pixel rows ``iy`` (B, h) and columns
``ix`` (B, w):

    out[b, i, j] = sum_{a, e} wy_a[b, i] wx_e[b, j] src_b[ry[b, i] + a, rx[b, j] + e]

with the taps ``ry = floor(iy)`` and weights ``wy_0 = 1 - fy``, ``wy_1 = fy``
(``fy = iy - ry``; likewise x) for bilinear, or the single tap ``round(iy)`` (half to
even) with weight 1 for nearest.  Taps outside the source read 0 (zero padding).  The
conventions (floor / floor + 1 taps, one-sided gradients at integer coordinates) are
those of ``torch.nn.functional.grid_sample``; see ``sampler``.

What part b samples (``sample``'s ``faces`` / ``window``):

* own source (``faces=None``): ``src_b = image[b]`` (paste: each part is its own source).
* window (``faces`` (B,), ``window`` (wh, ww)): the static-size window of face
  ``image[faces[b]]`` whose origin covers part b's in-image taps (crop's hot path;
  exact iff ``windows_fit``).
* whole face (``faces`` (B,), ``window=None``): ``src_b = image[faces[b]]`` (crop's
  fallback; several parts share a face and the face is never copied per part).

The custom VJP computes the forward pass and the coordinate gradients with 1-D gathers
(rows = contiguous slices of T*C values, then columns = slices of C), and the source
gradient as small weighted one-hot matmuls ``Ay^T g Ax`` per part (own sources and
windows; windows are then added into the face with ``dynamic_update_slice``) or, for
whole faces, as a scatter-add of the taps.  Parts are processed in chunks of
``chunk_size`` (a ``lax.scan``; None: one step) so that every temporary stays small;
the coordinate and source gradients are separate scans, so XLA drops the latter when
only theta needs a gradient.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["DEFAULT_CHUNK_SIZE", "floor_index", "taps", "windows_fit", "sample"]

# Tuned for XLA:CPU's allocator behaviour: XLA:CPU allocates its temporaries afresh on
# every call, and glibc serves blocks of 32 MB or more with a fresh mmap whose page
# faults (~0.5 ms/MB on a VM) cost more than the arithmetic; chunks of 16 parts keep
# every temporary of the 81x81-crops-from-512x512 case below that, so they are recycled
# from the heap.  Accelerators may prefer larger chunks (fewer, bigger steps).
DEFAULT_CHUNK_SIZE = 16

_HI = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------
# Taps and windows.
# --------------------------------------------------------------------------------------
def floor_index(f, size: int):
    """Integer index of an already floored / rounded coordinate, safe for any float.

    Clips before the int cast (huge / inf coordinates); clipped indices are outside the
    image anyway, so they are masked and neither values nor gradients change.
    """
    return jnp.clip(f, -2, size + 1).astype(jnp.int32)


def taps(coord, size: int, mode: str):
    """Pixel coordinates (B, k) -> (first tap index (B, k) int32, fraction or None)."""
    if mode == "nearest":
        return floor_index(jnp.round(coord), size), None
    f = jnp.floor(coord)
    return floor_index(f, size), coord - f


def _window_origin(idx, size: int, win: int, mode: str):
    """Static-size window origin (B,) covering the in-image taps idx (B, k); fits flag (B,)."""
    hi = jnp.max(idx, axis=-1) + (0 if mode == "nearest" else 1)
    lo = jnp.maximum(jnp.min(idx, axis=-1), 0)
    o = jnp.clip(lo, 0, size - win)
    fits = jnp.minimum(hi, size - 1) < o + win
    return o, fits


def windows_fit(iy, ix, image_size, window, mode: str):
    """Scalar bool: every part's in-image taps lie inside its (wh, ww) window."""
    fits = [
        _window_origin(taps(coord, size, mode)[0], size, win, mode)[1]
        for coord, size, win in zip((iy, ix), image_size, window)
    ]
    return jnp.all(fits[0]) & jnp.all(fits[1])


# --------------------------------------------------------------------------------------
# The kernel's public entry point.
# --------------------------------------------------------------------------------------
def sample(image, iy, ix, *, mode: str, faces=None, window=None,
           chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Separable sampling: image (N, H, W, C), iy (B, h), ix (B, w) -> (B, h, w, C).

    iy / ix are pixel coordinates in the frame of image[.] (pixel c has its centre at
    c).  ``faces=None``: B == N and part b samples image[b].  ``faces`` (B,) int: part b
    samples image[faces[b]], from a static ``window`` (wh, ww) around its taps if given
    (taps outside the window read 0; exact iff ``windows_fit``), else the whole face.
    Differentiable in image, iy and ix (nearest: zero coordinate gradient).  ``mode``,
    ``window`` and ``chunk_size`` (parts per ``lax.scan`` step; None: all in one step)
    are static.
    """
    own = faces is None
    if own and window is not None:
        raise ValueError("window needs faces: own sources are sampled whole")
    hh, ww = image.shape[1:3]
    ry, fy = taps(iy, hh, mode)
    rx, fx = taps(ix, ww, mode)
    nb = jnp.arange(ry.shape[0], dtype=jnp.int32) if own else faces.astype(jnp.int32)
    starts = None
    if window is not None:
        window = tuple(window)
        oy = _window_origin(ry, hh, window[0], mode)[0]
        ox = _window_origin(rx, ww, window[1], mode)[0]
        ry = ry - oy[:, None]
        rx = rx - ox[:, None]
        starts = jax.lax.stop_gradient(jnp.stack([oy, ox], -1))
    fyx = None if mode == "nearest" else (fy, fx)
    return _kernel(image, nb, starts, ry, rx, fyx, window, chunk_size, own)


# --------------------------------------------------------------------------------------
# Gathers (forward pass and coordinate gradients).
# --------------------------------------------------------------------------------------
def _rows(src, r, nb=None):
    """src (B, S, T, C), r (B, h) int -> (B, h, T, C); rows outside [0, S) are 0.

    With nb (B,), src is (N, S, T, C) and part b reads face nb[b] (no per-part copy).
    """
    s = src.shape[1]
    valid = (r >= 0) & (r < s)
    b = (jnp.arange(src.shape[0]) if nb is None else nb)[:, None]
    v = src[b, jnp.clip(r, 0, s - 1)]
    return jnp.where(valid[:, :, None, None], v, jnp.zeros((), src.dtype))


def _cols(x, r):
    """x (B, h, T, C), r (B, w) int -> (B, h, w, C); columns outside [0, T) are 0."""
    t = x.shape[2]
    valid = (r >= 0) & (r < t)
    v = jax.vmap(lambda xb, rb: xb[:, rb])(x, jnp.clip(r, 0, t - 1))
    return jnp.where(valid[:, None, :, None], v, jnp.zeros((), x.dtype))


def _rows_interp(src, ry, fy, nb=None):
    fy = fy[:, :, None, None]
    return _rows(src, ry, nb) * (1 - fy) + _rows(src, ry + 1, nb) * fy


def _values(src, ry, rx, fy, fx, nb=None):
    """Sampled values (B, h, w, C); fy / fx None means nearest."""
    if fy is None:
        return _cols(_rows(src, ry, nb), rx)
    t = _rows_interp(src, ry, fy, nb)
    fx = fx[:, None, :, None]
    return _cols(t, rx) * (1 - fx) + _cols(t, rx + 1) * fx


def _d_fx(src, ry, rx, fy, g, nb=None):
    t = _rows_interp(src, ry, fy, nb)
    return jnp.sum(g * (_cols(t, rx + 1) - _cols(t, rx)), axis=(1, 3))


def _d_fy(src, ry, rx, fx, g, nb=None):
    d = _rows(src, ry + 1, nb) - _rows(src, ry, nb)
    fx = fx[:, None, :, None]
    return jnp.sum(g * (_cols(d, rx) * (1 - fx) + _cols(d, rx + 1) * fx), axis=(2, 3))


# --------------------------------------------------------------------------------------
# Transposes (source gradient).
# --------------------------------------------------------------------------------------
def _tap_weights(r, f, dtype):
    """Weights of the taps r, r + 1: (1 - f, f) for bilinear, (1, None) for nearest."""
    if f is None:
        return jnp.ones(r.shape, dtype), None
    return 1 - f, f


def _onehot(r, w0, w1, n, dtype):
    """(B, k) indices and weights -> (B, k, n) interpolation matrix."""
    k = jnp.arange(n, dtype=r.dtype)
    m = w0[..., None].astype(dtype) * (r[..., None] == k).astype(dtype)
    if w1 is not None:
        m = m + w1[..., None].astype(dtype) * (r[..., None] + 1 == k).astype(dtype)
    return m


def _src_grad(g, ry, rx, wy, wx, shape):
    """Transpose of the separable interpolation: Ay^T g Ax, g (B, h, w, C) -> shape."""
    b, s, t, c = shape
    h = g.shape[1]
    ax = _onehot(rx, *wx, t, g.dtype)  # (B, w, T)
    ay = _onehot(ry, *wy, s, g.dtype)  # (B, h, S)
    d_t = jnp.einsum("bijc,bjt->bitc", g, ax, precision=_HI)  # (B, h, T, C)
    d = jnp.einsum("bis,bik->bsk", ay, d_t.reshape(b, h, t * c), precision=_HI)
    return d.reshape(shape)


def _scatter_taps(acc, nb, ry, rx, wy, wx, g):
    """acc (N, H, W, C) += the transpose of separable sampling at taps (ry + a, rx + e)."""
    _, hh, ww, _ = acc.shape
    b = nb[:, None, None]
    for a, wya in enumerate(wy):
        if wya is None:
            continue
        yi = ry + a
        wya = jnp.where((yi >= 0) & (yi < hh), wya, 0)
        for e, wxe in enumerate(wx):
            if wxe is None:
                continue
            xi = rx + e
            wxe = jnp.where((xi >= 0) & (xi < ww), wxe, 0)
            upd = g * (wya[:, :, None, None] * wxe[:, None, :, None]).astype(g.dtype)
            yc = jnp.clip(yi, 0, hh - 1)[:, :, None]
            xc = jnp.clip(xi, 0, ww - 1)[:, None, :]
            acc = acc.at[b, yc, xc].add(upd.astype(acc.dtype))  # invalid taps add 0
    return acc


def _add_windows(acc, d_win, nb, starts):
    """acc (N, H, W, C) += d_win (K, wh, ww, C) at face nb[i], origin starts[i] (no scatter)."""
    zero = jnp.zeros((), starts.dtype)

    def add(i, acc):
        at = (nb[i], starts[i, 0], starts[i, 1], zero)
        cur = jax.lax.dynamic_slice(acc, at, (1, *d_win.shape[1:]))
        return jax.lax.dynamic_update_slice(acc, cur + d_win[i][None], at)

    return jax.lax.fori_loop(0, d_win.shape[0], add, acc)


# --------------------------------------------------------------------------------------
# Chunking over parts.
# --------------------------------------------------------------------------------------
def _chunks(x, k):
    """(B, ...) -> (ceil(B / k), k, ...), zero-padded."""
    b = x.shape[0]
    m = -(-b // k)
    x = jnp.pad(x, [(0, m * k - b)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(m, k, *x.shape[1:])


def _unchunk(x, b):
    return x.reshape(-1, *x.shape[2:])[:b]


def _source(image, nb, starts, window):
    """What a chunk samples: its parts' windows, or (window None) the faces via nb."""
    if window is None:
        return image, nb
    c = image.shape[-1]
    zero = jnp.zeros((), starts.dtype)
    slc = lambda i, s: jax.lax.dynamic_slice(image, (i, s[0], s[1], zero), (1, *window, c))[0]
    return jax.vmap(slc)(nb, starts), None


def _scan_chunks(step, init, arrays, chunk_size):
    """lax.scan of step over chunks of the per-part arrays (None entries stay None)."""
    b = arrays[0].shape[0]
    k = b if chunk_size is None else min(chunk_size, b)
    xs = jax.tree.map(lambda a: _chunks(a, k), arrays)
    carry, ys = jax.lax.scan(step, init, xs)
    return carry, jax.tree.map(lambda y: _unchunk(y, b), ys)


# --------------------------------------------------------------------------------------
# The custom-VJP kernel.
# --------------------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _kernel(image, nb, starts, ry, rx, fyx, window, chunk_size, own):
    """Sampling of image (N, H, W, C) by B parts (see ``sample``); ry / rx (B, h) / (B, w)
    are tap indices relative to each part's source, fyx = (fy, fx) or None (nearest).

    Own sources are read as faces nb = arange(B); ``own`` only changes the gradient.
    """
    del own
    fy, fx = fyx if fyx is not None else (None, None)

    def step(_, x):
        nb_, st, ry_, rx_, fy_, fx_ = x
        src, sb = _source(image, nb_, st, window)
        return None, _values(src, ry_, rx_, fy_, fx_, sb)

    out = _scan_chunks(step, None, (nb, starts, ry, rx, fy, fx), chunk_size)[1]
    return out.astype(image.dtype)


def _kernel_fwd(image, nb, starts, ry, rx, fyx, window, chunk_size, own):
    out = _kernel(image, nb, starts, ry, rx, fyx, window, chunk_size, own)
    return out, (image, nb, starts, ry, rx, fyx)


def _kernel_bwd(window, chunk_size, own, res, g):
    image, nb, starts, ry, rx, fyx = res
    d_fyx = None
    if fyx is not None:
        d_fyx = _coord_grads(image, nb, starts, ry, rx, fyx, g, window, chunk_size)
    d_image = _image_grad(image, nb, starts, ry, rx, fyx, g, window, chunk_size, own)
    return d_image, None, None, None, None, d_fyx


_kernel.defvjp(_kernel_fwd, _kernel_bwd)


def _coord_grads(image, nb, starts, ry, rx, fyx, g, window, chunk_size):
    """Gradients (d_fy (B, h), d_fx (B, w)) of the bilinear kernel; a scan of its own."""
    fy, fx = fyx

    def step(_, x):
        nb_, st, ry_, rx_, fy_, fx_, g_ = x
        src, sb = _source(image, nb_, st, window)
        d_fx = _d_fx(src, ry_, rx_, fy_, g_, sb)
        # A barrier gives the second reduction its own copy of the gathers: XLA then
        # fuses each gather into its reduction instead of materialising the gathered
        # rows, which on CPU costs far more (fresh temp buffers) than gathering twice.
        src2, ry2, rx2, g2 = jax.lax.optimization_barrier((src, ry_, rx_, g_))
        return None, (_d_fy(src2, ry2, rx2, fx_, g2, sb), d_fx)

    d_fy, d_fx = _scan_chunks(step, None, (nb, starts, ry, rx, fy, fx, g), chunk_size)[1]
    return d_fy.astype(fy.dtype), d_fx.astype(fx.dtype)


def _image_grad(image, nb, starts, ry, rx, fyx, g, window, chunk_size, own):
    """Gradient (N, H, W, C) of the kernel w.r.t. the image, chunk by chunk.

    Own sources: each part's Ay^T g Ax is its own gradient.  Windows: the window
    gradients, added into an image-sized carry in place.  Whole faces: a scatter-add.
    """
    fy, fx = fyx if fyx is not None else (None, None)

    def step(acc, x):
        nb_, st, ry_, rx_, fy_, fx_, g_ = x
        wy, wx = _tap_weights(ry_, fy_, g_.dtype), _tap_weights(rx_, fx_, g_.dtype)
        if window is None and not own:
            return _scatter_taps(acc, nb_, ry_, rx_, wy, wx, g_), None
        shape = (g_.shape[0], *(image.shape[1:3] if own else window), image.shape[-1])
        d_src = _src_grad(g_, ry_, rx_, wy, wx, shape).astype(image.dtype)
        if own:
            return acc, d_src
        return _add_windows(acc, d_src, nb_, st), None

    init = None if own else jnp.zeros_like(image)
    acc, d_own = _scan_chunks(step, init, (nb, starts, ry, rx, fy, fx, g), chunk_size)
    return d_own if own else acc
