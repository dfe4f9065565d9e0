"""The base training configuration; files under ``experiments/configs/`` adjust it.

Each default is stated once, in the typed config it ends up in (``STNiCNNConfig``,
``ICNNConfig``, ``LocalizerConfig``, ``StageConfig``, ``InputConfig``,
``AugmentConfig``); this file reads them from there, and
:mod:`stn_icnn_jax.config.build` turns the ConfigDict back into those types. The
comments say what a field means where its typed config does not.

Paper vs authors' code switches (docs/authors-code.md §7): ``model.icnn_preset``,
``model.localizer_backbone``, ``model.theta_convention``, ``model.theta_frame``,
``data.center_convention``, ``data.augment``, ``stages.*.seg_loss``,
``stages.*.part_reduction``, ``stages.*.update_frozen_batch_stats``; the defaults are
the paper's.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from stn_icnn_jax.data.augment import AugmentConfig
from stn_icnn_jax.data.input_pipeline import InputConfig
from stn_icnn_jax.model.icnn import ICNNConfig
from stn_icnn_jax.model.localizer import LocalizerConfig
from stn_icnn_jax.model.stn_icnn import STNiCNNConfig
from stn_icnn_jax.taxonomy import NUM_CLASSES
from stn_icnn_jax.train.stages import STAGE_NAMES, StageConfig


#: Keys added to the configuration after work directories and weights files were first
#: written, with the value every older one implicitly used: a ``config.json`` without
#: them still matches (``train.checkpoints.check_or_write_config``) and still builds the
#: same model and input pipeline (``build.model_config``, ``build.input_config``).
ADDED_KEYS: dict[str, object] = {
    "data.photometric": "none",
    "model.bn_running_var": "biased",
    "model.mirrored_pass": "joint",
    "model.localizer_scale": "predicted",
    "model.rough_head": "preset",
    "model.parts_head": "preset",
    "model.conv": "auto",
    "model.rough_background_logit": 0.0,
    "model.localizer_coord_channels": False,
    **{f"stages.{name}.crop_jitter": 0.0 for name in STAGE_NAMES},
}


def added_value(config: ml_collections.ConfigDict, key: str):
    """``config``'s value of ``key`` (dotted, one of :data:`ADDED_KEYS`), or the value
    every configuration written before the key existed implicitly used."""
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    return node.get(leaf, ADDED_KEYS[key])


def _stage(learning_rates: dict, epochs: int) -> ml_collections.ConfigDict:
    """A stage's fields with StageConfig's defaults (see its docstring)."""
    return ml_collections.ConfigDict(
        dataclasses.asdict(StageConfig(learning_rates=learning_rates, epochs=epochs)))


def base_config() -> ml_collections.ConfigDict:
    """Paper Table 1 (HELEN) hyper-parameters on the paper's architecture."""
    model, icnn, localizer = STNiCNNConfig(), ICNNConfig.paper(NUM_CLASSES), LocalizerConfig()
    inputs = InputConfig(rough_size=model.rough_size, canvas_size=model.canvas_size)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.stage_order = STAGE_NAMES
    c.data = ml_collections.ConfigDict(dict(
        source="tfds",                     # "tfds" or "synthetic_in_memory"
        name="synthetic_faces",            # TFDS builder name
        builder_config="",                 # "" = the builder's default
        data_dir=None,                     # None = TFDS default (~/tensorflow_datasets)
        num_train=0, num_validation=0, num_test=0,  # synthetic_in_memory: sizes; tfds: read
                                           # only the split's first n records (0 = all)
        synthetic_size=(),                 # synthetic_in_memory (min, max) side; () = default
        canvas_size=model.canvas_size,     # the zero-padded canvas (authors: 1024)
        center_convention=inputs.center_convention,  # part centres: "paper" | "authors"
        augment="paper",                   # "paper" | "authors" | "none"
        copies=AugmentConfig().copies,     # augmented copies per training image
        photometric="none",                # "none" (the paper) | "default": colour, gamma,
                                           # blur, JPEG on training images (data/photometric.py)
        worker_count=inputs.worker_count,  # grain worker processes
    ))
    c.model = ml_collections.ConfigDict(dict(
        icnn_preset="paper",               # "paper" (3x3, BN+ReLU) | "authors" (5x5/9x9, tanh)
        icnn_channels=icnn.channels,
        num_interlink_layers=icnn.num_interlink_layers,
        rough_head="preset",               # K's head: "preset" | "bn_relu" (paper) | "plain" (authors)
        parts_head="preset",               # the part models' head, the same choices
        share_left_right=model.share_left_right,
        localizer_backbone=localizer.backbone,  # "vgg9" (paper Fig. 3) | "resnet18" (authors)
        localizer_channels=localizer.channels,
        isotropic=localizer.isotropic,
        localizer_coord_channels=localizer.coord_channels,  # + x, y input channels (not the paper's)
        rough_size=model.rough_size,
        crop_size=model.crop_size,
        theta_convention=model.theta_convention,  # "paper" (eq. 21) | "authors" (align_corners)
        theta_frame=model.theta_frame,     # "image" (eq. 21) | "canvas" (authors)
        localizer_scale=model.localizer_scale,  # "predicted" (eq. 15) | "native" (1:1 crops)
        rough_background_logit=model.rough_background_logit,  # + K's background logit where
                                           # its map is read, not in its loss (0 = paper)
        bn_running_var=icnn.bn_running_var,  # "biased" (flax) | "unbiased" (PyTorch)
        mirrored_pass=model.mirrored_pass,  # right brow/eye: "joint" batch | "separate" calls (authors)
        conv=icnn.conv,                    # iCNN / VGG-9 convs: "auto" | "xla" | "channel_tuned" (model/conv.py)
    ))
    c.train = ml_collections.ConfigDict(dict(
        batch_size=32,
        eval_batch_size=8,
        num_devices=0,                     # 0 = all
        per_device_batch_stats=False,      # BN over the global batch (True: per device, as
                                           # the authors' multi-GPU DataParallel runs)
        keep_checkpoints=3,
        checkpoint_every_steps=200,
        log_every_steps=10,
    ))
    c.stages = ml_collections.ConfigDict(dict(
        rough=_stage({"rough": 0.0023}, 25),
        localizer=_stage({"localizer": 0.0017}, 25),
        parts=_stage({"parts": 0.0008}, 25),  # Table 1 gives none; the authors' 0.0008
        end_to_end=_stage({"rough": 1e-4, "localizer": 1e-4, "parts": 1e-2}, 25),
    ))
    return c


def apply_authors_conventions(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Switches ``c`` (in place, and returns it) to the authors' code conventions
    (docs/authors-code.md): their iCNN layers and ResNet-18 localiser, canvas-frame
    theta with align_corners=True on a 1024 canvas, floored centroids with the
    mean-of-three mouth, their augmentation, PyTorch's BatchNorm running-variance update,
    the mirrored patches in separate calls, softmax CE with parts summed, and frozen
    networks that still update their BatchNorm statistics."""
    c.data.canvas_size = 1024
    c.data.center_convention = "authors"
    c.data.augment = "authors"
    c.model.icnn_preset = "authors"
    c.model.localizer_backbone = "resnet18"
    c.model.theta_convention = "authors"
    c.model.theta_frame = "canvas"
    c.model.bn_running_var = "unbiased"
    c.model.mirrored_pass = "separate"
    for stage in c.stages.values():
        stage.seg_loss = "ce"
        stage.part_reduction = "sum"
        stage.update_frozen_batch_stats = True
    return c
