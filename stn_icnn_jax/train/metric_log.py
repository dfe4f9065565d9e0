"""The run's metric records: JSON lines plus TensorBoard events (process 0 only)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np


class MetricLog:
    """``workdir/metrics.jsonl`` and ``workdir/tensorboard/``, written by process 0.

    Each record is one line ``{"kind", "stage", "step", "time", **values}`` with kind
    ``train`` (step metrics), ``validation`` (per epoch: ``f1`` or ``theta_loss``,
    ``selection``, ``best``), ``test``, ``time`` (seconds per stage and per part of it)
    or ``error``; the finite numbers among the values are also TensorBoard scalars
    tagged ``<kind>/<stage>/<key>`` (nested keys joined by ``/``). Non-finite numbers
    are written as ``null`` (strict JSON).
    """

    def __init__(self, workdir: Path):
        self._active = jax.process_index() == 0
        if not self._active:
            return
        from tensorboardX import SummaryWriter

        self._jsonl = open(Path(workdir) / "metrics.jsonl", "a")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, kind: str, stage: str, step: int, values: dict) -> None:
        if not self._active:
            return
        prefix = f"{kind}/{stage}"
        record = {"kind": kind, "stage": stage, **values}
        line = json_safe({**record, "step": int(step), "time": time.time()})
        self._jsonl.write(json.dumps(line, allow_nan=False) + "\n")
        self._jsonl.flush()
        for key, value in _flatten(values).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):  # e.g. the F1 of a set absent from a split
                self._tb.add_scalar(f"{prefix}/{key}", value, step)
        self._tb.flush()

    def close(self) -> None:
        if self._active:
            self._jsonl.close()
            self._tb.close()


def _flatten(record: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def json_safe(value: Any) -> Any:
    """NaN / inf (e.g. F1 of a set absent from a split) -> None: strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
