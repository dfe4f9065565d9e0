"""One pure, jit-able step per stage: ``train_step(state, batch) -> (state, metrics)``.

What differs between stages (networks, loss, evaluation) is read from the stage's
record in :mod:`stn_icnn_jax.train.stages`. Each network has its own learning rate
(``optax.multi_transform``); frozen networks get ``optax.set_to_zero()`` updates and,
unless ``update_frozen_batch_stats`` is set (the authors' code, whose "frozen" nets stay
in ``train()`` mode), keep their BatchNorm statistics.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.train.stages import NETWORKS, Stage, StageConfig


@flax.struct.dataclass
class TrainState:
    """Everything a step changes: the step count, parameters, BN statistics, optimiser."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def make_optimizer(config: StageConfig, steps_per_epoch: int, params: Any) -> optax.GradientTransformation:
    """Adam per network with its own learning rate, halved every few epochs; frozen
    networks (learning rate 0) get ``optax.set_to_zero()``."""
    transforms = {"frozen": optax.set_to_zero()}
    for name in NETWORKS:
        if config.trains(name):
            schedule = optax.exponential_decay(
                init_value=float(config.learning_rates[name]),
                transition_steps=max(1, config.halve_every_epochs * steps_per_epoch),
                decay_rate=0.5,
                staircase=True,
            )
            transforms[name] = optax.adam(schedule, b1=0.9, b2=0.999, eps=1e-8)
    labels = {name: (name if config.trains(name) else "frozen") for name in params}
    return optax.multi_transform(transforms, labels)


def init_state(params: Any, batch_stats: Any, tx: optax.GradientTransformation) -> TrainState:
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
        opt_state=tx.init(params),
    )


def stage_loss(model: stn_icnn.STNiCNN, stage: Stage, config: StageConfig, params: Any,
               batch_stats: Any, batch: dict) -> tuple[jax.Array, tuple[dict, Any]]:
    """The loss of one stage: ``(loss, (metrics, new_batch_stats))``."""
    variables = {"params": params, "batch_stats": batch_stats}
    return stage.loss(model, config, variables, batch, stage.train_modes(config))


def _merge_stats(old: Any, new: Any, keep: dict[str, bool]) -> Any:
    """New BN statistics for the networks in ``keep`` (True), old ones for the rest."""
    if not old:
        return new
    return {name: (new[name] if keep.get(name, False) else old[name]) for name in old}


def make_train_step(
    model: stn_icnn.STNiCNN, stage: Stage, config: StageConfig,
    tx: optax.GradientTransformation, axis_name: str | None = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A pure ``train_step(state, batch) -> (state, metrics)`` (jit it once).

    ``axis_name``: when the step runs per device inside ``shard_map`` (per-device
    BatchNorm statistics, as the authors' multi-GPU ``DataParallel`` runs had),
    gradients, metrics and the new BN statistics are averaged over that mesh axis, so
    every device keeps identical parameters. None (default): the step sees the global
    batch and BN statistics are global.
    """
    stage.check(config)
    modes = stage.train_modes(config)

    def average(tree):
        return tree if axis_name is None else jax.lax.pmean(tree, axis_name)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        grad_fn = jax.value_and_grad(
            lambda p: stage_loss(model, stage, config, p, state.batch_stats, batch),
            has_aux=True,
        )
        (_, (step_metrics, new_stats)), grads = grad_fn(state.params)
        grads, step_metrics, new_stats = average((grads, step_metrics, new_stats))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        batch_stats = _merge_stats(state.batch_stats, new_stats, modes)
        # The norm of the trained networks' gradients only: a frozen network's gradient
        # is otherwise computed for this metric alone (XLA drops it when nothing reads it).
        trained = {name: grads[name] for name in grads if config.trains(name)}
        step_metrics = dict(step_metrics, grad_norm=optax.tree.norm(trained))
        return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                             opt_state=opt_state), step_metrics

    return train_step


def with_finite_flag(train_step):
    """The step plus ``metrics["finite"]``: every new parameter and BN statistic is finite
    (a finite loss can still come with an update that overflowed)."""

    def step(state, batch):
        state, step_metrics = train_step(state, batch)
        leaves = jax.tree.leaves((state.params, state.batch_stats))
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return state, dict(step_metrics, finite=finite)

    return step


def make_eval_step(model: stn_icnn.STNiCNN, stage: Stage) -> Callable[[dict, dict], dict]:
    """``eval_step(variables, batch) -> outputs`` for validation and test: per example a
    ``confusion (N, 9, 9)`` or (the localiser) a ``theta_loss (N,)``."""
    return lambda variables, batch: stage.evaluate(model, variables, batch)
