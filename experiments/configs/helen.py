"""HELEN with the paper's Table 1 hyper-parameters (pre-training and end-to-end).

Build the dataset first: `stn-icnn data build helen --manual_dir DIR` (see
`stn-icnn data instructions helen`). Paper: pre-training Lr1 0.0023 (K), Lr2 0.0017
(L), batch 32, 25 epochs; end-to-end Lr1 1e-4, Lr2 1e-4, Lr3 1e-2, batch 32, 25 epochs;
Adam, halved every 5 epochs. The part pre-training rate is not in Table 1: 0.0008 is
the authors' (docs/authors-code.md §5).
"""

from stn_icnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.source = "tfds"
    c.data.name = "helen"
    c.data.canvas_size = 1024
    return c
