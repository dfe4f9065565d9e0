"""The paper's training stages (section 2.5.2) as records, and the one registry of them.

A :class:`Stage` says everything that differs between stages: which networks it runs,
which batch features it reads for training and for evaluation, its loss, its evaluation
step and how a validation summary selects its best epoch. The command line, the input
pipeline, the training loop, evaluation and the benchmarks all read :data:`STAGES`; a new
stage or evaluation mode is one more record here.

1. ``rough``: pre-train the stage-1 iCNN K on resized images (segmentation loss
   against the resized labels).
2. ``localizer``: pre-train L on K's softmax with SmoothL1 against eq. 21's theta,
   K frozen.
3. ``parts``: pre-train the part iCNNs on crops made with ground-truth theta.
4. ``end_to_end``: the whole pipeline, L_F on the part predictions (eq. 17); gradients
   flow through the sampler into L and K; each network has its own learning rate.

The authors' recipe per stage (learning rates, batch sizes, epochs) is in
docs/authors-code.md §5.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp

from stn_icnn_jax import losses, metrics
from stn_icnn_jax.model import stn_icnn

NETWORKS = stn_icnn.MODULES  # ("rough", "localizer", "parts")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Hyper-parameters of one stage (``config.stages.<name>``; the defaults are the paper's).

    Attributes:
      learning_rates: per network (``rough``, ``localizer``, ``parts``); 0 or absent
        freezes it.
      epochs: passes over the (augmented) training set.
      halve_every_epochs: the learning rate is halved every this many epochs ("we halved
        the learning rate every 5 epochs").
      seg_loss: ``"bce"`` (paper eq. 16) or ``"ce"`` (the authors' softmax CE).
      part_reduction: ``"mean"`` over parts (eq. 17) or ``"sum"`` (authors).
      foreground_weight: weight of non-background pixels in the segmentation loss
        (:func:`stn_icnn_jax.losses.segmentation_loss`); 1.0 (default) is the paper's and
        the authors' unweighted mean.
      update_frozen_batch_stats: frozen networks still update their BatchNorm
        statistics (the authors' code: "frozen" nets stay in ``train()`` mode).
      theta_loss_weight: end-to-end only: adds this times the SmoothL1 between L's theta
        and eq. 21's to L_F. 0 (default) is the paper's L_F alone. L_F alone has a
        degenerate minimum: L can move the crops where the cropped labels are all
        background and the parts then predict background (seen on the synthetic run,
        experiments/results/synthetic_run_first_attempt/); the theta term anchors the crops.
      crop_jitter: parts only: in training, each ground-truth crop window is moved by a
        shift drawn uniformly in +-this fraction of the crop size along each axis (the
        labels are cut at the same window), so the part models see parts off the
        window's centre, as they do behind a cropper that misses by a few pixels. 0
        (default) is the paper's centred crops; the authors' part augmentation shifts
        the patches by up to 0.3 of their size (with rotation and scale as well).
    """

    learning_rates: dict[str, float]
    epochs: int = 25
    halve_every_epochs: int = 5
    seg_loss: Literal["bce", "ce"] = "bce"
    part_reduction: Literal["mean", "sum"] = "mean"
    foreground_weight: float = 1.0
    update_frozen_batch_stats: bool = False
    theta_loss_weight: float = 0.0
    crop_jitter: float = 0.0

    def trains(self, network: str) -> bool:
        return float(self.learning_rates.get(network, 0.0)) > 0.0


# Loss: (model, stage config, variables, batch, train modes) -> (loss, (metrics, batch_stats)).
LossFn = Callable[..., tuple[jax.Array, tuple[dict, Any]]]
# Evaluation: (model, variables, batch) -> {"confusion": (N, 9, 9)} or {"theta_loss": (N,)}.
EvalFn = Callable[[stn_icnn.STNiCNN, dict, dict], dict]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
      name: the stage's name (``config.stages.<name>``, ``--stage <name>``).
      networks: the networks it runs; those with a learning rate > 0 in its
        :class:`StageConfig` train (and run BatchNorm in training mode).
      features: batch features its training step reads (``input_pipeline.FEATURES``).
      eval_features: batch features its evaluation step reads.
      loss: the training loss.
      evaluate: the evaluation step (per example: a confusion matrix, or a theta loss).
      selection: ``"f1"`` (overall F1, higher is better) or ``"theta_loss"`` (lower).
    """

    name: str
    networks: tuple[str, ...]
    features: tuple[str, ...]
    eval_features: tuple[str, ...]
    loss: LossFn
    evaluate: EvalFn
    selection: Literal["f1", "theta_loss"] = "f1"

    def train_modes(self, config: StageConfig) -> dict[str, bool]:
        """Which networks run BatchNorm in training mode."""
        return {
            name: name in self.networks and (config.trains(name) or config.update_frozen_batch_stats)
            for name in NETWORKS
        }

    def check(self, config: StageConfig) -> None:
        """Refuses learning rates for networks this stage does not run, and crop jitter
        where the stage does not train on ground-truth crops."""
        if config.crop_jitter != 0 and self.name != "parts":
            raise ValueError(f"stage {self.name}: crop_jitter applies to the parts stage only "
                             f"(its ground-truth crops), got {config.crop_jitter}")
        if not 0 <= config.crop_jitter < 0.5:
            raise ValueError(f"stage {self.name}: crop_jitter must be in [0, 0.5) (a fraction "
                             f"of the crop size), got {config.crop_jitter}")
        for name, rate in config.learning_rates.items():
            if name not in NETWORKS:
                raise ValueError(f"stage {self.name}: unknown network {name!r} in "
                                 f"learning_rates; use {NETWORKS}")
            if float(rate) > 0 and name not in self.networks:
                raise ValueError(f"stage {self.name} does not run network {name!r}, so it "
                                 f"cannot train it (learning rate {rate}); it runs "
                                 f"{self.networks}")

    def selection_metric(self, summary: dict) -> float:
        """Higher is better: overall F1, or minus the theta loss."""
        if self.selection == "theta_loss":
            return -float(summary["theta_loss"])
        return float(summary["f1"]["overall"])


# ----------------------------------------------------------------------- losses


def _rough_loss(model, config: StageConfig, variables, batch, modes):
    logits, stats = stn_icnn.apply_module(
        model, variables, stn_icnn.STNiCNN.rough_logits, batch["rough_image"],
        train=modes["rough"],
    )
    loss = losses.segmentation_loss(logits, batch["rough_label"], config.seg_loss,
                                     config.foreground_weight)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["rough_label"])
    return loss, ({"loss": loss, "pixel_accuracy": accuracy}, stats)


def _localizer_loss(model, config: StageConfig, variables, batch, modes):
    logits, stats = stn_icnn.apply_module(
        model, variables, stn_icnn.STNiCNN.rough_logits, batch["rough_image"],
        train=modes["rough"],
    )
    theta, stats = stn_icnn.apply_module(
        model, {"params": variables["params"], "batch_stats": stats},
        stn_icnn.STNiCNN.localize, jax.lax.stop_gradient(logits), train=modes["localizer"],
    )
    theta = stn_icnn.localizer_theta(theta, batch, model.config)
    target = stn_icnn.ground_truth_theta(batch, model.config)
    loss = losses.smooth_l1(theta, target)
    return loss, ({"loss": loss, "theta_abs_error": jnp.abs(theta - target).mean()}, stats)


def _part_loss(theta_source: Literal["ground_truth", "predicted"]) -> LossFn:
    """L_F (eq. 17) on crops made with ground-truth or L's theta (+ the theta anchor)."""

    def loss_fn(model, config: StageConfig, variables, batch, modes):
        out, stats = stn_icnn.forward(model, variables, batch, modes, theta_source=theta_source)
        loss = losses.joint_loss(out["part_logits"], out["part_labels"], config.seg_loss,
                                 config.part_reduction, config.foreground_weight)
        step_metrics = {"part_loss": loss}
        if theta_source == "predicted" and config.theta_loss_weight:
            theta_loss = losses.smooth_l1(out["theta"],
                                          stn_icnn.ground_truth_theta(batch, model.config))
            loss = loss + config.theta_loss_weight * theta_loss
            step_metrics["theta_loss"] = theta_loss
        return loss, (dict(step_metrics, loss=loss), stats)

    return loss_fn


# ----------------------------------------------------------------------- evaluation


def _rough_eval(model, variables, batch):
    """K's own label map against the resized label: per-example confusion (N, 9, 9)."""
    logits = model.apply(variables, batch["rough_image"], False,
                         method=stn_icnn.STNiCNN.rough_logits)
    pred = jnp.argmax(stn_icnn.read_rough_map(logits, model.config), -1).astype(jnp.int32)
    return {"confusion": jax.vmap(metrics.confusion_matrix)(pred, batch["rough_label"])}


def _localizer_eval(model, variables, batch):
    """Per-example SmoothL1 between L's theta and eq. 21's, (N,)."""
    logits = model.apply(variables, batch["rough_image"], False,
                         method=stn_icnn.STNiCNN.rough_logits)
    theta = stn_icnn.localizer_theta(
        model.apply(variables, logits, False, method=stn_icnn.STNiCNN.localize), batch,
        model.config)
    target = stn_icnn.ground_truth_theta(batch, model.config)
    return {"theta_loss": jax.vmap(losses.smooth_l1)(theta, target)}


def _parse_eval(theta_source: stn_icnn.ThetaSource) -> EvalFn:
    """Parse the canvas with crops from ``theta_source`` and count each example's own
    image region (the padding is not scored): per-example confusion (N, 9, 9)."""

    def eval_fn(model, variables, batch):
        pred = stn_icnn.parse(model, variables, batch, theta_source=theta_source)["labels"]
        target = metrics.mask_outside(batch["canvas_label"], batch["image_origin"],
                                      batch["image_size"])
        return {"confusion": jax.vmap(metrics.confusion_matrix)(pred, target)}

    return eval_fn


# ----------------------------------------------------------------------- the registry

_ROUGH = ("rough_image", "rough_label")
_THETA = ("image_size", "image_origin", "centers", "centers_present")
_CANVAS = ("canvas", "canvas_label")
_PARSE = _ROUGH + _CANVAS + _THETA

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("rough", ("rough",), _ROUGH, _ROUGH, _rough_loss, _rough_eval),
        Stage("localizer", ("rough", "localizer"), ("rough_image",) + _THETA,
              ("rough_image",) + _THETA, _localizer_loss, _localizer_eval,
              selection="theta_loss"),
        Stage("parts", ("parts",), _CANVAS + _THETA, _PARSE, _part_loss("ground_truth"),
              _parse_eval("ground_truth")),
        Stage("end_to_end", NETWORKS, _PARSE, _PARSE, _part_loss("predicted"),
              _parse_eval("predicted")),
    )
}
#: Stage names in pipeline order.
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)

#: Evaluation-only records (``stn-icnn eval --crops``): the whole parse, each part cropped
#: with L's theta (``predicted``), at the labelled centres (``ground_truth``) or at the
#: centroids of K's rough mask (``centroid``, the paper's iCNN baseline). Scored by
#: :func:`stn_icnn_jax.train.evaluate.evaluate` like any stage; never trained.
PARSE_EVALUATIONS: dict[str, Stage] = {
    source: dataclasses.replace(STAGES["end_to_end"], name=f"parse_{source}_crops",
                                evaluate=_parse_eval(source))
    for source in stn_icnn.THETA_SOURCES
}


def get(name: str) -> Stage:
    """The stage called ``name`` (a clear error for an unknown one)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; use one of {STAGE_NAMES}")
    return STAGES[name]
