"""Weights files: a trained model in one file, without pickle.

A weights file holds what applying a model needs and nothing about training: the
variables (``params`` and BatchNorm ``batch_stats``), the run's configuration (JSON; the
model, input sizes and conventions are read from it) and a free-form ``record`` of how
the weights were made and what they scored. It is one msgpack document (flax
serialization): loading never unpickles anything.

``stn-icnn eval --weights``, ``stn-icnn parse --weights``, the bundled default weights
and ``stn-icnn port-weights`` all read and write this format::

    weights = load("model.stnw")
    model = weights.model()                      # STNiCNN built from weights.config
    labels = stn_icnn.parse(model, weights.variables, batch)["labels"]
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization

FORMAT = "stn-icnn-weights"
VERSION = 1
SUFFIX = ".stnw"


class WeightsFileError(ValueError):
    """A weights file that cannot be read (the message names the file and the problem)."""


@dataclasses.dataclass
class Weights:
    """A loaded weights file.

    Attributes:
      variables: ``{"params": ..., "batch_stats": ...}`` of numpy arrays.
      config: the run's ``ml_collections.ConfigDict`` (as ``stn-icnn train`` reads it).
      record: how the weights were made and what they scored (JSON-able dict).
    """

    variables: dict
    config: ml_collections.ConfigDict
    record: dict

    def model_config(self):
        """The typed model configuration (``STNiCNNConfig``); the localiser's
        ``init_params`` from ``record["localizer_init_params"]`` when present (the
        training set's mean part boxes: the centroid cropper's fallback)."""
        from stn_icnn_jax.config import build

        config = build.model_config(self.config)
        init = self.record.get("localizer_init_params")
        if init is None:
            return config
        localizer = dataclasses.replace(config.localizer,
                                        init_params=tuple(tuple(row) for row in init))
        return dataclasses.replace(config, localizer=localizer)

    def model(self):
        """The ``STNiCNN`` module these variables belong to."""
        from stn_icnn_jax.model import stn_icnn

        return stn_icnn.STNiCNN(self.model_config())


def _host_tree(tree: Any) -> Any:
    def leaf(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_data(0)
        return np.asarray(x)

    return jax.tree_util.tree_map(leaf, tree)


def _plain_dicts(tree: Any) -> Any:
    """Nested mappings (FrozenDict, ...) as plain dicts, leaves unchanged."""
    if hasattr(tree, "items"):
        return {str(k): _plain_dicts(v) for k, v in tree.items()}
    return tree


def save(path: str | Path, variables: dict, config: ml_collections.ConfigDict,
         record: dict | None = None) -> Path:
    """Writes ``variables`` (params and batch_stats), ``config`` and ``record`` to
    ``path`` atomically (a crash leaves the old file or none, never half a file)."""
    path = Path(path)
    missing = {"params", "batch_stats"} - set(variables)
    if missing:
        raise ValueError(f"variables need {sorted(missing)} (have {sorted(variables)})")
    document = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_json(sort_keys=True),
        "record": json.dumps(record or {}, sort_keys=True, allow_nan=False),
        "variables": _plain_dicts(_host_tree({k: variables[k] for k in ("params", "batch_stats")})),
    }
    data = serialization.msgpack_serialize(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def load(path: str | Path) -> Weights:
    """Reads a weights file written by :func:`save`; a missing, truncated or foreign
    file raises :class:`WeightsFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such weights file")
    try:
        document = serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # msgpack raises several types for damaged bytes
        raise WeightsFileError(f"{path}: not a readable weights file ({type(e).__name__}: {e})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise WeightsFileError(f"{path}: not an stn-icnn weights file (no '{FORMAT}' header)")
    if int(document.get("version", -1)) > VERSION:
        raise WeightsFileError(f"{path}: weights format version {document['version']} is newer "
                               f"than this package reads ({VERSION}); upgrade stn-icnn-jax")
    try:
        config = ml_collections.ConfigDict(json.loads(document["config"]))
        record = json.loads(document["record"])
        variables = {k: document["variables"][k] for k in ("params", "batch_stats")}
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsFileError(f"{path}: damaged weights file ({type(e).__name__}: {e})") from None
    return Weights(variables=variables, config=config, record=record)


def check_variables(weights: Weights, path: str | Path = "weights") -> None:
    """Raises :class:`WeightsFileError` listing every array whose name or shape differs
    from what ``weights.config``'s model expects."""
    from stn_icnn_jax.model import stn_icnn

    model = weights.model()
    template = jax.eval_shape(lambda: stn_icnn.init_variables(model, jax.random.key(0, impl="rbg")))
    want = {jax.tree_util.keystr(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_flatten_with_path(
                {k: template[k] for k in ("params", "batch_stats")})[0]}
    have = {jax.tree_util.keystr(p): tuple(np.shape(x))
            for p, x in jax.tree_util.tree_flatten_with_path(weights.variables)[0]}
    problems = [f"missing {k} {v}" for k, v in want.items() if k not in have]
    problems += [f"unexpected {k} {v}" for k, v in have.items() if k not in want]
    problems += [f"{k}: shape {have[k]}, the model expects {v}"
                 for k, v in want.items() if k in have and have[k] != v]
    if problems:
        raise WeightsFileError(f"{path}: the variables do not fit the model of its config: "
                               + "; ".join(problems))


def from_workdir(workdir: str | Path, stage: str | None = None) -> Weights:
    """The best variables after ``stage`` (default: the last stage of the run's
    ``stage_order`` that was trained) of the training run in ``workdir``, with the
    run's config and a record of each stage's progress (steps, best validation score)
    and the localiser's initial boxes (``localizer_init_params``).

    Raises ``evaluation.EvaluationError`` for a directory without checkpoints or a stage
    that was never trained.
    """
    from stn_icnn_jax import evaluation

    trained = evaluation.load_run(workdir, until=stage)
    done = [name for name, record in trained.records.items() if record is not None]
    if stage is None:
        stage = done[-1]
    if trained.records.get(stage) is None:
        raise evaluation.EvaluationError(
            f"{trained.workdir}: stage {stage} was never trained here; run `stn-icnn train "
            f"--config CONFIG --workdir {trained.workdir} --stage {stage}` with the run's config")
    record = {
        "made_by": "stn_icnn_jax.weights.from_workdir",
        "workdir": str(trained.workdir),
        "stage": stage,
        "stages": {name: trained.records[name] for name in done},
        "localizer_init_params": [list(row) for row in
                                  trained.model.config.localizer.init_params],
    }
    return Weights(variables=_host_tree(trained.variables[stage]), config=trained.config,
                   record=record)
