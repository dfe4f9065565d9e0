"""Configuration: the base ConfigDict (:mod:`.base`) and its typed forms (:mod:`.build`)."""

from stn_icnn_jax.config.base import base_config
from stn_icnn_jax.config.build import (
    apply_override,
    input_config,
    load_config,
    model_config,
    stage_config,
)

__all__ = ["apply_override", "base_config", "input_config", "load_config", "model_config",
           "stage_config"]
