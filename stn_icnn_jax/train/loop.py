"""Training one stage: epochs of jitted steps, per-epoch validation, checkpoints, resume.

Everything a step depends on is in its checkpoint (state, epoch, batches done, the grain
iterator state of every process; augmentation and shuffling are seeded per epoch), so a
run killed anywhere and started again with the same number of processes ends with
bitwise the same parameters. A NaN or inf loss (or non-finite new parameters) stops the
stage with :class:`FloatingPointError`, keeping the last good checkpoint. SIGTERM or
SIGINT (with a :class:`~stn_icnn_jax.train.preemption.PreemptionWatch`) finishes the
step, saves a checkpoint with the data position and stops with
:class:`~stn_icnn_jax.errors.Preempted`. A damaged newest (or best) checkpoint is moved
aside and the newest (best) readable one used (:mod:`.checkpoints`). The next batches
are built in a thread while a step runs (:mod:`stn_icnn_jax.data.read_ahead`); the
``data`` seconds of a stage's time record are the waits for them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from stn_icnn_jax.config import build
from stn_icnn_jax.data import input_pipeline, read_ahead
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.errors import Preempted
from stn_icnn_jax.train import checkpoints, distributed, evaluate, loader_state, preemption
from stn_icnn_jax.train import step as step_lib
from stn_icnn_jax.train.metric_log import MetricLog
from stn_icnn_jax.train.stages import STAGE_NAMES, Stage


def _epoch_seed(config, stage: Stage, epoch: int) -> int:
    return int(np.random.SeedSequence(
        [config.seed, STAGE_NAMES.index(stage.name), epoch]).generate_state(1)[0])


def improves(selection: float, best: float | None) -> bool:
    """Strictly higher than the best so far (NaN never is; anything beats no best)."""
    if best is None:
        return True
    if math.isnan(selection):
        return False
    return math.isnan(best) or selection > best


def eval_input_config(config: ml_collections.ConfigDict, mesh) -> input_pipeline.InputConfig:
    """The validation / test layout: this process's share of ``train.eval_batch_size``."""
    batch_size = distributed.check_batch_size(config.train.eval_batch_size, mesh)
    return build.input_config(config, batch_size, training=False)


class StageRun:
    """What training, resuming or just loading one stage needs: its config, optimiser,
    state (restored from the latest checkpoint if there is one), checkpoint manager and
    progress (epoch, batches done, data position, best step)."""

    def __init__(self, stage: Stage, config: ml_collections.ConfigDict, variables: dict,
                 sources: dict, workdir: Path, mesh):
        self.stage = stage
        self.config = build.stage_config(config, stage.name)
        self.batch_size = distributed.check_batch_size(config.train.batch_size, mesh)
        inputs = build.input_config(config, self.batch_size, training=True)
        copies = inputs.augment.copies if inputs.augment is not None else 1
        examples = len(sources["train"]) * copies // jax.process_count()
        self.steps_per_epoch = input_pipeline.batches_per_epoch(
            examples, self.batch_size, inputs.worker_count, inputs.drop_remainder)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"stage {stage.name}: {examples} training examples per process make no batch "
                f"of {self.batch_size}; lower train.batch_size"
            )
        self.tx = step_lib.make_optimizer(self.config, self.steps_per_epoch, variables["params"])
        self.rep = distributed.replicated(mesh)
        self.state = jax.device_put(
            step_lib.init_state(variables["params"], variables["batch_stats"], self.tx), self.rep)
        self.ckpt = checkpoints.StageCheckpoints(workdir / stage.name / "checkpoints",
                                                 keep=config.train.keep_checkpoints)
        self.progress = {"epoch": 0, "batch_in_epoch": 0, "loader_state": None,
                         "best_step": None, "best_selection": None}
        try:  # the newest readable checkpoint (damaged newer ones are moved aside)
            latest = self.ckpt.restore_latest(self.state)
        except Exception:
            self.ckpt.close()
            raise
        self.resumed_from = None
        if latest is not None:
            self.resumed_from, state, self.progress = latest
            self.state = jax.device_put(state, self.rep)

    @property
    def finished(self) -> bool:
        return self.progress["epoch"] >= self.config.epochs

    def best_variables(self) -> dict:
        """The best checkpoint's variables (the current ones if there is no best yet).

        An unreadable best checkpoint is moved aside and the best readable one by its
        saved validation score is used instead (said in one line)."""
        best = self.progress["best_step"]
        if best is not None and best != int(self.state.step):
            _, state = self.ckpt.restore_best(self.state, best)
            state = jax.device_put(state, self.rep)
        else:
            state = self.state
        return {"params": state.params, "batch_stats": state.batch_stats}

    def kept_checkpoint(self) -> str:
        step = self.ckpt.latest_step()
        if step is None:
            return (f"No checkpoint of stage {self.stage.name} was written yet (a re-run "
                    "starts the stage from the previous stage's parameters)")
        return f"The last good checkpoint, step {step}, is kept in {self.ckpt.directory / str(step)}"

    def own_loader_state(self) -> bytes | None:
        """This process's data position in the mid-epoch checkpoint resumed from, if any."""
        if self.progress["loader_state"] is None:
            return None
        try:
            return loader_state.own_loader_state(self.progress["loader_state"],
                                                 self.ckpt.directory / str(self.resumed_from))
        except checkpoints.ResumeMismatchError:
            self.ckpt.close()
            raise


class _Epoch:
    """The per-run context of the epoch loop (so the helpers below stay short)."""

    def __init__(self, run: StageRun, config, model, sources, mesh, log, show_progress,
                 eval_fns, watch):
        self.run, self.config, self.model, self.sources = run, config, model, sources
        self.watch = watch
        self.mesh, self.log, self.show_progress = mesh, log, show_progress
        self.lead = jax.process_index() == 0
        self.timing = {"first_step": 0.0, "steps": 0.0, "data": 0.0, "eval": 0.0,
                       "checkpoint": 0.0}
        self.train_step = distributed.compile_train_step(
            lambda axis_name: step_lib.with_finite_flag(step_lib.make_train_step(
                model, run.stage, run.config, run.tx, axis_name=axis_name)),
            mesh, per_device_batch_stats=config.train.per_device_batch_stats,
        )
        self.eval_fn = eval_fns(run.stage)

    def train(self, state, epoch: int, resume_from: bytes | None):
        """One epoch of steps (from a mid-epoch data position when resuming)."""
        run, stage = self.run, self.run.stage
        loader = input_pipeline.make_loader(
            self.sources["train"], stage.features,
            build.input_config(self.config, run.batch_size, training=True,
                               seed=_epoch_seed(self.config, stage, epoch), stage=stage.name),
            num_epochs=1, shard_options=distributed.shard_options(),
        )
        with input_pipeline.iterate(loader) as iterator:  # workers stop however it ends
            done = 0
            if resume_from is not None:
                iterator.set_state(resume_from)
                done = run.progress["batch_in_epoch"]
            # the next batches are built while the step runs; `reader.position` is the
            # data position after the batch last taken (what a checkpoint stores)
            with read_ahead.ReadAhead(iterator, iterator.get_state) as reader:
                bar = tqdm(total=run.steps_per_epoch, initial=done,
                           desc=f"{stage.name} {epoch + 1}/{run.config.epochs}",
                           disable=not self.show_progress or not self.lead,
                           dynamic_ncols=True)
                while True:
                    t0 = time.perf_counter()
                    # a damaged record of one process's shard stops every process here
                    batch, _ = distributed.next_on_all_processes(reader)
                    t1 = time.perf_counter()
                    self.timing["data"] += t1 - t0
                    if batch is None:
                        break
                    first = self.timing["first_step"] == 0.0
                    state, step_metrics = self.train_step(
                        state, distributed.to_global(batch, self.mesh))
                    done += 1
                    loss = self._check_finite(state, step_metrics, epoch, done)
                    self.timing["first_step" if first else "steps"] += time.perf_counter() - t1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                    self._log_and_checkpoint(state, step_metrics, epoch, done, reader.position)
                    if self.watch.reached():
                        bar.close()
                        self._stop_preempted(state, epoch, done, reader.position)
                bar.close()
        return state

    def _stop_preempted(self, state, epoch: int, done: int, position: bytes):
        """Saves a checkpoint at this step (unless there is one) and raises Preempted."""
        run, step = self.run, int(state.step)
        if step not in run.ckpt.all_steps():
            run.ckpt.save(step, state, {
                **run.progress, "epoch": epoch, "batch_in_epoch": done,
                "loader_state": loader_state.gather_loader_states(position)})
        message = (f"[{run.stage.name}] stopped by {self.watch.signal_name} after step {step} "
                   f"(epoch {epoch + 1}, batch {done}); checkpoint saved in "
                   f"{run.ckpt.directory / str(step)}.")
        self.log.write("preempted", run.stage.name, step, {"epoch": epoch, "message": message})
        raise Preempted(message)

    def _check_finite(self, state, step_metrics: dict, epoch: int, done: int) -> float:
        name, step = self.run.stage.name, int(state.step)
        loss = float(step_metrics["loss"])
        finite = bool(step_metrics.pop("finite"))
        if math.isfinite(loss) and finite:
            return loss
        what = f"loss is {loss}" if not math.isfinite(loss) else \
            f"loss is {loss} but the updated parameters are not finite"
        message = (
            f"[{name}] {what} at step {step} (epoch {epoch + 1}, batch {done}); training "
            f"stopped. {self.run.kept_checkpoint()}. Lower the learning rate "
            f"(config.stages.{name}.learning_rates) and re-run with a new --workdir, or fix "
            "the cause and re-run the same command to resume."
        )
        self.log.write("error", name, step, {"epoch": epoch, "message": message})
        raise FloatingPointError(message)

    def _log_and_checkpoint(self, state, step_metrics, epoch: int, done: int,
                            position: bytes):
        run, step = self.run, int(state.step)
        if step % max(1, self.config.train.log_every_steps) == 0:
            self.log.write("train", run.stage.name, step, {
                "epoch": epoch, **{k: float(v) for k, v in step_metrics.items()}})
        every = self.config.train.checkpoint_every_steps
        if every and step % every == 0 and done < run.steps_per_epoch:
            t0 = time.perf_counter()
            run.ckpt.save(step, state, {
                **run.progress, "epoch": epoch, "batch_in_epoch": done,
                "loader_state": loader_state.gather_loader_states(position)})
            self.timing["checkpoint"] += time.perf_counter() - t0

    def validate(self, state, epoch: int) -> None:
        """Scores the epoch on the validation split, keeps the best, saves a checkpoint."""
        run, name = self.run, self.run.stage.name
        t0 = time.perf_counter()
        summary = evaluate.evaluate(
            run.stage, self.eval_fn, {"params": state.params, "batch_stats": state.batch_stats},
            self.sources["validation"], eval_input_config(self.config, self.mesh), self.mesh)
        self.timing["eval"] += time.perf_counter() - t0
        selection = run.stage.selection_metric(summary)
        improved = improves(selection, run.progress["best_selection"])
        step = int(state.step)
        if improved:
            run.progress.update(best_step=step, best_selection=selection)
        self.log.write("validation", name, step, {
            "epoch": epoch + 1, **summary, "selection": selection,
            "best": run.progress["best_selection"]})
        if self.lead:
            shown = (f"overall F1 {summary['f1']['overall']:.4f}" if "f1" in summary
                     else f"theta loss {summary['theta_loss']:.3g}")
            print(f"[{name}] epoch {epoch + 1}/{run.config.epochs}: validation {shown}"
                  f"{' (best)' if improved else ''}", flush=True)
        run.progress.update(epoch=epoch + 1, batch_in_epoch=0, loader_state=None)
        t0 = time.perf_counter()
        run.ckpt.save(step, state, run.progress, selection=selection)
        self.timing["checkpoint"] += time.perf_counter() - t0


def train_stage(stage: Stage, config: ml_collections.ConfigDict, model: stn_icnn.STNiCNN,
                variables: dict, sources: dict, workdir: Path, mesh, log: MetricLog,
                show_progress: bool = True,
                eval_fns: evaluate.EvalFunctions | None = None,
                watch: preemption.PreemptionWatch | None = None) -> dict:
    """Trains one stage (resuming if possible); returns the best variables.

    ``watch``: stop with :class:`~stn_icnn_jax.errors.Preempted` after saving a
    checkpoint at the step it names (SIGTERM / SIGINT); None: no watch."""
    run = StageRun(stage, config, variables, sources, workdir, mesh)
    resume_from = run.own_loader_state()
    if run.resumed_from is not None and jax.process_index() == 0:
        what = ("finished earlier; nothing to train" if run.finished else
                f"resuming from step {run.resumed_from} (epoch {run.progress['epoch'] + 1}, "
                f"batch {run.progress['batch_in_epoch']})")
        print(f"[{stage.name}] {what}", flush=True)
    epochs = _Epoch(run, config, model, sources, mesh, log, show_progress,
                    eval_fns or evaluate.EvalFunctions(model, mesh),
                    watch or preemption.NoWatch())
    state = run.state
    try:
        for epoch in range(run.progress["epoch"], run.config.epochs):
            state = epochs.train(state, epoch, resume_from)
            resume_from = None  # the resumed epoch only
            epochs.validate(state, epoch)
        run.state = state
        best = run.best_variables()
    finally:
        run.ckpt.close()
    if any(epochs.timing.values()):
        log.write("time", stage.name, int(state.step), {"seconds": epochs.timing})
    return best
