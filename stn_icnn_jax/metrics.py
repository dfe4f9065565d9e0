"""The paper's F1 protocol: a confusion matrix pooled over the test set, merged-class F1.

Exactly as docs/authors-code.md §4.1 (the authors' ``f1_score.py``): build a
``[target, pred]`` histogram per image, **add** the histograms over all test images,
then for each evaluated set ``S`` of class indices

    F1_S = 2 * sum_{g in S, p in S} hist[g, p] / (sum_{g in S} rows + sum_{p in S} cols)

so confusions inside a set count as true positives (a left eye predicted as right eye
counts for "eyes"; a nose predicted as an eye counts for "overall").

The classes and the evaluated sets are :mod:`stn_icnn_jax.taxonomy`'s ``CLASS_NAMES``
and ``F1_SETS``.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from stn_icnn_jax.taxonomy import F1_SETS, NUM_CLASSES


def confusion_matrix(pred: jax.Array, target: jax.Array, num_classes: int = NUM_CLASSES) -> jax.Array:
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


def mask_outside(label: jax.Array, origin: jax.Array, size: jax.Array) -> jax.Array:
    """Sets the pixels outside each example's image region to -1 (not counted).

    Args:
      label: ``(N, H, W)`` integer labels on the canvas.
      origin: ``(N, 2)`` (top, left) of each image on the canvas.
      size: ``(N, 2)`` (height, width) of each image.

    Returns:
      ``(N, H, W)`` int32: ``label`` inside ``[top, top + h) x [left, left + w)``, -1 outside.
    """
    label = jnp.asarray(label, jnp.int32)
    origin = jnp.asarray(origin, jnp.int32)[:, :, None]
    size = jnp.asarray(size, jnp.int32)[:, :, None]
    rows = jnp.arange(label.shape[1])[None, None]
    cols = jnp.arange(label.shape[2])[None, None]
    in_rows = (rows >= origin[:, 0:1]) & (rows < origin[:, 0:1] + size[:, 0:1])  # (N, 1, H)
    in_cols = (cols >= origin[:, 1:2]) & (cols < origin[:, 1:2] + size[:, 1:2])  # (N, 1, W)
    inside = in_rows[:, 0, :, None] & in_cols[:, 0, None, :]
    return jnp.where(inside, label, -1)


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
    return "\n".join([head, rule, _f1_row(scores, names)])


def _f1_row(scores: Mapping[str, float], names: list[str]) -> str:
    return "| " + " | ".join(f"{scores[n]:.3f}" for n in names) + " |"


def format_f1_rows(rows: Mapping[str, Mapping[str, float] | str],
                   first_column: str = "model") -> str:
    """A Markdown table with one labelled row per entry of ``rows`` (label -> scores in
    the paper's column order, or a text shown across the row, e.g. "not trained")."""
    names = next((list(v) for v in rows.values() if not isinstance(v, str)), list(F1_SETS))
    lines = ["| " + " | ".join([first_column, *names]) + " |",
             "|" + "---|" * (len(names) + 1)]
    for label, scores in rows.items():
        if isinstance(scores, str):
            lines.append(f"| {label} | {scores} |" + " |" * (len(names) - 1))
        else:
            lines.append(f"| {label} " + _f1_row(scores, names))
    return "\n".join(lines)
