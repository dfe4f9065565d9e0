"""The paper's F1 protocol: a confusion matrix pooled over the test set, merged-class F1.

Exactly as notes.md section 4.1 (the authors' ``f1_score.py``): build a
``[target, pred]`` histogram per image, **add** the histograms over all test images,
then for each evaluated set ``S`` of class indices

    F1_S = 2 * sum_{g in S, p in S} hist[g, p] / (sum_{g in S} rows + sum_{p in S} cols)

so confusions inside a set count as true positives (a left eye predicted as right eye
counts for "eyes"; a nose predicted as an eye counts for "overall").

Class order (9 classes): 0 background (with skin and hair), 1 left brow, 2 right brow,
3 left eye, 4 right eye, 5 nose, 6 upper lip, 7 inner mouth, 8 lower lip.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

#: The evaluated class sets of the paper's Table 2, in its column order.
F1_SETS: Mapping[str, tuple[int, ...]] = {
    "eyes": (3, 4),
    "brows": (1, 2),
    "nose": (5,),
    "inner_mouth": (7,),
    "upper_lip": (6,),
    "lower_lip": (8,),
    "mouth": (6, 7, 8),
    "overall": (1, 2, 3, 4, 5, 6, 7, 8),
}


def confusion_matrix(pred: jax.Array, target: jax.Array, num_classes: int = 9) -> jax.Array:
    """Counts ``[target, pred]`` of integer label maps.

    Args:
      pred: integer labels, any shape (e.g. ``(N, H, W)``), values in ``[0, num_classes)``.
      target: integer labels of the same shape.
      num_classes: K.

    Returns:
      ``(K, K)`` int32 counts, ``out[t, p]`` = number of pixels with target t and
      prediction p. Sum these over a test set (in numpy int64 for large sets) to pool.
      Values outside ``[0, K)`` are not counted.
    """
    pred = jnp.asarray(pred)
    target = jnp.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    if not (jnp.issubdtype(pred.dtype, jnp.integer) and jnp.issubdtype(target.dtype, jnp.integer)):
        raise ValueError(
            f"pred and target must be integer label maps, got {pred.dtype} and {target.dtype}"
        )
    pred = pred.reshape(-1).astype(jnp.int32)
    target = target.reshape(-1).astype(jnp.int32)
    valid = (pred >= 0) & (pred < num_classes) & (target >= 0) & (target < num_classes)
    index = jnp.where(valid, target * num_classes + pred, 0)
    counts = jnp.zeros((num_classes * num_classes,), jnp.int32).at[index].add(valid.astype(jnp.int32))
    return counts.reshape(num_classes, num_classes)


def f1_scores(confusion, sets: Mapping[str, tuple[int, ...]] = F1_SETS) -> dict[str, float]:
    """Merged-class F1 per evaluated set from a pooled ``[target, pred]`` confusion matrix.

    Args:
      confusion: ``(K, K)`` counts with K >= 9 (numpy or jax; summed over the test set).
      sets: name -> class indices; defaults to the paper's Table 2 columns.

    Returns:
      dict with keys ``eyes, brows, nose, inner_mouth, upper_lip, lower_lip, mouth,
      overall`` (or those of ``sets``). A set absent from both target and prediction
      has an undefined F1, reported as ``nan``.
    """
    hist = np.asarray(confusion, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {hist.shape}")
    k = hist.shape[0]
    scores = {}
    for name, members in sets.items():
        idx = np.asarray(members)
        if idx.max() >= k:
            raise ValueError(f"set {name!r} names class {idx.max()} but confusion has {k} classes")
        true_pos = hist[np.ix_(idx, idx)].sum()
        denom = hist[idx, :].sum() + hist[:, idx].sum()
        scores[name] = float(2.0 * true_pos / denom) if denom > 0 else float("nan")
    return scores


def format_f1_table(scores: Mapping[str, float]) -> str:
    """A one-row Markdown table in the paper's column order."""
    names = list(scores)
    head = "| " + " | ".join(names) + " |"
    rule = "|" + "---|" * len(names)
    row = "| " + " | ".join(f"{scores[n]:.3f}" for n in names) + " |"
    return "\n".join([head, rule, row])
