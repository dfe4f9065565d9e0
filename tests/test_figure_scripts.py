"""The figure scripts (experiments/fig_*.py) run on a tiny work directory and write what
they promise; their numbers agree with `stn-icnn eval` and with the sampler's exactness
at odd crop sizes. Slow (several model compilations each)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest

import training_helpers
from stn_icnn_jax import cli

pytestmark = pytest.mark.slow
EXPERIMENTS = training_helpers.REPO / "experiments"


def _script(name):
    spec = importlib.util.spec_from_file_location(f"_fig_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    config = training_helpers.tiny_training_config(
        ("rough", "localizer", "parts", "end_to_end"), epochs=1)
    path = tmp_path_factory.mktemp("figures") / "work"
    training_helpers.write_fake_run(config, path)
    return path


def test_odd_crops_equal_integer_crops_even_ones_do_not(workdir, tmp_path):
    stem = _script("fig_crops_odd_even").main(["--workdir", str(workdir), "--out_dir",
                                               str(tmp_path), "--faces", "3"])
    assert stem.with_suffix(".png").stat().st_size > 0
    rows = [line.split("|")[1:-1] for line in stem.with_suffix(".md").read_text().splitlines()
            if line.startswith("| ") and "crop size" not in line]
    assert len(rows) == 6  # crop size 15: 13..18
    for size, parity, mean_abs, max_abs, changed in rows:
        if int(size) % 2:
            assert float(max_abs) <= 0.01 and changed.strip() == "0.00%"
        else:
            assert float(mean_abs) > 0.1


def test_pipeline_figure(workdir, tmp_path):
    stem = _script("fig_pipeline").main(["--workdir", str(workdir), "--out_dir",
                                         str(tmp_path)])
    assert stem.with_suffix(".png").stat().st_size > 0
    table = stem.with_suffix(".md").read_text()
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + 4  # header + 4 faces


def test_occlusion_figure_unoccluded_f1_is_evals(workdir, tmp_path, capsys):
    stem = _script("fig_occlusion").main(["--workdir", str(workdir), "--out_dir",
                                          str(tmp_path)])
    assert stem.with_suffix(".png").stat().st_size > 0
    rows = {(r[0].strip(), r[1].strip()): r for r in
            (line.split("|")[1:-1] for line in stem.with_suffix(".md").read_text().splitlines()
             if line.startswith("| ") and "cropper" not in line)}
    assert len(rows) == 10
    for cropper, crops in (("STN", "predicted"), ("iCNN (centroid)", "centroid")):
        assert cli.main(["eval", "--workdir", str(workdir), "--crops", crops,
                         "--out", str(tmp_path / f"{crops}.json")]) == 0
        f1 = json.loads((tmp_path / f"{crops}.json").read_text())["f1"]["overall"]
        assert float(rows[("none", cropper)][4]) == pytest.approx(f1, abs=1e-3)
    capsys.readouterr()


def test_rough_size_figure_rows_are_evals(workdir, tmp_path, capsys):
    """b = 32 (the tiny run) and b = 16 (K and L of a second run): the large rows are
    `stn-icnn eval --stage parts`'s numbers; the small model runs the large run's part
    models with the small run's K and L."""
    config = training_helpers.tiny_training_config(("rough", "localizer"), epochs=1)
    config.model.rough_size = 16
    small = tmp_path / "small"
    after = training_helpers.write_fake_run(config, small, seed=1)
    module = _script("fig_rough_size")
    stem = module.main(["--workdir", str(workdir), "--workdir64", str(small),
                        "--out_dir", str(tmp_path)])
    assert stem.with_suffix(".png").stat().st_size > 0
    rows = {(r[0].strip(), r[1].strip()): float(r[-1]) for r in
            (line.split("|")[1:-1] for line in stem.with_suffix(".md").read_text().splitlines()
             if line.startswith("| ") and "cropper" not in line)}
    assert sorted(rows) == sorted((b, label) for b in ("16", "32")
                                  for label in module.CROPPERS.values())
    for crops, label in module.CROPPERS.items():
        assert cli.main(["eval", "--workdir", str(workdir), "--stage", "parts", "--crops",
                         crops, "--out", str(tmp_path / f"{crops}.json")]) == 0
        f1 = json.loads((tmp_path / f"{crops}.json").read_text())["f1"]["overall"]
        assert rows[("32", label)] == pytest.approx(f1, abs=1e-3)
    from stn_icnn_jax import evaluation

    large_run = evaluation.load_run(workdir, until="parts")
    combined = module.combined_variables(evaluation.load_run(small, until="localizer"), large_run)
    large = large_run.variables["parts"]
    for network, source in (("rough", after["localizer"]), ("localizer", after["localizer"]),
                            ("parts", large)):
        for a, b in zip(jax.tree_util.tree_leaves(combined["params"][network]),
                        jax.tree_util.tree_leaves(source["params"][network])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    capsys.readouterr()
