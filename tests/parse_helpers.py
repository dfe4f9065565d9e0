"""Shared by the photo-parsing tests: a tiny weights file (smoke config, random init)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import jax
import numpy as np

from stn_icnn_jax import weights as weights_lib
from stn_icnn_jax.config import load_config
from stn_icnn_jax.model import stn_icnn

SMOKE = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "smoke.py"


def tiny_weights_file(folder: Path, seed: int = 0, scale: float = 1.0) -> Path:
    """A weights file of the smoke config's tiny model with random variables (numpy
    normal draws of the model's shapes: no compilation, so it is instant)."""
    config = load_config(SMOKE)
    model = stn_icnn.STNiCNN(weights_lib.Weights({}, config, {}).model_config())
    template = jax.eval_shape(lambda: stn_icnn.init_variables(model, jax.random.key(0, impl="rbg")))
    rng = np.random.default_rng(seed)

    head_bias = np.asarray(model.config.localizer.init_free(), np.float32)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "localizer" in name and "'fc'" in name:  # L's head as initialised: the mean crops
            return head_bias.reshape(leaf.shape) if "bias" in name else np.zeros(leaf.shape, np.float32)
        if "var" in name:
            return np.ones(leaf.shape, np.float32)
        if "mean" in name or "bias" in name:
            return np.zeros(leaf.shape, np.float32)
        return (rng.normal(size=leaf.shape) * scale).astype(np.float32)

    variables = jax.tree_util.tree_map_with_path(
        draw, {k: template[k] for k in ("params", "batch_stats")})
    return weights_lib.save(Path(folder) / "tiny.stnw", variables, config,
                            {"made_by": "tests/parse_helpers.py: smoke config, random init"})


@functools.lru_cache(maxsize=None)
def shared_weights_file() -> Path:
    """One tiny weights file per test process: every test that parses with it (API and
    command line, ``max_side=256``, batch 2) shares one cached, compiled Parser."""
    return tiny_weights_file(Path(tempfile.mkdtemp(prefix="stn_icnn_parse_tests_")))
