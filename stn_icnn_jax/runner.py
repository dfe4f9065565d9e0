"""The training loop: stages in order, per-epoch validation F1, checkpoints, logs.

``run(config, workdir)`` trains the stages named in ``config.stage_order`` (or the
``stages`` argument), resuming whatever a previous run in ``workdir`` left, selects
each stage's parameters by its validation score (overall F1; the localiser by its theta
loss), and ends with the test-set F1 table. Layout of a work directory::

    workdir/config.json            the configuration (a different one is refused)
    workdir/metrics.jsonl          one JSON line per logged step / evaluation
    workdir/tensorboard/           the same as TensorBoard events
    workdir/<stage>/checkpoints/   orbax: last N + best of that stage
    workdir/results.json           test F1 of the final model
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from stn_icnn_jax import checkpoints, distributed, metrics, pipeline, train
from stn_icnn_jax.data import augment as augment_lib
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.icnn import ICNNConfig
from stn_icnn_jax.localizer import LocalizerConfig, params_from_theta


# --------------------------------------------------------------------------- config -> objects


def model_config(config: ml_collections.ConfigDict) -> pipeline.STNiCNNConfig:
    """The model described by ``config.model`` (localiser head at its configured init)."""
    m = config.model

    def icnn(labels):
        base = ICNNConfig.from_preset(m.icnn_preset, labels)
        return dataclasses.replace(
            base, channels=tuple(m.icnn_channels), num_interlink_layers=m.num_interlink_layers
        )

    localizer = LocalizerConfig(
        backbone=m.localizer_backbone, input_size=m.rough_size,
        channels=tuple(m.localizer_channels), isotropic=m.isotropic,
    )
    return pipeline.STNiCNNConfig(
        rough=icnn(pipeline.NUM_CLASSES), parts=icnn(2), share_left_right=m.share_left_right,
        localizer=localizer, rough_size=m.rough_size, crop_size=m.crop_size,
        theta_convention=m.theta_convention, theta_frame=m.theta_frame,
        canvas_size=config.data.canvas_size,
    )


def stage_config(config: ml_collections.ConfigDict, name: str) -> train.StageConfig:
    s = config.stages[name]
    return train.StageConfig(
        learning_rates=dict(s.learning_rates), epochs=s.epochs,
        halve_every_epochs=s.halve_every_epochs, seg_loss=s.seg_loss,
        part_reduction=s.part_reduction, update_frozen_batch_stats=s.update_frozen_batch_stats,
        theta_loss_weight=s.get("theta_loss_weight", 0.0),
    )


def input_config(config: ml_collections.ConfigDict, batch_size: int, training: bool,
                 seed: int = 0) -> input_pipeline.InputConfig:
    d = config.data
    aug = None
    if training and d.augment != "none":
        aug = augment_lib.AugmentConfig() if d.augment == "paper" else augment_lib.AugmentConfig.authors()
        aug = dataclasses.replace(aug, copies=d.get("copies", aug.copies))
    return input_pipeline.InputConfig(
        rough_size=config.model.rough_size, canvas_size=d.canvas_size, batch_size=batch_size,
        center_convention=d.center_convention, augment=aug, seed=seed, shuffle=training,
        worker_count=d.worker_count, drop_remainder=training,
    )


# --------------------------------------------------------------------------- data


def load_sources(config: ml_collections.ConfigDict, show_progress: bool = True) -> dict[str, Any]:
    """Random-access records per split (``train``, ``validation``, ``test``)."""
    d = config.data
    if d.source == "synthetic_in_memory":
        from stn_icnn_jax.data.synthetic import SyntheticFaceConfig, generate_face
        from stn_icnn_jax.data.synthetic_tfds import seed_for

        face_config = SyntheticFaceConfig()
        if d.get("synthetic_size"):  # (min, max) image side, e.g. tiny faces for tests
            low, high = d.synthetic_size
            face_config = dataclasses.replace(face_config, min_size=int(low), max_size=int(high))
        sizes = {"train": d.num_train, "validation": d.num_validation, "test": d.num_test}
        out = {}
        for split, n in sizes.items():
            out[split] = [
                {k: v for k, v in generate_face(seed_for(split, i), face_config).items()
                 if k != "meta"}
                for i in tqdm(range(n), desc=f"generating {split} faces", leave=False,
                              disable=not show_progress or jax.process_index() != 0)
            ]
        return out
    if d.source == "tfds":
        import tensorflow_datasets as tfds

        from stn_icnn_jax import data as data_lib  # registers the builders
        from stn_icnn_jax.data import build_cli

        name = d.name + (f"/{d.builder_config}" if d.get("builder_config") else "")
        builder = tfds.builder(name, data_dir=d.get("data_dir"))
        if not Path(str(builder.data_dir)).exists():
            if d.name != "synthetic_faces":
                raise FileNotFoundError(
                    f"dataset {name} is not built in {builder.data_dir_root}; run "
                    f"`stn-icnn data build {d.name} --manual_dir DIR` first"
                )
            build_cli.build_dataset(d.name, data_dir=d.get("data_dir"),
                                    config=d.get("builder_config") or None)
        del data_lib
        return {split: tfds.data_source(name, split=split, data_dir=d.get("data_dir"))
                for split in ("train", "validation", "test")}
    raise ValueError(f"unknown data.source {d.source!r}; use 'synthetic_in_memory' or 'tfds'")


def mean_theta_params(source: Any, config: ml_collections.ConfigDict,
                      cfg: pipeline.STNiCNNConfig, limit: int = 256) -> np.ndarray:
    """The mean ground-truth (sx, sy, tx, ty) per part over (up to ``limit``) records."""
    layout = input_pipeline.Layout(
        input_config(config, 1, training=False), ("image_size", "image_origin", "centers")
    )
    n = min(limit, len(source))
    rows = [layout.map(dict(source[i])) for i in range(n)]
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    theta = pipeline.ground_truth_theta(batch, cfg)
    return np.asarray(params_from_theta(theta)).mean(axis=0)


# --------------------------------------------------------------------------- logging


class MetricLog:
    """JSON lines plus TensorBoard events (process 0 only).

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
        line = _json_safe({**record, "step": int(step), "time": time.time()})
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


# --------------------------------------------------------------------------- evaluation


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
    return {k: np.concatenate([v, np.repeat(v[:1], size - valid, axis=0)]) for k, v in batch.items()}, valid


# The pre-training stages are scored without the canvas: build only what they read.
EVAL_FEATURES = {"rough": "rough", "localizer": "localizer"}


def evaluate(stage_name: str, eval_fn, variables: dict, source: Any,
             config: ml_collections.ConfigDict, mesh) -> dict:
    """Pooled confusion -> F1 (or mean theta loss for the localiser) over a split."""
    batch_size = distributed.check_batch_size(config.train.eval_batch_size, mesh)
    loader = input_pipeline.make_loader(
        source, EVAL_FEATURES.get(stage_name, "eval"),
        input_config(config, batch_size, training=False),
        shard_options=_shard_options(),
    )
    confusion = np.zeros((pipeline.NUM_CLASSES,) * 2, np.int64)
    theta_losses: list[float] = []
    for batch in loader:
        batch, valid = _pad_batch(batch, batch_size)
        out = eval_fn(variables, distributed.to_global(batch, mesh))
        if "theta_loss" in out:
            theta_losses += list(_local_rows(out["theta_loss"])[:valid])
            continue
        labels = _local_rows(out["labels"])[:valid]
        rows = {k: v[:valid] for k, v in batch.items()}
        if stage_name == "rough":
            idx = rows["rough_label"].ravel() * pipeline.NUM_CLASSES + labels.ravel()
            confusion += np.bincount(idx, minlength=pipeline.NUM_CLASSES**2).reshape(
                pipeline.NUM_CLASSES, pipeline.NUM_CLASSES)
        else:
            confusion += train.image_confusion(labels, rows)
    if theta_losses:
        total = np.array([sum(theta_losses), len(theta_losses)], np.float64)
        if jax.process_count() > 1:
            total = np.asarray(multihost_utils.process_allgather(total)).sum(0)
        return {"theta_loss": float(total[0] / max(total[1], 1))}
    if jax.process_count() > 1:
        confusion = np.asarray(multihost_utils.process_allgather(confusion)).sum(0)
    return {"f1": metrics.f1_scores(confusion), "pixels": int(confusion.sum())}


def _shard_options():
    import grain.python as grain

    if jax.process_count() == 1:
        return grain.NoSharding()
    return grain.ShardByJaxProcess(drop_remainder=True)


def _gather_loader_states(state: bytes) -> list[str]:
    """Every process's grain iterator state, in process order.

    The states hold process-specific record positions (each process reads its own
    shard), so a checkpoint needs all of them. A collective: every process calls it at
    the same step. One process: no communication.
    """
    if jax.process_count() == 1:
        return [state.decode()]
    # Agree on the longest state, then gather fixed-size byte buffers.
    lengths = np.asarray(multihost_utils.process_allgather(
        np.array([len(state)], np.int32))).reshape(-1)
    buffer = np.zeros(int(lengths.max()), np.uint8)
    buffer[: len(state)] = np.frombuffer(state, np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(buffer))
    return [bytes(row[:n]).decode() for row, n in zip(gathered, lengths)]


def _own_loader_state(saved: str | list[str], checkpoint: Path) -> bytes:
    """This process's entry of a checkpoint's ``loader_state`` (a per-process list; an
    older checkpoint's single string is process 0's)."""
    def processes(n: int) -> str:
        return f"{n} process{'es' if n != 1 else ''}"

    legacy = isinstance(saved, str)
    states = [saved] if legacy else list(saved)
    count = jax.process_count()
    if len(states) != count:
        if legacy:
            saved_by = ("holds a single data-loader state (the older checkpoint format, "
                        "which kept process 0's only)")
            advice = "Resume it with 1 process if one process wrote it, or start over"
        else:
            saved_by = f"was written by {processes(len(states))}"
            advice = f"Resume with {processes(len(states))}, or start over"
        raise checkpoints.ResumeMismatchError(
            f"cannot resume from the mid-epoch checkpoint {checkpoint}: it {saved_by}, but "
            f"this run has {processes(count)}. Each process's position in its shard of the "
            "training data does not carry over to a different number of processes, so the "
            f"resumed run would not be exact. {advice} in a new --workdir."
        )
    return states[jax.process_index()].encode()


# --------------------------------------------------------------------------- one stage


def _epoch_seed(config, stage_name: str, epoch: int) -> int:
    return int(np.random.SeedSequence(
        [config.seed, train.STAGES.index(stage_name), epoch]).generate_state(1)[0])


def _with_finite_flag(train_step):
    """The step plus ``metrics["finite"]``: every new parameter and BN statistic is finite
    (a finite loss can still come with an update that overflowed)."""

    def step(state, batch):
        state, step_metrics = train_step(state, batch)
        leaves = jax.tree.leaves((state.params, state.batch_stats))
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return state, dict(step_metrics, finite=finite)

    return step


class EvalFunctions:
    """One jitted eval step per stage, shared by every validation pass and the final
    test evaluation (a new ``jax.jit`` of a new closure would compile again)."""

    def __init__(self, model: pipeline.STNiCNN, mesh):
        self._model, self._mesh, self._fns = model, mesh, {}

    def __call__(self, stage_name: str):
        if stage_name not in self._fns:
            self._fns[stage_name] = jax.jit(
                train.make_eval_step(self._model, stage_name),
                in_shardings=(distributed.replicated(self._mesh),
                              distributed.batch_sharded(self._mesh)),
            )
        return self._fns[stage_name]


def _better(selection: float, best: float | None) -> bool:
    """Strictly higher than the best so far (NaN never is; anything beats no best)."""
    if best is None:
        return True
    if math.isnan(selection):
        return False
    return math.isnan(best) or selection > best


class _Stage:
    """What training, resuming or just loading one stage needs: optimiser, state
    template, checkpoint manager, progress."""

    def __init__(self, stage_name, config, variables, sources, workdir, mesh):
        self.name = stage_name
        self.stage = stage_config(config, stage_name)
        self.batch_size = distributed.check_batch_size(config.train.batch_size, mesh)
        aug = input_config(config, self.batch_size, training=True).augment
        copies = aug.copies if aug is not None else 1
        examples = len(sources["train"]) * copies // jax.process_count()
        self.steps_per_epoch = examples // self.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"stage {stage_name}: {examples} training examples per process make no batch "
                f"of {self.batch_size}; lower train.batch_size"
            )
        self.tx = train.make_optimizer(self.stage, self.steps_per_epoch, variables["params"])
        self.rep = distributed.replicated(mesh)
        self.state = jax.device_put(
            train.init_state(variables["params"], variables["batch_stats"], self.tx), self.rep)
        self.ckpt = checkpoints.StageCheckpoints(workdir / stage_name / "checkpoints",
                                                 keep=config.train.keep_checkpoints)
        self.progress = {"epoch": 0, "batch_in_epoch": 0, "loader_state": None,
                         "best_step": None, "best_selection": None}
        self.resumed_from = self.ckpt.latest_step()
        if self.resumed_from is not None:
            state, self.progress = self.ckpt.restore(self.resumed_from, self.state)
            self.state = jax.device_put(state, self.rep)

    @property
    def finished(self) -> bool:
        return self.progress["epoch"] >= self.stage.epochs

    def best_variables(self) -> dict:
        """The best checkpoint's variables (the current ones if there is no best yet)."""
        if self.progress["best_step"] is not None \
                and self.progress["best_step"] != int(self.state.step):
            state, _ = self.ckpt.restore(self.progress["best_step"], self.state)
            state = jax.device_put(state, self.rep)
        else:
            state = self.state
        return {"params": state.params, "batch_stats": state.batch_stats}

    def kept_checkpoint(self) -> str:
        step = self.ckpt.latest_step()
        if step is None:
            return (f"No checkpoint of stage {self.name} was written yet (a re-run starts the "
                    "stage from the previous stage's parameters)")
        return f"The last good checkpoint, step {step}, is kept in {self.ckpt.directory / str(step)}"


def train_stage(stage_name: str, config: ml_collections.ConfigDict, model: pipeline.STNiCNN,
                variables: dict, sources: dict, workdir: Path, mesh, log: MetricLog,
                show_progress: bool = True, eval_fns: EvalFunctions | None = None) -> dict:
    """Trains one stage (resuming if possible); returns the best variables.

    Everything a step depends on is in its checkpoint (state, epoch, batches done, the
    grain iterator state of every process; augmentation and shuffling are seeded per
    epoch), so a run killed anywhere and started again with the same number of processes
    ends with bitwise the same parameters.
    """
    s = _Stage(stage_name, config, variables, sources, workdir, mesh)
    stage, progress, ckpt = s.stage, s.progress, s.ckpt
    eval_fns = eval_fns or EvalFunctions(model, mesh)
    timing = {"first_step": 0.0, "steps": 0.0, "data": 0.0, "eval": 0.0, "checkpoint": 0.0}
    lead = jax.process_index() == 0
    own_loader_state = None  # this process's grain iterator state in a mid-epoch checkpoint
    if progress["loader_state"] is not None:
        try:
            own_loader_state = _own_loader_state(progress["loader_state"],
                                                 ckpt.directory / str(s.resumed_from))
        except checkpoints.ResumeMismatchError:
            ckpt.close()
            raise
    if s.resumed_from is not None and lead:
        what = ("finished earlier; nothing to train" if s.finished else
                f"resuming from step {s.resumed_from} (epoch {progress['epoch'] + 1}, "
                f"batch {progress['batch_in_epoch']})")
        print(f"[{stage_name}] {what}", flush=True)

    train_step = distributed.compile_train_step(
        lambda axis_name: _with_finite_flag(
            train.make_train_step(model, stage_name, stage, s.tx, axis_name=axis_name)),
        mesh, per_device_batch_stats=config.train.per_device_batch_stats,
    )
    eval_fn = eval_fns(stage_name)
    log_every = max(1, config.train.log_every_steps)
    every = config.train.checkpoint_every_steps
    state = s.state
    try:
        for epoch in range(progress["epoch"], stage.epochs):
            loader = input_pipeline.make_loader(
                sources["train"], stage_name,
                input_config(config, s.batch_size, training=True,
                             seed=_epoch_seed(config, stage_name, epoch)),
                num_epochs=1, shard_options=_shard_options(),
            )
            iterator = iter(loader)
            done = 0
            if own_loader_state is not None and progress["epoch"] == epoch:
                iterator.set_state(own_loader_state)
                own_loader_state = None  # the resumed epoch only
                done = progress["batch_in_epoch"]
            bar = tqdm(total=s.steps_per_epoch, initial=done,
                       desc=f"{stage_name} {epoch + 1}/{stage.epochs}",
                       disable=not show_progress or not lead, dynamic_ncols=True)
            while True:
                t0 = time.perf_counter()
                batch = next(iterator, None)
                t1 = time.perf_counter()
                timing["data"] += t1 - t0
                if batch is None:
                    break
                first = timing["first_step"] == 0.0
                state, step_metrics = train_step(state, distributed.to_global(batch, mesh))
                done += 1
                step = int(state.step)
                loss = float(step_metrics["loss"])
                finite = bool(step_metrics.pop("finite"))
                timing["first_step" if first else "steps"] += time.perf_counter() - t1
                if not (math.isfinite(loss) and finite):
                    what = f"loss is {loss}" if not math.isfinite(loss) else \
                        f"loss is {loss} but the updated parameters are not finite"
                    message = (
                        f"[{stage_name}] {what} at step {step} (epoch {epoch + 1}, batch "
                        f"{done}); training stopped. {s.kept_checkpoint()}. Lower the learning rate "
                        f"(config.stages.{stage_name}.learning_rates) and re-run with a new "
                        "--workdir, or fix the cause and re-run the same command to resume."
                    )
                    log.write("error", stage_name, step, {"epoch": epoch, "message": message})
                    raise FloatingPointError(message)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if step % log_every == 0:
                    log.write("train", stage_name, step, {
                        "epoch": epoch, **{k: float(v) for k, v in step_metrics.items()}})
                if every and step % every == 0 and done < s.steps_per_epoch:
                    t2 = time.perf_counter()
                    ckpt.save(step, state, {**progress, "epoch": epoch, "batch_in_epoch": done,
                                            "loader_state": _gather_loader_states(
                                                iterator.get_state())})
                    timing["checkpoint"] += time.perf_counter() - t2
            bar.close()
            t0 = time.perf_counter()
            summary = evaluate(stage_name, eval_fn,
                               {"params": state.params, "batch_stats": state.batch_stats},
                               sources["validation"], config, mesh)
            timing["eval"] += time.perf_counter() - t0
            selection = train.selection_metric(stage_name, summary)
            improved = _better(selection, progress["best_selection"])
            step = int(state.step)
            if improved:
                progress.update(best_step=step, best_selection=selection)
            log.write("validation", stage_name, step, {
                "epoch": epoch + 1, **summary, "selection": selection,
                "best": progress["best_selection"]})
            if lead:
                shown = (f"overall F1 {summary['f1']['overall']:.4f}" if "f1" in summary
                         else f"theta loss {summary['theta_loss']:.3g}")
                print(f"[{stage_name}] epoch {epoch + 1}/{stage.epochs}: validation {shown}"
                      f"{' (best)' if improved else ''}", flush=True)
            progress.update(epoch=epoch + 1, batch_in_epoch=0, loader_state=None)
            t0 = time.perf_counter()
            ckpt.save(step, state, progress, selection=selection)
            timing["checkpoint"] += time.perf_counter() - t0
        s.state = state
        best = s.best_variables()
    finally:
        ckpt.close()
    if any(timing.values()):
        log.write("time", stage_name, int(state.step), {"seconds": timing})
    return best


def load_stage(stage_name: str, config: ml_collections.ConfigDict, variables: dict,
               sources: dict, workdir: Path, mesh) -> dict:
    """The best variables a previous run left for ``stage_name`` (no training); the
    given ``variables`` if it left none."""
    lead = jax.process_index() == 0
    if not (workdir / stage_name / "checkpoints").is_dir():
        if lead:
            print(f"[{stage_name}] not trained in this work directory; its networks keep "
                  "their current parameters", flush=True)
        return variables
    s = _Stage(stage_name, config, variables, sources, workdir, mesh)
    try:
        if s.resumed_from is None:
            return variables
        if lead:
            state = "finished" if s.finished else (
                f"unfinished (epoch {s.progress['epoch']}/{s.stage.epochs})")
            print(f"[{stage_name}] using the {state} stage's best checkpoint "
                  f"(step {s.progress['best_step'] or s.resumed_from})", flush=True)
        return s.best_variables()
    finally:
        s.ckpt.close()


# --------------------------------------------------------------------------- whole run


def initial_variables(config, sources, mesh) -> tuple[pipeline.STNiCNN, dict]:
    """The model with its localiser head at the training set's mean part boxes."""
    cfg = model_config(config)
    mean = mean_theta_params(sources["train"], config, cfg)
    cfg = dataclasses.replace(
        cfg, localizer=dataclasses.replace(cfg.localizer, init_params=tuple(map(tuple, mean.tolist())))
    )
    model = pipeline.STNiCNN(cfg)
    # rbg keys: the default threefry init of these nets takes ~4x longer to compile on CPU;
    # jitted: run eagerly, init dispatches (and compiles) hundreds of small ops one by one.
    key = jax.random.key(config.seed, impl="rbg")
    variables = jax.jit(lambda k: pipeline.init_variables(model, k))(key)
    return model, jax.device_put(variables, distributed.replicated(mesh))


def stage_plan(config: ml_collections.ConfigDict,
               stages: Iterable[str] | None = None) -> list[tuple[str, bool]]:
    """``[(stage, train_it)]`` in pipeline order: the requested stages (default
    ``config.stage_order``) to train, preceded by the earlier stages they build on, whose
    results are loaded from the work directory instead (``train_it`` False)."""
    order = list(config.stage_order)
    requested = list(stages) if stages else order
    for name in set(requested) | set(order):
        if name not in train.STAGES:
            raise ValueError(f"unknown stage {name!r}; use {train.STAGES}")
    last = max(train.STAGES.index(name) for name in requested)
    plan = []
    for index, name in enumerate(train.STAGES[: last + 1]):
        if name in requested:
            plan.append((name, True))
        elif name in order:
            plan.append((name, False))
    return plan


def run(config: ml_collections.ConfigDict, workdir: str | Path,
        stages: Iterable[str] | None = None, show_progress: bool = True) -> dict:
    """Trains the configured (or given) stages and returns the test results.

    ``stages``: train only these (``stn-icnn train --stage``); the earlier stages of
    ``config.stage_order`` they build on are loaded from ``workdir`` (their best
    checkpoints), not trained. Stages a previous run finished are not trained again.
    """
    workdir = Path(workdir).expanduser().absolute()
    plan = stage_plan(config, stages)
    if jax.process_index() == 0:
        checkpoints.check_or_write_config(workdir, config.to_json(sort_keys=True))
    multihost_utils.sync_global_devices("config checked")
    mesh = distributed.make_mesh(config.train.get("num_devices") or None)
    started = time.time()
    sources = load_sources(config, show_progress)
    model, variables = initial_variables(config, sources, mesh)
    eval_fns = EvalFunctions(model, mesh)
    log = MetricLog(workdir)
    log.write("time", "setup", 0, {"plan": [name for name, trains in plan if trains],
                                    "seconds": time.time() - started})
    try:
        for name, trains in plan:
            stage_started = time.time()
            if trains:
                variables = train_stage(name, config, model, variables, sources, workdir, mesh,
                                        log, show_progress, eval_fns)
                log.write("time", name, 0, {"stage_seconds": time.time() - stage_started})
            else:
                variables = load_stage(name, config, variables, sources, workdir, mesh)
        final_stage = [name for name, trains in plan if trains][-1]
        test_started = time.time()
        test = evaluate(final_stage, eval_fns(final_stage), variables, sources["test"], config,
                        mesh)
        log.write("test", final_stage, 0, {**test, "seconds": time.time() - test_started})
    finally:
        log.close()
    results = {"stage": final_stage, "stages": [name for name, trains in plan if trains],
               "test": test, "seconds": time.time() - started,
               "theta_convention": config.model.theta_convention,
               "theta_frame": config.model.theta_frame,
               "seg_loss": config.stages[final_stage].seg_loss}
    if jax.process_index() == 0:
        tmp = workdir / "results.json.tmp"
        tmp.write_text(json.dumps(_json_safe(results), indent=2, allow_nan=False))
        tmp.replace(workdir / "results.json")
        print(format_results(results), flush=True)
    return results


def _json_safe(value: Any) -> Any:
    """NaN / inf (e.g. F1 of a set absent from a split) -> None: strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def format_results(results: dict) -> str:
    test = results["test"]
    if "f1" not in test:
        return f"test theta loss ({results['stage']}): {test['theta_loss']:.4g}"
    f1 = {k: float("nan") if v is None else v for k, v in test["f1"].items()}  # null in JSON
    return (f"Test F1 after stage '{results['stage']}' (theta {results['theta_convention']}/"
            f"{results['theta_frame']}, {results['seg_loss']} loss):\n"
            + metrics.format_f1_table(f1))
