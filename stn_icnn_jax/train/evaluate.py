"""Scoring a split: the paper's pooled F1 (or the localiser's theta loss), across hosts.

Every reported F1 comes from here. Each record of the split is scored exactly once,
whatever the number of processes: process ``p`` of ``P`` takes records ``p, p + P, ...``
and all processes run the same number of batches (a process whose share is smaller
feeds filler rows that are not counted). The stage's evaluation step counts a ``[target,
pred]`` confusion matrix per example with :func:`stn_icnn_jax.metrics.confusion_matrix`
(inside each example's own image region on the canvas: the padding is not scored), the
matrices are summed over the split and over all processes, and
:func:`stn_icnn_jax.metrics.f1_scores` turns the pooled matrix into the merged-class F1
of the paper's Table 2 (docs/authors-code.md §4.1).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from stn_icnn_jax import metrics
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.taxonomy import NUM_CLASSES
from stn_icnn_jax.train import distributed
from stn_icnn_jax.train.stages import Stage
from stn_icnn_jax.train.step import make_eval_step


class EvalFunctions:
    """One jitted eval step per stage, shared by every validation pass and the final
    test evaluation (a new ``jax.jit`` of a new closure would compile again)."""

    def __init__(self, model: stn_icnn.STNiCNN, mesh):
        self._model, self._mesh, self._fns = model, mesh, {}

    def __call__(self, stage: Stage):
        if stage.name not in self._fns:
            self._fns[stage.name] = jax.jit(
                make_eval_step(self._model, stage),
                in_shardings=(distributed.replicated(self._mesh),
                              distributed.batch_sharded(self._mesh)),
            )
        return self._fns[stage.name]


def _local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a batch-sharded global array, in order."""
    if jax.process_count() == 1:
        return np.asarray(x)
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def _pad_batch(batch: dict, size: int) -> tuple[dict, int]:
    """Pads a short last batch to ``size`` rows by repeating row 0; returns the valid count."""
    valid = len(next(iter(batch.values())))
    if valid == size:
        return batch, valid
    return {k: np.concatenate([v, np.repeat(v[:1], size - valid, axis=0)])
            for k, v in batch.items()}, valid


class ProcessShard:
    """Records ``index, index + count, ...`` of a random-access source (a view)."""

    def __init__(self, source: Any, index: int, count: int):
        self._source, self._index, self._count = source, index, count

    def __len__(self) -> int:
        return len(range(self._index, len(self._source), self._count))

    def __getitem__(self, i: int):
        return self._source[self._index + int(i) * self._count]


def _fillers(source: Any, features, input_config: input_pipeline.InputConfig):
    """Endless ``(batch, 0)``: record 0, laid out as the others, in rows that are not
    counted (for a process whose share of the split is done)."""
    with input_pipeline.iterate(input_pipeline.make_loader([source[0]], features,
                                                          input_config)) as batches:
        filler = next(batches)
    while True:
        yield _pad_batch(filler, input_config.batch_size)[0], 0


def _batches(source: Any, features, input_config: input_pipeline.InputConfig):
    """``(batch, valid rows)`` of this process's share of ``source``, padded to full
    batches, until every process's share is done (a process whose share is done gets
    filler batches meanwhile, so every process yields the same number); stops every
    process when a record of one process's share cannot be read.

    The batches are counted as they come, not computed from the share's length: with
    ``worker_count > 0`` grain batches inside each worker process, so a share comes in
    more, smaller batches than ``len / batch_size``."""
    shard = ProcessShard(source, jax.process_index(), jax.process_count())
    fillers = None
    with input_pipeline.iterate(input_pipeline.make_loader(shard, features,
                                                          input_config)) as own:
        while True:
            batch, any_left = distributed.next_on_all_processes(own)
            if not any_left:
                return
            if batch is None:
                fillers = fillers or _fillers(source, features, input_config)
                yield next(fillers)
            else:
                yield _pad_batch(batch, input_config.batch_size)


def _sum_over_processes(x: np.ndarray) -> np.ndarray:
    if jax.process_count() == 1:
        return x
    return np.asarray(multihost_utils.process_allgather(x)).sum(0)


def evaluate(stage: Stage, eval_fn, variables: dict, source: Any,
             input_config: input_pipeline.InputConfig, mesh) -> dict:
    """Pooled confusion -> F1 (or mean theta loss for the localiser) over a split.

    Args:
      stage: whose evaluation step ``eval_fn`` is (``EvalFunctions(model, mesh)(stage)``).
      variables: ``{"params", "batch_stats"}``.
      source: the split's random-access records.
      input_config: the evaluation layout (no augmentation, no shuffle); its batch size
        is this process's share of the global evaluation batch.
      mesh: the device mesh.

    Returns:
      ``{"f1": {set: F1}, "pixels": n}`` or ``{"theta_loss": mean}``.
    """
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    theta_losses: list = []
    for batch, valid in _batches(source, stage.eval_features, input_config):
        out = eval_fn(variables, distributed.to_global(batch, mesh))
        if "theta_loss" in out:
            theta_losses += list(_local_rows(out["theta_loss"])[:valid])
        else:
            confusion += _local_rows(out["confusion"])[:valid].astype(np.int64).sum(0)
    if stage.selection == "theta_loss":
        total = _sum_over_processes(np.array([sum(theta_losses), len(theta_losses)], np.float64))
        return {"theta_loss": float(total[0] / max(total[1], 1))}
    confusion = _sum_over_processes(confusion)
    return {"f1": metrics.f1_scores(confusion), "pixels": int(confusion.sum())}
