"""A whole run: the stages in order, resumed from the work directory, then the test F1.

``run(config, workdir)`` trains the stages named in ``config.stage_order`` (or the
``stages`` argument), resuming whatever a previous run in ``workdir`` left, selects
each stage's parameters by its validation score (overall F1; the localiser by its theta
loss), and ends with the test-set F1 table. Layout of a work directory::

    workdir/train.lock             host and pid of the run using it (one run at a time)
    workdir/config.json            the configuration (a different one is refused)
    workdir/metrics.jsonl          one JSON line per logged step / evaluation
    workdir/tensorboard/           the same as TensorBoard events
    workdir/<stage>/checkpoints/   orbax: last N + best of that stage
    workdir/<stage>/unreadable_checkpoints/  damaged checkpoints, moved aside
    workdir/results.json           test F1 of the final model
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Iterable

import jax
import ml_collections
import numpy as np

from stn_icnn_jax import metrics
from stn_icnn_jax.config import build
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.model.localizer import params_from_theta
from stn_icnn_jax.errors import Preempted
from stn_icnn_jax.train import checkpoints, distributed, evaluate, loop, preemption
from stn_icnn_jax.train.workdir_lock import WorkdirLock
from stn_icnn_jax.train.metric_log import MetricLog, json_safe
from stn_icnn_jax.train.stages import STAGE_NAMES, get as get_stage
from stn_icnn_jax.train.step import TrainState


def mean_theta_params(source: Any, config: ml_collections.ConfigDict,
                      model_config: stn_icnn.STNiCNNConfig, limit: int = 256) -> np.ndarray:
    """The mean ground-truth (sx, sy, tx, ty) per part over (up to ``limit``) records."""
    layout = input_pipeline.Layout(
        build.input_config(config, 1, training=False), ("image_size", "image_origin", "centers")
    )
    n = min(limit, len(source))
    rows = [layout.map(dict(source[i])) for i in range(n)]
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    theta = stn_icnn.ground_truth_theta(batch, model_config)
    return np.asarray(params_from_theta(theta)).mean(axis=0)


def initial_model(config, sources) -> stn_icnn.STNiCNN:
    """The model with its localiser head at the training set's mean part boxes."""
    cfg = build.model_config(config)
    mean = mean_theta_params(sources["train"], config, cfg)
    cfg = dataclasses.replace(
        cfg, localizer=dataclasses.replace(cfg.localizer, init_params=tuple(map(tuple, mean.tolist())))
    )
    return stn_icnn.STNiCNN(cfg)


def initial_variables(config, sources, mesh) -> tuple[stn_icnn.STNiCNN, dict]:
    """The model with its localiser head at the training set's mean part boxes, and its
    initial variables."""
    model = initial_model(config, sources)
    # rbg keys: the default threefry init of these nets takes ~4x longer to compile on CPU;
    # jitted: run eagerly, init dispatches (and compiles) hundreds of small ops one by one.
    key = jax.random.key(config.seed, impl="rbg")
    variables = jax.jit(lambda k: stn_icnn.init_variables(model, k))(key)
    return model, jax.device_put(variables, distributed.replicated(mesh))


def _newest_progress(ckpt: checkpoints.StageCheckpoints) -> dict:
    """The progress record of the newest checkpoint whose progress file reads."""
    for step in sorted(ckpt.all_steps(), reverse=True):
        try:
            return ckpt.read_progress(step)[1]
        except Exception:  # noqa: BLE001 - a damaged checkpoint; an older one may read
            continue
    raise checkpoints.NoReadableCheckpointError(
        f"no checkpoint in {ckpt.directory} has a readable progress record; restore the "
        "directory from a copy, or delete it to train this stage again")


def restore_stage(stage_name: str, config: ml_collections.ConfigDict, variables: dict,
                  sources: dict, workdir: Path, mesh) -> tuple[dict, dict | None]:
    """``(best variables, record)`` a previous run left for ``stage_name`` (no training):
    ``record`` says how far the stage got (``finished``, ``epochs_done``, ``epochs``,
    ``best_step``, ``latest_step``, ``selection``: the best validation score, overall F1
    or minus the theta loss); ``(variables, None)`` if it left no checkpoint.

    Reads only the parameters and BatchNorm statistics of the networks the stage runs
    (``Stage.networks``; a partial ``TrainState`` template: no optimiser state is built),
    checked leaf by leaf against ``variables``' structure (arrays, or
    ``jax.ShapeDtypeStruct``s); the other networks keep their values in ``variables``.
    Every checkpoint holds all three networks, but those its stage does not run are
    copies of what came in from the stages before it, so a run whose later network has
    another shape (e.g. ``model.localizer_coord_channels``) can still start from an
    earlier stage's checkpoint. ``sources`` is unused (kept for the callers' symmetry
    with training)."""
    del sources
    directory = workdir / stage_name / "checkpoints"
    if not directory.is_dir():
        return variables, None
    networks = get_stage(stage_name).networks

    def its_networks(tree: dict) -> dict:
        return {name: value for name, value in tree.items() if name in networks}

    template = TrainState(step=None, params=its_networks(variables["params"]),
                          batch_stats=its_networks(variables["batch_stats"]), opt_state=None)
    ckpt = checkpoints.StageCheckpoints(directory, keep=config.train.keep_checkpoints)
    try:
        latest = ckpt.latest_step()
        if latest is None:
            return variables, None
        progress = _newest_progress(ckpt)
        if progress["best_step"] is None:
            state, _ = ckpt.restore(latest, template, partial=True)
        else:  # a damaged best checkpoint falls back to the best readable one
            _, state = ckpt.restore_best(template, progress["best_step"], partial=True)
    finally:
        ckpt.close()
    epochs = build.stage_config(config, stage_name).epochs
    record = {"stage": stage_name, "finished": int(progress["epoch"]) >= epochs,
              "epochs_done": int(progress["epoch"]), "epochs": int(epochs),
              "best_step": progress["best_step"], "latest_step": int(latest),
              "selection": progress["best_selection"]}
    restored = jax.device_put({"params": state.params, "batch_stats": state.batch_stats},
                              distributed.replicated(mesh))
    return {kind: {**variables[kind], **restored[kind]} for kind in ("params", "batch_stats")}, record


def load_stage(stage_name: str, config: ml_collections.ConfigDict, variables: dict,
               sources: dict, workdir: Path, mesh) -> dict:
    """The best variables a previous run left for ``stage_name`` (no training); the
    given ``variables`` if it left none."""
    lead = jax.process_index() == 0
    variables, record = restore_stage(stage_name, config, variables, sources, workdir, mesh)
    if lead and record is None:
        print(f"[{stage_name}] not trained in this work directory; its networks keep "
              "their current parameters", flush=True)
    elif lead:
        state = "finished" if record["finished"] else (
            f"unfinished (epoch {record['epochs_done']}/{record['epochs']})")
        print(f"[{stage_name}] using the {state} stage's best checkpoint "
              f"(step {record['best_step'] or record['latest_step']})", flush=True)
    return variables


def load_trained(config: ml_collections.ConfigDict, workdir: str | Path, mesh,
                 until: str | None = None) -> tuple[stn_icnn.STNiCNN, dict, dict[str, dict]]:
    """What a previous run left in ``workdir``, for analysis: ``(model, sources,
    {stage: best variables after it})`` for the stages of ``config.stage_order`` (up to
    and including ``until``)."""
    sources = load_sources(config, show_progress=False)
    model, variables = initial_variables(config, sources, mesh)
    after = {}
    for name in config.stage_order:
        variables = load_stage(name, config, variables, sources, Path(workdir), mesh)
        after[name] = variables
        if name == until:
            break
    return model, sources, after


def stage_plan(config: ml_collections.ConfigDict,
               stages: Iterable[str] | None = None) -> list[tuple[str, bool]]:
    """``[(stage, train_it)]`` in pipeline order: the requested stages (default
    ``config.stage_order``) to train, preceded by the earlier stages they build on, whose
    results are loaded from the work directory instead (``train_it`` False)."""
    order = list(config.stage_order)
    requested = list(stages) if stages else order
    for name in set(requested) | set(order):
        get_stage(name)  # a clear error for an unknown name
    last = max(STAGE_NAMES.index(name) for name in requested)
    plan = []
    for name in STAGE_NAMES[: last + 1]:
        if name in requested:
            plan.append((name, True))
        elif name in order:
            plan.append((name, False))
    return plan


def _train_and_test(config, workdir: Path, plan, trained, show_progress: bool):
    """The stages of ``plan``, then the test split: ``(test summary, final stage, start)``."""
    mesh = distributed.make_mesh(config.train.num_devices or None)
    distributed.connect_collectives(mesh)  # while the processes are in step
    started = time.time()
    sources = load_sources(config, show_progress)
    model, variables = initial_variables(config, sources, mesh)
    eval_fns = evaluate.EvalFunctions(model, mesh)
    log = MetricLog(workdir)
    watch = preemption.PreemptionWatch()
    log.write("time", "setup", 0, {"plan": trained, "seconds": time.time() - started})
    try:
        with watch:  # SIGTERM / SIGINT: save and stop after the current step
            for name, trains in plan:
                stage_started = time.time()
                if trains:
                    variables = loop.train_stage(get_stage(name), config, model, variables,
                                                 sources, workdir, mesh, log, show_progress,
                                                 eval_fns, watch)
                    log.write("time", name, 0, {"stage_seconds": time.time() - stage_started})
                else:
                    variables = load_stage(name, config, variables, sources, workdir, mesh)
        if watch.signal_name is not None and jax.process_count() == 1:
            raise Preempted(f"stopped by {watch.signal_name} after the last stage finished "
                            "(its checkpoints are saved), before the test evaluation.")
        final = get_stage(trained[-1])
        test_started = time.time()
        test = evaluate.evaluate(final, eval_fns(final), variables, sources["test"],
                                 loop.eval_input_config(config, mesh), mesh)
        log.write("test", final.name, 0, {**test, "seconds": time.time() - test_started})
    finally:
        log.close()
    return test, final, started


def run(config: ml_collections.ConfigDict, workdir: str | Path,
        stages: Iterable[str] | None = None, show_progress: bool = True) -> dict:
    """Trains the configured (or given) stages and returns the test results.

    ``stages``: train only these (``stn-icnn train --stage``); the earlier stages of
    ``config.stage_order`` they build on are loaded from ``workdir`` (their best
    checkpoints), not trained. Stages a previous run finished are not trained again.

    Raises:
      WorkdirInUseError: another live run holds ``workdir/train.lock``.
      Preempted: SIGTERM / SIGINT stopped training after saving a checkpoint; calling
        ``run`` again resumes.
    """
    workdir = Path(workdir).expanduser().absolute()
    plan = stage_plan(config, stages)
    trained = [name for name, trains in plan if trains]
    with contextlib.ExitStack() as stack:
        failure = None
        if jax.process_index() == 0:
            try:
                stack.enter_context(WorkdirLock(workdir))  # one run per work directory
                checkpoints.check_or_write_config(workdir, config.to_json(sort_keys=True))
            except Exception as exc:  # noqa: BLE001 - every process must hear of it
                failure = exc
        # A collective: the other processes stop too, rather than wait for process 0.
        distributed.raise_if_any_failed(failure)
        test, final, started = _train_and_test(config, workdir, plan, trained, show_progress)
        results = {"stage": final.name, "stages": trained, "test": test,
                   "seconds": time.time() - started,
                   "theta_convention": config.model.theta_convention,
                   "theta_frame": config.model.theta_frame,
                   "seg_loss": config.stages[final.name].seg_loss}
        if jax.process_index() == 0:
            tmp = workdir / "results.json.tmp"
            tmp.write_text(json.dumps(json_safe(results), indent=2, allow_nan=False))
            tmp.replace(workdir / "results.json")
            print(format_results(results), flush=True)
    return results


def format_results(results: dict) -> str:
    """The test result as the printed table (F1 per set), or the localiser's theta loss."""
    test = results["test"]
    if "f1" not in test:
        return f"test theta loss ({results['stage']}): {test['theta_loss']:.4g}"
    f1 = {k: float("nan") if v is None else v for k, v in test["f1"].items()}  # null in JSON
    return (f"Test F1 after stage '{results['stage']}' (theta {results['theta_convention']}/"
            f"{results['theta_frame']}, {results['seg_loss']} loss):\n"
            + metrics.format_f1_table(f1))
