"""Weights files: a round trip is exact, damaged or foreign files name themselves."""

import jax
import numpy as np
import pytest

from stn_icnn_jax import weights as weights_lib
from stn_icnn_jax.config import build
from stn_icnn_jax.model import stn_icnn

SMOKE = "experiments/configs/smoke.py"


@pytest.fixture(scope="module")
def smoke():
    config = build.load_config(SMOKE)
    model = stn_icnn.STNiCNN(build.model_config(config))
    variables = jax.jit(lambda k: stn_icnn.init_variables(model, k))(jax.random.key(3, impl="rbg"))
    # distinct values in every leaf, so a mixed-up leaf would show
    leaves, treedef = jax.tree_util.tree_flatten(variables)
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_unflatten(
        treedef, [rng.normal(size=x.shape).astype(x.dtype) for x in leaves])
    return config, variables


def test_round_trip_is_exact(tmp_path, smoke):
    config, variables = smoke
    path = weights_lib.save(tmp_path / "m.stnw", variables, config, {"test_f1": 0.5, "seed": 1})
    assert not (tmp_path / "m.stnw.tmp").exists()
    loaded = weights_lib.load(path)
    assert loaded.record == {"test_f1": 0.5, "seed": 1}
    assert loaded.config.to_json(sort_keys=True) == config.to_json(sort_keys=True)
    want = jax.tree_util.tree_flatten_with_path(variables)[0]
    got = dict(jax.tree_util.tree_flatten_with_path(loaded.variables)[0])
    assert len(got) == len(want)
    for path_, x in want:
        np.testing.assert_array_equal(got[path_], np.asarray(x))
        assert got[path_].dtype == np.asarray(x).dtype
    weights_lib.check_variables(loaded)
    assert loaded.model_config() == build.model_config(config)


def test_loaded_weights_compute_what_the_originals_do(tmp_path, smoke):
    config, variables = smoke
    loaded = weights_lib.load(weights_lib.save(tmp_path / "m.stnw", variables, config))
    model = loaded.model()
    x = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype(np.float32)
    a = stn_icnn.apply_module(model, variables, stn_icnn.STNiCNN.rough_logits, x, train=False)
    b = stn_icnn.apply_module(model, loaded.variables, stn_icnn.STNiCNN.rough_logits, x, train=False)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_damaged_and_foreign_files_are_named(tmp_path, smoke):
    config, variables = smoke
    path = weights_lib.save(tmp_path / "m.stnw", variables, config)
    data = path.read_bytes()
    (tmp_path / "cut.stnw").write_bytes(data[: len(data) // 2])
    (tmp_path / "zero.stnw").write_bytes(bytes(len(data)))
    (tmp_path / "other.stnw").write_bytes(b"\x81\xa1a\x01")  # msgpack {"a": 1}
    for name in ("cut.stnw", "zero.stnw", "other.stnw", "absent.stnw"):
        with pytest.raises(weights_lib.WeightsFileError, match=name):
            weights_lib.load(tmp_path / name)


def test_variables_that_do_not_fit_the_config_are_listed(tmp_path, smoke):
    config, variables = smoke
    other = build.load_config(SMOKE, ["--config.model.icnn_channels=(4, 6)"])
    loaded = weights_lib.load(weights_lib.save(tmp_path / "m.stnw", variables, other))
    with pytest.raises(weights_lib.WeightsFileError, match="shape"):
        weights_lib.check_variables(loaded, tmp_path / "m.stnw")
