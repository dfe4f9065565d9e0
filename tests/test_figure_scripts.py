"""The figure scripts (experiments/fig_*.py) run on a tiny work directory and write what
they promise; their numbers agree with `stn-icnn eval` and with the sampler's exactness
at odd crop sizes. Slow (several model compilations each)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import training_helpers
from stn_icnn_jax import cli

pytestmark = pytest.mark.slow
_script = training_helpers.experiment_script


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


def test_pipeline_figure_of_the_real_photos(workdir, tmp_path):
    stem = _script("fig_pipeline").main(["--workdir", str(workdir), "--out_dir",
                                         str(tmp_path), "--real_photos"])
    assert stem.with_suffix(".png").stat().st_size > 0
    rows = [line for line in stem.with_suffix(".md").read_text().splitlines()
            if line.startswith("| ")]
    assert len(rows) == 1 + 2  # header + one framed face per photo


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
    combined = evaluation.with_part_models_of(evaluation.load_run(small, until="localizer"),
                                              large_run)
    large = large_run.variables["parts"]
    for network, source in (("rough", after["localizer"]), ("localizer", after["localizer"]),
                            ("parts", large)):
        for a, b in zip(jax.tree_util.tree_leaves(combined["params"][network]),
                        jax.tree_util.tree_leaves(source["params"][network])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    capsys.readouterr()


def test_eval_localizers_rows_are_evals_with_swapped_localisers(workdir, tmp_path, capsys):
    """Row 1 is `stn-icnn eval --stage parts --crops predicted` of the parts run; a row
    of another run's K and L with the same part models scores as those variables do, and
    its centre error is the mean window-centre distance of L's theta."""
    config = training_helpers.tiny_training_config(("rough", "localizer"), epochs=1)
    other = tmp_path / "other"
    training_helpers.write_fake_run(config, other, seed=2, noise=0.2)
    module = _script("eval_localizers")
    text = module.main(["--parts_from", str(workdir), "--workdir", str(other),
                        "--out", str(tmp_path / "t.md")])
    rows = [line.split("|")[1:-1] for line in text.splitlines()
            if line.startswith("| ") and "K and L from" not in line]
    header = [cell.strip() for line in text.splitlines() if "K and L from" in line
              for cell in line.split("|")[1:-1]]
    assert [r[0].strip() for r in rows] == [workdir.name, other.name]
    assert [r[header.index("coord channels")].strip() for r in rows] == ["no", "no"]
    assert cli.main(["eval", "--workdir", str(workdir), "--stage", "parts", "--crops",
                     "predicted", "--out", str(tmp_path / "e.json")]) == 0
    f1 = json.loads((tmp_path / "e.json").read_text())["f1"]["overall"]
    assert float(rows[0][-1]) == pytest.approx(f1, abs=1e-3)
    from stn_icnn_jax import evaluation

    parts_run = evaluation.load_run(workdir, until="parts")
    other_run = evaluation.load_run(other, until="localizer")
    variables = evaluation.with_part_models_of(other_run, parts_run)
    source = evaluation.split_source(parts_run.config, "test")
    records = [source[i] for i in range(len(source))]
    mesh = evaluation.distributed.make_mesh(None)
    expected = evaluation.score(other_run.model, variables, other_run.config, source,
                                "predicted", mesh)["f1"]["overall"]
    assert float(rows[1][-1]) == pytest.approx(expected, abs=1e-3)
    # the centre error by hand: eq. 21 inverted (paper convention, tx = -1 + 2 (x + 0.5) / W
    # on the canvas), minus the image's origin, per present part
    batch = {k: np.asarray(v) for k, v in
             _script("figures_common").batch_of(records, other_run.config).items()}
    from stn_icnn_jax.model import stn_icnn

    theta = np.asarray(stn_icnn.parse(other_run.model, variables, batch)["theta_canvas"])
    canvas = batch["canvas"].shape[1]
    assert other_run.config.model.theta_convention == "paper"
    centre_x = (theta[..., 0, 2] + 1) * canvas / 2 - 0.5 - batch["image_origin"][:, None, 1]
    centre_y = (theta[..., 1, 2] + 1) * canvas / 2 - 0.5 - batch["image_origin"][:, None, 0]
    distance = np.hypot(centre_y - batch["centers"][..., 0], centre_x - batch["centers"][..., 1])
    assert float(rows[1][header.index("L's centre error (px)")]) == pytest.approx(distance[batch["centers_present"]].mean(), abs=0.06)
    capsys.readouterr()


def test_photometric_ablation_rows_are_evals(workdir, tmp_path, capsys):
    """Each part-model row scores the named run's part models behind --run's K and L (the
    synthetic rows are `evaluation.score` of those variables, the real-photo rows
    `real_photos.score_croppers` of them); each K row scores that run's own K."""
    from stn_icnn_jax import evaluation, weights
    from stn_icnn_jax.photo import real_photos

    config = training_helpers.tiny_training_config(("rough", "parts"), epochs=1)
    config.data.photometric = "default"
    twin = tmp_path / "twin"
    training_helpers.write_fake_run(config, twin, seed=3, noise=0.2)
    text = _script("ablate_photometric").main(["--run", str(workdir), "--twin", str(twin),
                                               "--out", str(tmp_path / "a.md")])
    sections = {}
    for block in text.split("## ")[1:]:
        title = block.splitlines()[0]
        sections[title] = {line.split("`")[1]: [c.strip() for c in line.split("|")[1:-1]]
                           for line in block.splitlines() if line.startswith("| `")}
    run = evaluation.load_run(workdir, until="parts")
    mesh = evaluation.distributed.make_mesh(None)
    source = evaluation.split_source(run.config, "test")
    for trained in (run, evaluation.load_run(twin, until="parts")):
        row = trained.workdir.name
        assert sections["part models: synthetic test, L's crops"][row][0].endswith(
            {"work": '"none"', "twin": '"default"'}[row])
        variables = evaluation.with_part_models_of(run, trained)
        for crops, title in (("ground_truth", "part models: synthetic test, ground-truth crops"),
                             ("predicted", "part models: synthetic test, L's crops")):
            want = evaluation.score(run.model, variables, run.config, source, crops, mesh)["f1"]
            assert float(sections[title][row][-1]) == pytest.approx(want["overall"], abs=1e-3)
        photos = real_photos.score_croppers(weights.Weights(variables, run.config, {}))
        assert float(sections["part models: real photos, hand-label crops"][row][-1]) == \
            pytest.approx(photos["crops"]["ground_truth"]["overall"], abs=1e-3)
        own = evaluation.score_rough_map(trained.model, trained.variables["rough"],
                                         trained.config, source, mesh)
        assert float(sections["K's own map: synthetic test"][row][-1]) == \
            pytest.approx(own["overall"], abs=1e-3)
    capsys.readouterr()
