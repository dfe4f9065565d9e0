"""CelebAMask-HQ with the paper's Table 1 lower half (crop 127, batch 64, 4 GPUs).

Pre-training Lr1 1e-3, Lr2 1e-3; end-to-end Lr1 1e-6, Lr2 1e-6, Lr3 1e-3; batch 64,
25 epochs. Build first: `stn-icnn data build celebamask_hq --manual_dir DIR`; images
are 512x512 (resized to the masks), so a 512 canvas suffices.
"""

from stn_icnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.source = "tfds"
    c.data.name = "celebamask_hq"
    c.data.canvas_size = 512
    c.model.crop_size = 127
    c.train.batch_size = 64
    c.stages.rough.learning_rates = {"rough": 1e-3}
    c.stages.localizer.learning_rates = {"localizer": 1e-3}
    c.stages.end_to_end.learning_rates = {"rough": 1e-6, "localizer": 1e-6, "parts": 1e-3}
    return c
