"""experiments/sweep_stage.py --reuse_from: a later stage's sweep trains on the earlier
stages' networks of a finished run, not on random ones. Slow (a `stn-icnn train`
subprocess)."""

from __future__ import annotations


import numpy as np
import pytest

import training_helpers

pytestmark = pytest.mark.slow
STAGES = ("rough", "localizer")


def _sweep_stage():
    return training_helpers.experiment_script("sweep_stage")


def test_localizer_sweep_reuses_the_runs_K(tmp_path):
    config_file = tmp_path / "tiny.py"
    config_file.write_text(training_helpers.tiny_config_source(STAGES, epochs=1))
    run = tmp_path / "run"
    training_helpers.write_fake_run(training_helpers.tiny_training_config(STAGES, 1), run,
                                    stages=("rough",))
    sweep = tmp_path / "sweep"
    _sweep_stage().main(["--config", str(config_file), "--stage", "localizer",
                         "--workdir", str(sweep), "--reuse_from", str(run),
                         "--variant", "one: epochs=1", "--out", str(tmp_path / "t.md")])
    source, _, _ = training_helpers.read_checkpoint(run, "rough")
    trained, _, _ = training_helpers.read_checkpoint(sweep / "one", "localizer")
    rough_keys = [k for k in source if "rough" in k and "params" in k]
    localizer_keys = [k for k in source if "localizer" in k and "params" in k]
    assert rough_keys and localizer_keys
    for key in rough_keys:  # K came from the run (its fake-trained values), frozen
        np.testing.assert_array_equal(trained[key], source[key], err_msg=key)
    assert any(not np.array_equal(trained[k], source[k]) for k in localizer_keys)  # L trained
    table = (tmp_path / "t.md").read_text()
    assert "| one |" in table and "theta" in table


def test_reuse_from_a_run_without_the_earlier_stage_is_one_clear_error(tmp_path):
    config_file = tmp_path / "tiny.py"
    config_file.write_text(training_helpers.tiny_config_source(STAGES, epochs=1))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no rough checkpoints in .*empty/rough/checkpoints"):
        _sweep_stage().main(["--config", str(config_file), "--stage", "localizer",
                             "--workdir", str(tmp_path / "sweep"), "--reuse_from",
                             str(tmp_path / "empty"), "--variant", "one: epochs=1"])
