"""Scoring a trained model: the paper's Table 2 columns for a work directory or a weights
file (``stn-icnn eval``).

Every number comes from :func:`stn_icnn_jax.train.evaluate.evaluate` (the one confusion
path: each image parsed on the zero-padded canvas at its native resolution, a ``[target,
pred]`` confusion counted inside its own image region, pooled over the split, merged-class
F1) with one of the evaluation records of
:data:`stn_icnn_jax.train.stages.PARSE_EVALUATIONS`, which differ only in where the six
part crops come from:

- ``predicted``: L's theta (STN-iCNN);
- ``ground_truth``: eq. 21's theta at the labelled part centres (the part models alone);
- ``centroid``: the centroids of K's own rough mask (the original iCNN pipeline, the
  paper's "iCNN" baseline; ``stn_icnn.centroid_theta``, with its fallback for a part
  missing from the rough mask).

The three rows of the paper's Table 2 come from one work directory (:data:`TABLE2_ROWS`):
iCNN (centroid crops, the models after pre-training: the ``parts`` stage's best
checkpoint on top of K and L), STN-iCNN* (L's crops, the same models) and STN-iCNN (L's
crops after the ``end_to_end`` stage).

Expected failures (no checkpoints, a stage never trained, a dataset not built, a split
that does not exist) raise :class:`EvaluationError` with one line saying what to run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from stn_icnn_jax import metrics
from stn_icnn_jax import weights as weights_lib
from stn_icnn_jax.data.sources import SPLITS, load_sources, open_split, split_limit
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.train import distributed, evaluate, loop
from stn_icnn_jax.train import run as run_lib
from stn_icnn_jax.train.metric_log import json_safe
from stn_icnn_jax.train.stages import PARSE_EVALUATIONS, STAGE_NAMES, STAGES

#: Where the part crops come from (``--crops``).
CROPS: tuple[str, ...] = stn_icnn.THETA_SOURCES
#: Stages whose parameters include trained part models (``--stage``).
EVALUATED_STAGES: tuple[str, ...] = ("parts", "end_to_end")


class EvaluationError(ValueError):
    """An evaluation that cannot run; the message says which thing is missing and what
    to run."""


@dataclasses.dataclass(frozen=True)
class Table2Row:
    """One row of the paper's Table 2: the parameters after ``stage``, cropped by ``crops``."""

    name: str
    stage: str
    crops: str


TABLE2_ROWS: tuple[Table2Row, ...] = (
    Table2Row("iCNN", "parts", "centroid"),
    Table2Row("STN-iCNN*", "parts", "predicted"),
    Table2Row("STN-iCNN", "end_to_end", "predicted"),
)


@dataclasses.dataclass(frozen=True)
class DataChoice:
    """Which dataset to score instead of the run's own (``--data``, ``--data_dir``,
    ``--config``); None keeps the run's value."""

    name: str | None = None
    data_dir: str | None = None
    builder_config: str | None = None

    def apply(self, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
        """A copy of ``config`` reading this dataset (a TFDS build)."""
        config = ml_collections.ConfigDict(config.to_dict())
        if self.name is None and self.data_dir is None and self.builder_config is None:
            return config
        d = config.data
        if self.name is not None and self.name != d.name:
            d.builder_config = ""
        d.source = "tfds"
        d.name = self.name or d.name
        d.data_dir = self.data_dir if self.data_dir is not None else d.data_dir
        d.builder_config = self.builder_config if self.builder_config is not None \
            else d.builder_config
        d.num_train = d.num_validation = d.num_test = 0  # the run's limits were its data's
        return config


# --------------------------------------------------------------------------- data


def _dataset_label(config: ml_collections.ConfigDict) -> str:
    d = config.data
    if d.source == "synthetic_in_memory":
        return "synthetic_in_memory"
    return d.name + (f"/{d.builder_config}" if d.builder_config else "")


def split_source(config: ml_collections.ConfigDict, split: str) -> Any:
    """The random-access records of ``split`` of the configured dataset.

    Raises:
      EvaluationError: the dataset is unknown or not built, or has no such split.
    """
    d = config.data
    if d.source == "synthetic_in_memory":
        if split not in SPLITS:
            raise EvaluationError(f"split {split!r} does not exist in the in-memory synthetic "
                                  f"data; use one of {', '.join(SPLITS)}")
        return load_sources(config, show_progress=False, splits=(split,))[split]
    if d.source != "tfds":
        raise EvaluationError(f"unknown data.source {d.source!r}; use 'synthetic_in_memory' "
                              "or 'tfds'")
    import tensorflow_datasets as tfds

    from stn_icnn_jax import data as _registers_builders  # noqa: F401

    name = _dataset_label(config)
    try:
        builder = tfds.builder(name, data_dir=d.data_dir)
    except Exception as exc:  # TFDS raises several types for unknown names / configs
        raise EvaluationError(f"unknown dataset {name!r} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}); see `stn-icnn data list`") from None
    if not Path(str(builder.data_dir)).exists():
        build = f"stn-icnn data build {d.name}"
        build += f" --config {d.builder_config}" if d.builder_config else ""
        build += f" --data_dir {d.data_dir}" if d.data_dir else ""
        build += "" if d.name == "synthetic_faces" else " --manual_dir DIR"
        raise EvaluationError(f"dataset {name} is not built in {builder.data_dir_root}; "
                              f"run `{build}` first")
    splits = sorted(builder.info.splits)
    if split not in splits:
        raise EvaluationError(f"dataset {name} has no split {split!r}; it has "
                              f"{', '.join(splits)}")
    # damaged files: one error naming the file; config.data.num_<split> > 0: its first records
    return open_split(builder, d, split, split_limit(d, split))


# --------------------------------------------------------------------------- models


def read_run_config(workdir: Path) -> ml_collections.ConfigDict:
    """The configuration a training run recorded in ``workdir/config.json``."""
    path = Path(workdir) / "config.json"
    if not Path(workdir).is_dir():
        raise EvaluationError(f"{workdir}: no such work directory")
    if not path.is_file():
        raise EvaluationError(f"{workdir}: not a training work directory (no config.json); "
                              f"train first: stn-icnn train --config CONFIG --workdir {workdir}")
    try:
        return ml_collections.ConfigDict(json.loads(path.read_text()))
    except ValueError as exc:
        raise EvaluationError(f"{path}: damaged configuration ({exc})") from None


@dataclasses.dataclass
class TrainedRun:
    """What a training run left in a work directory.

    Attributes:
      workdir: the work directory.
      config: its configuration.
      model: the ``STNiCNN`` (its localiser's ``init_params`` hold the training set's
        mean part boxes, the centroid cropper's fallback).
      variables: per stage of ``config.stage_order``, the best variables after it (a
        network that neither it nor a stage before it runs holds zeros, or its initial
        values if the run's first stage has no checkpoint).
      records: per stage, how far it got (``train.run.restore_stage``), None if never
        trained.
    """

    workdir: Path
    config: ml_collections.ConfigDict
    model: stn_icnn.STNiCNN
    variables: dict[str, dict]
    records: dict[str, dict | None]

    def missing(self, stage: str, crops: str) -> list[str]:
        """The stages that must have been trained for ``stage``'s parameters with
        ``crops`` crops and were not (empty: ready)."""
        return [s for s in required_stages(stage, crops) if self.records.get(s) is None]

    def variables_for(self, stage: str, crops: str) -> dict:
        """The best variables after ``stage``; an :class:`EvaluationError` naming the
        first untrained stage it needs."""
        _check_trained(self.workdir, self.missing(stage, crops), stage, crops)
        return self.variables[stage]


def _check_trained(workdir: Path, missing: list[str], stage: str, crops: str) -> None:
    if missing:
        raise EvaluationError(
            f"{workdir}: stage {missing[0]} was never trained here (needed to evaluate "
            f"stage {stage} with {crops} crops); run `stn-icnn train --config CONFIG "
            f"--workdir {workdir} --stage {missing[0]}` with the run's config")


def stages_on_disk(workdir: Path) -> list[str]:
    """The stages with at least one checkpoint in ``workdir`` (no loading)."""
    def has_checkpoint(name):
        directory = Path(workdir) / name / "checkpoints"
        return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())

    return [name for name in STAGE_NAMES if has_checkpoint(name)]


def required_stages(stage: str, crops: str) -> list[str]:
    """The stages whose training the parameters after ``stage`` need for ``crops``
    crops: the end-to-end stage trains all networks; after pre-training, L's crops need
    K and L, the centroid crops K, the ground-truth crops only the part models."""
    if crops not in CROPS:
        raise EvaluationError(f"unknown crops {crops!r}; use one of {', '.join(CROPS)}")
    if stage not in EVALUATED_STAGES:
        raise EvaluationError(f"stage {stage!r} does not train the part models; evaluate "
                              f"one of {', '.join(EVALUATED_STAGES)}")
    if stage == "end_to_end":
        return ["end_to_end"]
    before = {"predicted": ["rough", "localizer"], "centroid": ["rough"], "ground_truth": []}
    return before[crops] + [stage]


def load_run(workdir: str | Path, mesh=None, until: str | None = None) -> TrainedRun:
    """The best variables after each stage a run in ``workdir`` trained (up to ``until``).

    Reads the run's training split (its mean part boxes initialise the model as training
    did). Raises :class:`EvaluationError` for a directory without checkpoints or a
    training dataset that is not built.
    """
    workdir = Path(workdir).expanduser().absolute()
    config = read_run_config(workdir)
    if not stages_on_disk(workdir):
        raise EvaluationError(f"{workdir}: no checkpoints (no stage was trained); train "
                              f"first: stn-icnn train --config CONFIG --workdir {workdir}")
    mesh = mesh or distributed.make_mesh(config.train.num_devices or None)
    sources = {"train": split_source(config, "train")}
    if config.stage_order and config.stage_order[0] in stages_on_disk(workdir):
        # the checkpoints replace the trained networks' arrays: only the structure is
        # needed (a network no stage has run yet holds zeros, below)
        model = run_lib.initial_model(config, sources)
        variables = jax.eval_shape(
            lambda: stn_icnn.init_variables(model, jax.random.key(0, impl="rbg")))
    else:
        model, variables = run_lib.initial_variables(config, sources, mesh)
    after, records = {}, {}
    for name in config.stage_order:
        variables, records[name] = run_lib.restore_stage(name, config, variables, sources,
                                                         workdir, mesh)
        after[name] = jax.tree.map(
            lambda x: jnp.zeros(x.shape, x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x,
            variables)
        if name == until:
            break
    return TrainedRun(workdir, config, model, after, records)


def with_part_models_of(k_and_l: TrainedRun, parts: TrainedRun) -> dict:
    """K and L after ``k_and_l``'s localizer stage with the part models after ``parts``'
    parts stage: another run's localiser (a sweep, another rough size) scored with the
    same part models. Both runs must build the same part models."""
    missing = [s for s in ("rough", "localizer") if k_and_l.records.get(s) is None]
    if missing:
        raise EvaluationError(f"{k_and_l.workdir}: stage {missing[0]} was never trained here")
    networks = k_and_l.variables["localizer"]
    part_models = parts.variables_for("parts", "ground_truth")
    return {collection: {module: (part_models if module == "parts" else networks)[collection][module]
                         for module in stn_icnn.MODULES if module in part_models[collection]}
            for collection in ("params", "batch_stats")}


def load_weights(path: str | Path, mesh=None,
                 weights: weights_lib.Weights | None = None) -> tuple[weights_lib.Weights, stn_icnn.STNiCNN, dict]:
    """``(weights, model, variables on the mesh)`` of a weights file (checked against its
    config; a missing or damaged file raises ``weights.WeightsFileError``); ``weights``:
    the file already read."""
    weights = weights or weights_lib.load(path)
    weights_lib.check_variables(weights, path)
    mesh = mesh or distributed.make_mesh(weights.config.train.num_devices or None)
    variables = jax.device_put(weights.variables, distributed.replicated(mesh))
    return weights, weights.model(), variables


# --------------------------------------------------------------------------- scoring


def score(model: stn_icnn.STNiCNN, variables: dict, config: ml_collections.ConfigDict,
          source: Any, crops: str, mesh, eval_fns: evaluate.EvalFunctions | None = None) -> dict:
    """``{"f1": {set: F1}, "pixels": n, "images": n}`` of ``source`` parsed with ``crops``
    crops (``config`` gives the canvas, rough size and evaluation batch size)."""
    if crops not in PARSE_EVALUATIONS:
        raise EvaluationError(f"unknown crops {crops!r}; use one of {', '.join(CROPS)}")
    stage = PARSE_EVALUATIONS[crops]
    eval_fns = eval_fns or evaluate.EvalFunctions(model, mesh)
    result = evaluate.evaluate(stage, eval_fns(stage), variables, source,
                               loop.eval_input_config(config, mesh), mesh)
    return {**result, "images": len(source)}


def score_rough_map(model: stn_icnn.STNiCNN, variables: dict,
                    config: ml_collections.ConfigDict, source: Any, mesh,
                    eval_fns: evaluate.EvalFunctions | None = None) -> dict:
    """K's own F1 per class on its rough map (as read: ``read_rough_map``) over
    ``source`` against the resized labels."""
    stage = STAGES["rough"]
    eval_fns = eval_fns or evaluate.EvalFunctions(model, mesh)
    return evaluate.evaluate(stage, eval_fns(stage), variables, source,
                             loop.eval_input_config(config, mesh), mesh)["f1"]


def mesh_for(config: ml_collections.ConfigDict):
    """The device mesh a run's configuration asks for (all devices by default)."""
    return distributed.make_mesh(config.train.num_devices or None)


def evaluate_workdir(workdir: str | Path, stage: str = "end_to_end", split: str = "test",
                     crops: str = "predicted", data: DataChoice = DataChoice()) -> dict:
    """Scores the best parameters after ``stage`` of the run in ``workdir`` (the result
    as :func:`result_json` writes it)."""
    workdir = Path(workdir).expanduser().absolute()
    required = required_stages(stage, crops)  # argument errors before anything loads
    config = read_run_config(workdir)
    on_disk = stages_on_disk(workdir)
    if on_disk:
        _check_trained(workdir, [s for s in required if s not in on_disk], stage, crops)
    eval_config = data.apply(config)
    source = split_source(eval_config, split)  # a missing dataset / split before loading
    mesh = mesh_for(config)
    trained = load_run(workdir, mesh, until=stage)
    variables = trained.variables_for(stage, crops)
    scores = score(trained.model, variables, eval_config, source, crops, mesh)
    return {"model": {"workdir": str(trained.workdir)}, "stage": stage, "split": split,
            "crops": crops, "data": _dataset_label(eval_config),
            "checkpoint": trained.records[stage], **scores}


def evaluate_weights(path: str | Path, split: str = "test", crops: str = "predicted",
                     data: DataChoice = DataChoice()) -> dict:
    """Scores a weights file on ``split`` of its run's dataset or of ``data``."""
    required_stages("end_to_end", crops)
    weights = weights_lib.load(path)
    eval_config = data.apply(weights.config)
    source = split_source(eval_config, split)
    mesh = mesh_for(weights.config)
    weights, model, variables = load_weights(path, mesh, weights)
    scores = score(model, variables, eval_config, source, crops, mesh)
    return {"model": {"weights": str(Path(path).absolute())},
            "stage": weights.record.get("stage"), "split": split, "crops": crops,
            "data": _dataset_label(eval_config), "checkpoint": weights.record, **scores}


def table2(workdir: str | Path, split: str = "test", data: DataChoice = DataChoice(),
           rows: Sequence[Table2Row] = TABLE2_ROWS) -> dict:
    """The rows of the paper's Table 2 from one work directory; a row whose stages were
    never trained is reported as ``{"status": "not trained", "missing": [...]}``."""
    config = read_run_config(Path(workdir).expanduser().absolute())
    eval_config = data.apply(config)
    source = split_source(eval_config, split)
    mesh = mesh_for(config)
    trained = load_run(workdir, mesh)
    eval_fns = evaluate.EvalFunctions(trained.model, mesh)
    out = {}
    for row in rows:
        missing = trained.missing(row.stage, row.crops)
        entry = {"stage": row.stage, "crops": row.crops}
        if missing:
            out[row.name] = {**entry, "status": "not trained", "missing": missing}
            continue
        scores = score(trained.model, trained.variables[row.stage], eval_config, source,
                       row.crops, mesh, eval_fns)
        out[row.name] = {**entry, "status": "ok", "checkpoint": trained.records[row.stage],
                         **scores}
    return {"model": {"workdir": str(trained.workdir)}, "split": split,
            "data": _dataset_label(eval_config), "rows": out}


# --------------------------------------------------------------------------- output


def result_name(result: dict, other_data: bool = False) -> str:
    """``eval-<stage>-<split>-<crops>.json`` or ``table2-<split>.json``; with
    ``other_data`` (not the run's own dataset) the dataset's name is appended."""
    if "rows" in result:
        stem = f"table2-{result['split']}"
    else:
        stem = f"eval-{result['stage']}-{result['split']}-{result['crops']}"
    if other_data:
        stem += "-" + result["data"].replace("/", "_")
    return stem + ".json"


def write_json(result: dict, path: str | Path) -> Path:
    """Writes ``result`` as strict JSON (NaN -> null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    return path


def _f1(scores: dict) -> dict:
    return {k: float("nan") if v is None else v for k, v in scores.items()}


def format_result(result: dict) -> str:
    """The Markdown table of the paper's columns and a last line ``overall ... <F1>``."""
    what = (f"stage {result['stage']}, {result['split']} split of {result['data']}, "
            f"{result['crops']} crops, {result['images']} images")
    return (metrics.format_f1_table(_f1(result["f1"])) + "\n"
            + f"overall F1 ({what}): {result['f1']['overall']:.4f}")


def format_table2(result: dict) -> str:
    """The three rows side by side (Markdown), untrained rows marked as such."""
    rows = {}
    for name, row in result["rows"].items():
        label = f"{name} ({row['stage']}, {row['crops']} crops)"
        rows[label] = (_f1(row["f1"]) if row["status"] == "ok"
                       else f"not trained: stage {', '.join(row['missing'])}")
    return (f"Table 2 rows on the {result['split']} split of {result['data']}:\n"
            + metrics.format_f1_rows(rows, first_column="model"))
