"""Training: the paper's four stages as pure, jitted steps built from shared pieces.

Stages (paper section 2.5.2, Table 1; authors' recipe in notes.md section 5):

1. ``rough``: pre-train the stage-1 iCNN K on resized images (segmentation loss
   against the resized labels).
2. ``localizer``: pre-train L on K's softmax with SmoothL1 against eq. 21's theta,
   K frozen.
3. ``parts``: pre-train the part iCNNs on crops made with ground-truth theta.
4. ``end_to_end``: the whole pipeline, L_F on the part predictions (eq. 17); gradients
   flow through the sampler into L and K; each network has its own learning rate
   (``optax.multi_transform``).

One ``train_step(state, batch) -> (state, metrics)`` per stage comes from
:func:`make_train_step`; what differs between stages is only which networks train
(learning rate > 0), which run BatchNorm in training mode, and the loss.
Frozen networks get ``optax.set_to_zero()`` updates and, unless
``update_frozen_batch_stats`` is set (the authors' code, whose "frozen" nets stay in
``train()`` mode), keep their BatchNorm statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from stn_icnn_jax import losses, pipeline

STAGES = ("rough", "localizer", "parts", "end_to_end")
Stage = Literal["rough", "localizer", "parts", "end_to_end"]


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Hyper-parameters of one stage.

    Attributes:
      learning_rates: per network (``rough``, ``localizer``, ``parts``); 0 freezes it.
      epochs: passes over the (augmented) training set.
      halve_every_epochs: the learning rate is halved every this many epochs.
      seg_loss: ``"bce"`` (paper eq. 16) or ``"ce"`` (authors).
      part_reduction: ``"mean"`` over parts (eq. 17) or ``"sum"`` (authors).
      update_frozen_batch_stats: frozen networks still update their BN statistics.
      theta_loss_weight: end-to-end only: adds this times the SmoothL1 between L's theta
        and eq. 21's to L_F. 0 (default) is the paper's L_F alone. L_F alone has a
        degenerate minimum: L can move the crops where the cropped labels are all
        background and the parts then predict background (seen on the synthetic run,
        experiments/results/synthetic_run_first_attempt/); the theta term anchors the crops.
    """

    learning_rates: dict[str, float]
    epochs: int = 25
    halve_every_epochs: int = 5
    seg_loss: Literal["bce", "ce"] = "bce"
    part_reduction: Literal["mean", "sum"] = "mean"
    update_frozen_batch_stats: bool = False
    theta_loss_weight: float = 0.0

    def trains(self, name: str) -> bool:
        return float(self.learning_rates.get(name, 0.0)) > 0.0


@flax.struct.dataclass
class TrainState:
    """Everything a step changes: the step count, parameters, BN statistics, optimiser."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def make_optimizer(stage: StageConfig, steps_per_epoch: int, params: Any) -> optax.GradientTransformation:
    """Adam per network with its own learning rate, halved every few epochs; frozen
    networks (learning rate 0) get ``optax.set_to_zero()``."""
    transforms = {"frozen": optax.set_to_zero()}
    for name in pipeline.MODULES:
        if stage.trains(name):
            schedule = optax.exponential_decay(
                init_value=float(stage.learning_rates[name]),
                transition_steps=max(1, stage.halve_every_epochs * steps_per_epoch),
                decay_rate=0.5,
                staircase=True,
            )
            transforms[name] = optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)
    labels = {name: (name if stage.trains(name) else "frozen") for name in params}
    return optax.multi_transform(transforms, labels)


def init_state(params: Any, batch_stats: Any, tx: optax.GradientTransformation) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
        opt_state=tx.init(params),
    )


def _stage_modes(stage_name: str, stage: StageConfig) -> dict[str, bool]:
    """Which networks run BatchNorm in training mode."""
    used = {
        "rough": ("rough",),
        "localizer": ("rough", "localizer"),
        "parts": ("parts",),
        "end_to_end": ("rough", "localizer", "parts"),
    }[stage_name]
    return {
        name: name in used and (stage.trains(name) or stage.update_frozen_batch_stats)
        for name in pipeline.MODULES
    }


def stage_loss(
    model: pipeline.STNiCNN, stage_name: Stage, stage: StageConfig, params: Any,
    batch_stats: Any, batch: dict,
) -> tuple[jax.Array, tuple[dict, Any]]:
    """The loss of one stage: ``(loss, (metrics, new_batch_stats))``."""
    cfg = model.config
    modes = _stage_modes(stage_name, stage)
    variables = {"params": params, "batch_stats": batch_stats}
    if stage_name == "rough":
        logits, stats = pipeline.apply_module(
            model, variables, pipeline.STNiCNN.rough_logits, batch["rough_image"],
            train=modes["rough"],
        )
        loss = losses.segmentation_loss(logits, batch["rough_label"], stage.seg_loss)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["rough_label"])
        return loss, ({"loss": loss, "pixel_accuracy": accuracy}, stats)
    if stage_name == "localizer":
        logits, stats = pipeline.apply_module(
            model, variables, pipeline.STNiCNN.rough_logits, batch["rough_image"],
            train=modes["rough"],
        )
        theta, stats = pipeline.apply_module(
            model, {"params": params, "batch_stats": stats}, pipeline.STNiCNN.localize,
            jax.lax.stop_gradient(logits), train=modes["localizer"],
        )
        target = pipeline.ground_truth_theta(batch, cfg)
        loss = losses.smooth_l1(theta, target)
        return loss, ({"loss": loss, "theta_abs_error": jnp.abs(theta - target).mean()}, stats)
    if stage_name in ("parts", "end_to_end"):
        source = "ground_truth" if stage_name == "parts" else "predicted"
        out, stats = pipeline.forward(model, variables, batch, modes, theta_source=source)
        loss = losses.joint_loss(out["part_logits"], out["part_labels"], stage.seg_loss,
                                 stage.part_reduction)
        step_metrics = {"part_loss": loss}
        if stage_name == "end_to_end" and stage.theta_loss_weight:
            theta_loss = losses.smooth_l1(out["theta"], pipeline.ground_truth_theta(batch, cfg))
            loss = loss + stage.theta_loss_weight * theta_loss
            step_metrics["theta_loss"] = theta_loss
        return loss, (dict(step_metrics, loss=loss), stats)
    raise ValueError(f"unknown stage {stage_name!r}; use one of {STAGES}")


def _merge_stats(old: Any, new: Any, keep: dict[str, bool]) -> Any:
    """New BN statistics for the networks in ``keep`` (True), old ones for the rest."""
    if not old:
        return new
    return {name: (new[name] if keep.get(name, False) else old[name]) for name in old}


def make_train_step(
    model: pipeline.STNiCNN, stage_name: Stage, stage: StageConfig,
    tx: optax.GradientTransformation, axis_name: str | None = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A pure ``train_step(state, batch) -> (state, metrics)`` (jit it once).

    ``axis_name``: when the step runs per device inside ``shard_map`` (per-device
    BatchNorm statistics, as the authors' multi-GPU ``DataParallel`` runs had),
    gradients, metrics and the new BN statistics are averaged over that mesh axis, so
    every device keeps identical parameters. None (default): the step sees the global
    batch and BN statistics are global.
    """
    modes = _stage_modes(stage_name, stage)

    def average(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        grad_fn = jax.value_and_grad(
            lambda p: stage_loss(model, stage_name, stage, p, state.batch_stats, batch),
            has_aux=True,
        )
        (loss, (step_metrics, new_stats)), grads = grad_fn(state.params)
        grads, step_metrics, new_stats = average((grads, step_metrics, new_stats))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        batch_stats = _merge_stats(state.batch_stats, new_stats, modes)
        step_metrics = dict(step_metrics, grad_norm=optax.tree.norm(grads))
        return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                             opt_state=opt_state), step_metrics

    return train_step


# --------------------------------------------------------------------------- evaluation


def make_eval_step(model: pipeline.STNiCNN, stage_name: Stage) -> Callable[[dict, dict], dict]:
    """``eval_step(variables, batch) -> outputs`` used for validation and test.

    ``rough`` returns K's own 128 label map; ``localizer`` the per-example theta loss
    ``(N,)``; ``parts`` parses with ground-truth theta; ``end_to_end`` with L's theta
    (both ``labels (N, C, C)`` on the canvas).
    """
    cfg = model.config

    def eval_step(variables: dict, batch: dict) -> dict:
        if stage_name == "rough":
            logits = model.apply(variables, batch["rough_image"], False,
                                 method=pipeline.STNiCNN.rough_logits)
            return {"labels": jnp.argmax(logits, -1).astype(jnp.int32)}
        if stage_name == "localizer":
            logits = model.apply(variables, batch["rough_image"], False,
                                 method=pipeline.STNiCNN.rough_logits)
            theta = model.apply(variables, logits, False, method=pipeline.STNiCNN.localize)
            target = pipeline.ground_truth_theta(batch, cfg)
            return {"theta_loss": jax.vmap(losses.smooth_l1)(theta, target)}
        source = "ground_truth" if stage_name == "parts" else "predicted"
        labels = pipeline.parse(model, variables, batch, theta_source=source)["labels"]
        return {"labels": labels}

    return eval_step


def image_confusion(labels: np.ndarray, batch: dict) -> np.ndarray:
    """Pooled ``[target, pred]`` counts over each example's own image region (notes 4.1)."""
    total = np.zeros((pipeline.NUM_CLASSES,) * 2, np.int64)
    for k in range(labels.shape[0]):
        (top, left), (h, w) = batch["image_origin"][k], batch["image_size"][k]
        pred = labels[k, top : top + h, left : left + w]
        target = batch["canvas_label"][k, top : top + h, left : left + w]
        np.add.at(total, (target.ravel(), pred.ravel()), 1)
    return total


def selection_metric(stage_name: Stage, summary: dict) -> float:
    """Higher is better: overall F1, or minus the theta loss for the localiser."""
    if stage_name == "localizer":
        return -float(summary["theta_loss"])
    return float(summary["f1"]["overall"])
