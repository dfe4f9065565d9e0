"""The default weights' job (the weights `stn-icnn parse` ships with): the main job's
recipe (experiments/configs/synthetic.py) on the synthetic `default` split (2,000 / 230 /
100 faces, HELEN's split sizes, 10x the main job's faces) with more epochs.

Budget (estimated from the main job's measured step times on 2 quiet CPU cores, batch 8,
10,000 augmented images = 1,250 steps per epoch: rough 0.66 s, localiser 0.67 s, parts
1.55 s, end to end 2.6 s per step): rough 4 epochs ~55 min, localiser 3 ~42 min, parts
5 ~2.7 h, end to end 2 ~1.8 h: about 5.5 hours on 2 CPU cores, under 10 minutes on one
GPU. Not run yet. Build the data first: `stn-icnn data build synthetic_faces --config
default` (~10 minutes).

    stn-icnn train --config experiments/configs/default.py --workdir runs/default
"""

from pathlib import Path

from stn_icnn_jax.config import load_config


def get_config():
    c = load_config(Path(__file__).with_name("synthetic.py"))  # the main job's recipe
    c.data.builder_config = "default"
    c.stages.rough.epochs = 4
    c.stages.localizer.epochs = 3
    c.stages.parts.epochs = 5
    c.stages.end_to_end.epochs = 2
    return c
