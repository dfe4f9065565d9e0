"""From a config file to the typed configs the library uses, in one place.

``load_config(path, overrides)`` runs a Python config file's ``get_config()`` (an
``ml_collections.ConfigDict`` built on :func:`stn_icnn_jax.config.base.base_config`)
and applies ``--config.a.b=value`` overrides; ``model_config``, ``stage_config`` and
``input_config`` turn its sections into the frozen dataclasses of the model, a training
stage and the input pipeline.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from pathlib import Path

import ml_collections

from stn_icnn_jax.config import base
from stn_icnn_jax.data import augment as augment_lib
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.data import photometric as photometric_lib
from stn_icnn_jax.model.icnn import ICNNConfig
from stn_icnn_jax.model.localizer import LocalizerConfig
from stn_icnn_jax.model.stn_icnn import STNiCNNConfig
from stn_icnn_jax.taxonomy import NUM_CLASSES
from stn_icnn_jax.train import stages as stages_lib


def load_config(path: str | Path, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """``get_config()`` of a Python config file, with ``--config.a.b=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_stn_icnn_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} has no get_config() function")
    config = module.get_config()
    for item in _pairs(overrides):
        key, raw = item
        apply_override(config, key, raw)
    return config


def _pairs(overrides: list[str]) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--config."):
            raise ValueError(f"unrecognised argument {arg!r}; overrides look like --config.a.b=value")
        key = arg[len("--config."):]
        if "=" in key:
            key, raw = key.split("=", 1)
        else:
            if i + 1 >= len(overrides):
                raise ValueError(f"override {arg} has no value")
            i += 1
            raw = overrides[i]
        out.append((key, raw))
        i += 1
    return out


def apply_override(config: ml_collections.ConfigDict, key: str, raw: str) -> None:
    """Sets ``config.<key>`` (dotted) to ``raw`` parsed as a Python literal (else a string)."""
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
        if name not in node:
            raise KeyError(f"--config.{key}: no field {name!r} in the config")
        node = node[name]
    if leaf not in node:
        raise KeyError(f"--config.{key}: no field {leaf!r} in the config (typo?)")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    old = node[leaf]
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(old, tuple) and isinstance(value, str):  # --config.stage_order=rough,parts
        value = tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        node[leaf] = value
    except TypeError as exc:
        raise ValueError(
            f"--config.{key}={raw}: {type(value).__name__} does not fit the field's "
            f"{type(old).__name__} (now {old!r})"
        ) from exc


# model.rough_head / model.parts_head: BatchNorm + activation after the iCNN's second head
# conv (the L-channel conv before the logit conv)? "preset" keeps the preset's choice
# (paper reading: yes; authors' code: no). With it, the part models (L = 2 or 4) pass
# through a ReLU bottleneck of 2 or 4 channels just before their logits.
ICNN_HEADS = {"preset": None, "bn_relu": True, "plain": False}


def model_config(config: ml_collections.ConfigDict) -> STNiCNNConfig:
    """The model described by ``config.model`` (localiser head at its default init)."""
    m = config.model

    def added(key):  # a field added after weights files were first written
        return base.added_value(config, f"model.{key}")

    running_var = added("bn_running_var")
    heads = {name: added(f"{name}_head") for name in ("rough", "parts")}
    for name, head in heads.items():
        if head not in ICNN_HEADS:
            raise ValueError(f"model.{name}_head must be one of {sorted(ICNN_HEADS)}, "
                             f"got {head!r}")

    def icnn(labels, network):
        preset = ICNNConfig.from_preset(m.icnn_preset, labels)
        norm_act = ICNN_HEADS[heads[network]]
        return dataclasses.replace(
            preset, channels=tuple(m.icnn_channels), num_interlink_layers=m.num_interlink_layers,
            bn_running_var=running_var, conv=added("conv"),
            head_conv2_norm_act=preset.head_conv2_norm_act if norm_act is None else norm_act,
        )

    localizer = LocalizerConfig(
        backbone=m.localizer_backbone, input_size=m.rough_size,
        channels=tuple(m.localizer_channels), isotropic=m.isotropic,
        bn_running_var=running_var, conv=added("conv"),
        coord_channels=bool(added("localizer_coord_channels")),
    )
    return STNiCNNConfig(
        rough=icnn(NUM_CLASSES, "rough"), parts=icnn(2, "parts"), share_left_right=m.share_left_right,
        mirrored_pass=added("mirrored_pass"),
        localizer=localizer, rough_size=m.rough_size, crop_size=m.crop_size,
        theta_convention=m.theta_convention, theta_frame=m.theta_frame,
        localizer_scale=added("localizer_scale"), canvas_size=config.data.canvas_size,
        rough_background_logit=float(added("rough_background_logit")),
    )


def stage_config(config: ml_collections.ConfigDict, name: str) -> stages_lib.StageConfig:
    """``config.stages.<name>`` as a :class:`~stn_icnn_jax.train.stages.StageConfig`."""
    fields = config.stages[name].to_dict()
    known = {f.name for f in dataclasses.fields(stages_lib.StageConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"config.stages.{name}: unknown fields {unknown}; known: {sorted(known)}")
    fields["learning_rates"] = dict(fields["learning_rates"])
    stage = stages_lib.StageConfig(**fields)
    stages_lib.get(name).check(stage)
    return stage


def input_config(config: ml_collections.ConfigDict, batch_size: int, training: bool,
                 seed: int = 0, stage: str | None = None) -> input_pipeline.InputConfig:
    """How the records become batches: augmented and shuffled for training, plain for
    evaluation. ``batch_size`` is this process's share. ``data.photometric`` adds its
    operations to every training copy; with ``data.augment="none"`` each image is then
    one copy, photometric operations only (copy 0 of the paper's scheme is the original).
    ``stage``: the training stage the batches are for; its ``crop_jitter`` (a fraction of
    ``model.crop_size``) becomes the part centres' jitter in pixels."""
    d = config.data
    photometric = photometric_lib.preset(base.added_value(config, "data.photometric"))
    augment = None
    if training and d.augment != "none":
        augment = (augment_lib.AugmentConfig() if d.augment == "paper"
                   else augment_lib.AugmentConfig.authors())
        augment = dataclasses.replace(augment, copies=d.copies, photometric=photometric)
    elif training and photometric is not None:
        augment = augment_lib.AugmentConfig(copies=1, photometric=photometric)
    return input_pipeline.InputConfig(
        rough_size=config.model.rough_size, canvas_size=d.canvas_size, batch_size=batch_size,
        center_convention=d.center_convention, augment=augment, seed=seed, shuffle=training,
        worker_count=d.worker_count, drop_remainder=training,
        center_jitter=(stage_config(config, stage).crop_jitter * config.model.crop_size
                       if training and stage is not None else 0.0),
    )
