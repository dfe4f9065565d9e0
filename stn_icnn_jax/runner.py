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


def load_sources(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Random-access records per split (``train``, ``validation``, ``test``)."""
    d = config.data
    if d.source == "synthetic_in_memory":
        from stn_icnn_jax.data.synthetic import generate_face
        from stn_icnn_jax.data.synthetic_tfds import seed_for

        sizes = {"train": d.num_train, "validation": d.num_validation, "test": d.num_test}
        out = {}
        for split, n in sizes.items():
            out[split] = [
                {k: v for k, v in generate_face(seed_for(split, i)).items() if k != "meta"}
                for i in tqdm(range(n), desc=f"generating {split} faces", leave=False,
                              disable=jax.process_index() != 0)
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
    """JSON lines plus TensorBoard events (process 0 only)."""

    def __init__(self, workdir: Path):
        self._active = jax.process_index() == 0
        if not self._active:
            return
        from tensorboardX import SummaryWriter

        self._jsonl = open(Path(workdir) / "metrics.jsonl", "a")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, record: dict, step: int, prefix: str) -> None:
        if not self._active:
            return
        self._jsonl.write(json.dumps({**record, "step": int(step), "time": time.time()}) + "\n")
        self._jsonl.flush()
        for key, value in _flatten(record).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
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


def evaluate(stage_name: str, eval_fn, variables: dict, source: Any,
             config: ml_collections.ConfigDict, mesh) -> dict:
    """Pooled confusion -> F1 (or mean theta loss for the localiser) over a split."""
    batch_size = distributed.check_batch_size(config.train.eval_batch_size, mesh)
    loader = input_pipeline.make_loader(
        source, "eval", input_config(config, batch_size, training=False),
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


# --------------------------------------------------------------------------- one stage


def _epoch_seed(config, stage_name: str, epoch: int) -> int:
    return int(np.random.SeedSequence(
        [config.seed, train.STAGES.index(stage_name), epoch]).generate_state(1)[0])


def train_stage(stage_name: str, config: ml_collections.ConfigDict, model: pipeline.STNiCNN,
                variables: dict, sources: dict, workdir: Path, mesh, log: MetricLog,
                show_progress: bool = True) -> dict:
    """Trains one stage (resuming if possible); returns the best variables."""
    stage = stage_config(config, stage_name)
    batch_size = distributed.check_batch_size(config.train.batch_size, mesh)
    copies = input_config(config, batch_size, training=True).augment
    copies = copies.copies if copies is not None else 1
    examples = len(sources["train"]) * copies // jax.process_count()
    steps_per_epoch = examples // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"stage {stage_name}: {examples} training examples per process make no batch of "
            f"{batch_size}; lower train.batch_size"
        )
    tx = train.make_optimizer(stage, steps_per_epoch, variables["params"])
    rep = distributed.replicated(mesh)
    state = jax.device_put(train.init_state(variables["params"], variables["batch_stats"], tx), rep)
    ckpt = checkpoints.StageCheckpoints(workdir / stage_name / "checkpoints",
                                        keep=config.train.keep_checkpoints)
    progress = {"epoch": 0, "batch_in_epoch": 0, "loader_state": None, "best_step": None,
                "best_selection": None}
    latest = ckpt.latest_step()
    if latest is not None:
        state, progress = ckpt.restore(latest, state)
        state = jax.device_put(state, rep)
        if jax.process_index() == 0:
            print(f"[{stage_name}] resuming from step {latest} (epoch {progress['epoch']}, "
                  f"batch {progress['batch_in_epoch']})", flush=True)

    train_step = jax.jit(
        train.make_train_step(model, stage_name, stage, tx),
        in_shardings=(rep, distributed.batch_sharded(mesh)), out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
    eval_fn = jax.jit(train.make_eval_step(model, stage_name),
                      in_shardings=(rep, distributed.batch_sharded(mesh)))
    log_every = max(1, config.train.log_every_steps)

    for epoch in range(progress["epoch"], stage.epochs):
        loader = input_pipeline.make_loader(
            sources["train"], stage_name,
            input_config(config, batch_size, training=True, seed=_epoch_seed(config, stage_name, epoch)),
            num_epochs=1, shard_options=_shard_options(),
        )
        iterator = iter(loader)
        done = 0
        if progress["loader_state"] is not None and progress["epoch"] == epoch:
            iterator.set_state(progress["loader_state"].encode())
            done = progress["batch_in_epoch"]
        bar = tqdm(total=steps_per_epoch, initial=done, desc=f"{stage_name} {epoch + 1}/{stage.epochs}",
                   disable=not show_progress or jax.process_index() != 0, dynamic_ncols=True)
        for batch in iterator:
            state, step_metrics = train_step(state, distributed.to_global(batch, mesh))
            done += 1
            step = int(state.step)
            loss = float(step_metrics["loss"])
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"[{stage_name}] loss is {loss} at step {step} (epoch {epoch + 1}, batch "
                    f"{done}); stopped. The last good checkpoint in "
                    f"{workdir / stage_name / 'checkpoints'} is kept; lower the learning rate "
                    "and re-run to resume from it."
                )
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if step % log_every == 0:
                log.write({"stage": stage_name, "epoch": epoch,
                           **{k: float(v) for k, v in step_metrics.items()}}, step, f"train/{stage_name}")
            if config.train.checkpoint_every_steps and step % config.train.checkpoint_every_steps == 0 \
                    and done < steps_per_epoch:
                ckpt.save(step, state, {**progress, "epoch": epoch, "batch_in_epoch": done,
                                        "loader_state": iterator.get_state().decode()})
        bar.close()
        variables_now = {"params": state.params, "batch_stats": state.batch_stats}
        summary = evaluate(stage_name, eval_fn, variables_now, sources["validation"], config, mesh)
        selection = train.selection_metric(stage_name, summary)
        improved = progress["best_selection"] is None or selection > progress["best_selection"]
        step = int(state.step)
        if improved:
            progress.update(best_step=step, best_selection=selection)
        log.write({"stage": stage_name, "epoch": epoch + 1, "validation": summary,
                   "selection": selection, "best": progress["best_selection"]}, step,
                  f"validation/{stage_name}")
        if jax.process_index() == 0 and show_progress:
            shown = (f"overall F1 {summary['f1']['overall']:.4f}" if "f1" in summary
                     else f"theta loss {summary['theta_loss']:.3g}")
            print(f"[{stage_name}] epoch {epoch + 1}/{stage.epochs}: validation {shown}"
                  f"{' (best)' if improved else ''}", flush=True)
        progress.update(epoch=epoch + 1, batch_in_epoch=0, loader_state=None)
        ckpt.save(step, state, progress, selection=selection)

    if progress["best_step"] is not None:
        state, _ = ckpt.restore(progress["best_step"], state)
    ckpt.close()
    return {"params": state.params, "batch_stats": state.batch_stats}


# --------------------------------------------------------------------------- whole run


def initial_variables(config, sources, mesh) -> tuple[pipeline.STNiCNN, dict]:
    """The model with its localiser head at the training set's mean part boxes."""
    cfg = model_config(config)
    mean = mean_theta_params(sources["train"], config, cfg)
    cfg = dataclasses.replace(
        cfg, localizer=dataclasses.replace(cfg.localizer, init_params=tuple(map(tuple, mean.tolist())))
    )
    model = pipeline.STNiCNN(cfg)
    # rbg keys: the default threefry init of these nets takes ~4x longer to compile on CPU.
    variables = pipeline.init_variables(model, jax.random.key(config.seed, impl="rbg"))
    return model, jax.device_put(variables, distributed.replicated(mesh))


def run(config: ml_collections.ConfigDict, workdir: str | Path,
        stages: Iterable[str] | None = None, show_progress: bool = True) -> dict:
    """Trains the configured stages in order and returns the test results."""
    workdir = Path(workdir).expanduser().absolute()
    if jax.process_index() == 0:
        checkpoints.check_or_write_config(workdir, config.to_json(sort_keys=True))
    multihost_utils.sync_global_devices("config checked")
    stages = list(stages or config.stage_order)
    for name in stages:
        if name not in train.STAGES:
            raise ValueError(f"unknown stage {name!r}; use {train.STAGES}")
    mesh = distributed.make_mesh(config.train.get("num_devices") or None)
    sources = load_sources(config)
    model, variables = initial_variables(config, sources, mesh)
    log = MetricLog(workdir)
    started = time.time()
    try:
        for name in stages:
            stage_started = time.time()
            variables = train_stage(name, config, model, variables, sources, workdir, mesh, log,
                                    show_progress)
            log.write({"stage": name, "stage_seconds": time.time() - stage_started}, 0, "time")
        final_stage = stages[-1]
        eval_fn = jax.jit(train.make_eval_step(model, final_stage),
                          in_shardings=(distributed.replicated(mesh), distributed.batch_sharded(mesh)))
        test = evaluate(final_stage, eval_fn, variables, sources["test"], config, mesh)
    finally:
        log.close()
    results = {"stage": final_stage, "test": test, "seconds": time.time() - started,
               "theta_convention": config.model.theta_convention,
               "theta_frame": config.model.theta_frame,
               "seg_loss": config.stages[final_stage].seg_loss}
    if jax.process_index() == 0:
        (workdir / "results.json").write_text(json.dumps(results, indent=2))
        if show_progress:
            print(format_results(results), flush=True)
    return results


def format_results(results: dict) -> str:
    test = results["test"]
    if "f1" not in test:
        return f"test theta loss ({results['stage']}): {test['theta_loss']:.4g}"
    return (f"Test F1 after stage '{results['stage']}' (theta {results['theta_convention']}/"
            f"{results['theta_frame']}, {results['seg_loss']} loss):\n"
            + metrics.format_f1_table(test["f1"]))
