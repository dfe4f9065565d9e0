"""Losses of STN-iCNN: segmentation (softmax CE or the paper's BCE), SmoothL1 on theta,
and the joint part loss L_F.

Where the paper and the authors' code disagree (docs/authors-code.md §7.5):
- the paper's eqs. 16-17 write an average *binary* cross entropy; the authors' code uses
  multi-class softmax cross entropy (``nn.CrossEntropyLoss``) everywhere.
  ``segmentation_loss(..., kind="bce")`` is the paper's, ``kind="ce"`` the authors'.
  BCE here is per class channel: sigmoid(logits) against the one-hot target, averaged
  over pixels and channels (eq. 16's 1/N sum of t log p + (1-t) log(1-p)).
- eq. 17 averages the part losses (1/N sum_i); the authors sum them
  (``backward(ones(6))``): ``joint_loss(..., reduction="mean"|"sum")``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import optax

SegLossKind = Literal["bce", "ce"]


def _check_logits_labels(logits: jax.Array, labels: jax.Array) -> None:
    if logits.ndim != labels.ndim + 1 or logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"logits (..., C) and integer labels (...) disagree: {logits.shape} vs {labels.shape}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-pixel softmax CE ``logsumexp(z) - z[label]``, ``(...)``: optax's formula, with
    the label's logit picked by a slice (``[..., 0]``) instead of optax's ``take(0)``.
    The gradient of ``take`` is a scatter that XLA constant-folds pixel by pixel at
    compile time: grad of the mean CE over (32, 128, 128, 9) logits compiled in 40 s
    with optax's and 3 s with this one here (experiments/results/bench_compile_ce.md)."""
    picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return jax.nn.logsumexp(logits, axis=-1) - picked


def segmentation_loss(
    logits: jax.Array, labels: jax.Array, kind: SegLossKind = "bce",
    foreground_weight: float = 1.0,
) -> jax.Array:
    """Mean segmentation loss.

    Args:
      logits: ``(..., C)`` unnormalised scores (e.g. ``(N, H, W, C)``).
      labels: ``(...)`` integer classes in ``[0, C)``; class 0 is background.
      kind: ``"bce"`` (paper eq. 16) or ``"ce"`` (authors' softmax cross entropy).
      foreground_weight: weight of every pixel whose label is not 0 (background pixels
        weigh 1); the loss is then ``sum(w * l) / sum(w)``, the weighted mean of PyTorch's
        ``CrossEntropyLoss(weight=...)``. 1.0 (default; the paper's and the authors') is
        the plain mean. Face parts are about 1% of a 128x128 rough map, so the plain mean
        is dominated by background.

    Returns:
      scalar loss in at least float32 (bf16 logits are widened; float64 stays), the
      (weighted) mean over all pixels (and channels for BCE).
    """
    _check_logits_labels(logits, labels)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    if kind == "ce":
        per_pixel = softmax_cross_entropy(logits, labels)
    elif kind == "bce":
        onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
        per_pixel = optax.sigmoid_binary_cross_entropy(logits, onehot).mean(-1)
    else:
        raise ValueError(f"unknown segmentation loss kind {kind!r}; use 'bce' or 'ce'")
    if foreground_weight == 1.0:
        return per_pixel.mean()
    weights = jnp.where(labels > 0, foreground_weight, 1.0).astype(per_pixel.dtype)
    return (weights * per_pixel).sum() / weights.sum()


def smooth_l1(pred: jax.Array, target: jax.Array, beta: float = 1.0) -> jax.Array:
    """Mean SmoothL1 (eqs. 19-20) over all entries.

    ``u = 0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``; beta=1 is the
    paper's (and torch's default). For theta ``(N, 6, 2, 3)`` the mean runs over all
    N*6*2*3 entries, masked zeros included, as the authors' ``nn.SmoothL1Loss()``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    dtype = jnp.promote_types(jnp.promote_types(pred.dtype, target.dtype), jnp.float32)
    diff = jnp.abs(pred.astype(dtype) - target.astype(dtype))
    return jnp.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta).mean()


def joint_loss(
    part_logits: Sequence[jax.Array],
    part_labels: Sequence[jax.Array],
    kind: SegLossKind = "bce",
    reduction: Literal["mean", "sum"] = "mean",
    foreground_weight: float = 1.0,
) -> jax.Array:
    """The system loss L_F (eq. 17) over the N parts.

    Args:
      part_logits: N arrays ``(B, h, w, C_i)`` (C_i may differ per part).
      part_labels: N integer arrays ``(B, h, w)``, the label crops made with the same theta.
      kind: per-part segmentation loss, see :func:`segmentation_loss`.
      reduction: ``"mean"`` over parts (paper eq. 17) or ``"sum"`` (authors).
      foreground_weight: see :func:`segmentation_loss` (per part, its class 0 is background).
    """
    if len(part_logits) != len(part_labels) or not part_logits:
        raise ValueError(
            f"need one label crop per part: {len(part_logits)} logits, {len(part_labels)} labels"
        )
    losses = jnp.stack(
        [segmentation_loss(z, j, kind, foreground_weight)
         for z, j in zip(part_logits, part_labels)]
    )
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    raise ValueError(f"unknown reduction {reduction!r}; use 'mean' or 'sum'")
