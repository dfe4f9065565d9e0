"""All four stages on a few dozen synthetic faces, tiny networks: the tests' config."""

from stn_icnn_jax.config import base_config


def get_config():
    c = base_config()
    c.data.source = "synthetic_in_memory"
    c.data.num_train, c.data.num_validation, c.data.num_test = 24, 8, 8
    c.data.canvas_size = 640
    c.data.copies = 2
    c.model.icnn_channels = (4, 8)
    c.model.num_interlink_layers = 1
    c.model.localizer_channels = (4, 4, 8, 8, 8, 8, 8, 8)
    c.model.rough_size = 64
    c.train.batch_size = 8
    c.train.eval_batch_size = 8
    c.train.checkpoint_every_steps = 2
    c.train.log_every_steps = 1
    for stage in c.stages.values():
        stage.epochs = 2
    return c
