"""The base training configuration; files under ``experiments/configs/`` adjust it.

Every field is documented here once. Paper vs authors' code switches (notes.md 7):
``model.icnn_preset``, ``model.localizer_backbone``, ``model.theta_convention``,
``model.theta_frame``, ``data.center_convention``, ``data.augment``,
``stages.*.seg_loss``, ``stages.*.part_reduction``,
``stages.*.update_frozen_batch_stats``; the defaults are the paper's.
"""

from __future__ import annotations

import ml_collections


def _stage(learning_rates: dict, epochs: int) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        learning_rates=learning_rates,     # per network; 0 / absent = frozen
        epochs=epochs,
        halve_every_epochs=5,              # "halved the learning rate every 5 epochs"
        seg_loss="bce",                    # paper eq. 16 ("ce": authors' softmax CE)
        part_reduction="mean",             # eq. 17 mean over parts ("sum": authors)
        update_frozen_batch_stats=False,   # authors: frozen nets stay in train() mode
        theta_loss_weight=0.0,             # end_to_end: + w * SmoothL1(theta, eq. 21); 0 = paper
    ))


def base_config() -> ml_collections.ConfigDict:
    """Paper Table 1 (HELEN) hyper-parameters on the paper's architecture."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.stage_order = ("rough", "localizer", "parts", "end_to_end")
    c.data = ml_collections.ConfigDict(dict(
        source="tfds",                     # "tfds" or "synthetic_in_memory"
        name="synthetic_faces",            # TFDS builder name
        builder_config="",                 # "" = the builder's default
        data_dir=None,                     # None = TFDS default (~/tensorflow_datasets)
        num_train=0, num_validation=0, num_test=0,  # synthetic_in_memory sizes
        synthetic_size=(),                 # synthetic_in_memory (min, max) side; () = default
        canvas_size=1024,                  # the zero-padded canvas (authors: 1024)
        center_convention="paper",         # part centres: "paper" | "authors"
        augment="paper",                   # "paper" | "authors" | "none"
        copies=5,                          # augmented copies per training image
        worker_count=0,                    # grain worker processes
    ))
    c.model = ml_collections.ConfigDict(dict(
        icnn_preset="paper",               # "paper" (3x3, BN+ReLU) | "authors" (5x5/9x9, tanh)
        icnn_channels=(8, 16, 24, 32),
        num_interlink_layers=3,
        share_left_right=True,
        localizer_backbone="vgg9",         # "vgg9" (paper Fig. 3) | "resnet18" (authors)
        localizer_channels=(32, 32, 64, 64, 128, 128, 256, 256),
        isotropic=False,
        rough_size=128,
        crop_size=81,
        theta_convention="paper",          # "paper" (eq. 21) | "authors" (align_corners)
        theta_frame="image",               # "image" (eq. 21) | "canvas" (authors)
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
