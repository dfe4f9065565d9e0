"""``stn-icnn eval`` and ``stn-icnn export`` on a tiny run: the printed and written F1
against an independent numpy count for each crop mode, the Table 2 rows, the weights
round trip, and the one-line errors.

The work directory is written by ``training_helpers.write_fake_run`` (each stage's
checkpoint through the training loop's own ``StageRun``, parameters moved by seeded
noise, no training steps: fast), on the tiny training config (4 test faces of 64-96 px,
evaluation batch 3 so the last batch is padded).

The reference parses the 4 test images in one batch with ``stn_icnn.parse`` and counts
a confusion per image with ``np.bincount`` inside the image (against the record's own
soft labels' hard map, not the canvas label), pooled, F1 by the paper's formula; for the
centroid crops the centres are computed here in numpy from K's argmax map.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import training_helpers
from stn_icnn_jax import cli, weights as weights_lib
from stn_icnn_jax.config import build
from stn_icnn_jax.data import input_pipeline, labels as labels_lib
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.taxonomy import F1_SETS, PART_CLASSES
from stn_icnn_jax.train import distributed, run as run_lib

STAGES = ("rough", "localizer", "parts", "end_to_end")


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    with training_helpers.compilation_cache(tmp_path_factory.mktemp("jax_cache")) as path:
        yield path


@pytest.fixture(scope="module")
def config():
    c = training_helpers.tiny_training_config(STAGES, epochs=1)
    c.train.eval_batch_size = 3
    return c


@pytest.fixture(scope="module")
def fake_run(config, compilation_cache, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("eval") / "work"
    after = training_helpers.write_fake_run(config, workdir)
    return workdir, after


@pytest.fixture(scope="module")
def reference(config, fake_run):
    """``reference(stage, crops) -> (pooled confusion, f1)`` computed independently."""
    sources = load_sources(config, show_progress=False)
    model = run_lib.initial_model(config, sources)
    records = sources["test"]
    layout = input_pipeline.Layout(build.input_config(config, 1, training=False),
                                   ("rough_image", "canvas", "image_size", "image_origin",
                                    "centers"))
    rows = [layout.map(dict(r)) for r in records]
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    parse = jax.jit(lambda v, b, source: stn_icnn.parse(model, v, b, theta_source=source)["labels"],
                    static_argnames="source")
    rough = jax.jit(lambda v, x: model.apply(v, x, False, method=stn_icnn.STNiCNN.rough_logits))
    cache = {}

    def compute(stage, crops):
        if (stage, crops) in cache:
            return cache[(stage, crops)]
        variables = fake_run[1][stage]
        if crops == "centroid":
            centers = _numpy_centroids(np.asarray(rough(variables, batch["rough_image"])),
                                       batch["image_size"], model.config)
            pred = parse(variables, {**batch, "centers": centers}, "ground_truth")
        else:
            pred = parse(variables, batch, crops)
        pred = np.asarray(pred)
        confusion = np.zeros((9, 9), np.int64)
        for i, record in enumerate(records):
            (top, left), (h, w) = batch["image_origin"][i], batch["image_size"][i]
            target = labels_lib.hard_label(np.asarray(record["soft_labels"])).astype(np.int64)
            mine = pred[i, top : top + h, left : left + w].astype(np.int64)
            confusion += np.bincount((target * 9 + mine).ravel(), minlength=81).reshape(9, 9)
        cache[(stage, crops)] = confusion, _f1(confusion)
        return cache[(stage, crops)]

    return compute


def _numpy_centroids(logits, image_size, model_config):
    """The iCNN cropper by hand: argmax map, mean pixel position per part, mapped to the
    image through the resize's pixel centres, rounded; the mean box where a part is absent."""
    label = logits.argmax(-1)
    r = label.shape[1]
    out = np.zeros((len(label), 6, 2), np.float32)
    init = np.asarray(model_config.localizer.init_params)
    for n in range(len(label)):
        h, w = image_size[n]
        for p, classes in enumerate(PART_CLASSES):
            ys, xs = np.nonzero(np.isin(label[n], classes))
            if len(ys):
                y, x = (ys.mean() + 0.5) * h / r - 0.5, (xs.mean() + 0.5) * w / r - 0.5
            else:  # eq. 21 inverted: tx = -1 + 2 (x + 0.5) / w
                y, x = (init[p, 3] + 1) * h / 2 - 0.5, (init[p, 2] + 1) * w / 2 - 0.5
            out[n, p] = np.floor(y + 0.5), np.floor(x + 0.5)
    return out


def _f1(confusion):
    out = {}
    for name, members in F1_SETS.items():
        m = list(members)
        hits = confusion[np.ix_(m, m)].sum()
        out[name] = 2 * hits / (confusion[m].sum() + confusion[:, m].sum())
    return out


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("crops", ["predicted", "ground_truth", "centroid"])
def test_eval_equals_an_independent_count(crops, fake_run, reference, capsys):
    workdir, _ = fake_run
    code, out, err = _run(["eval", "--workdir", str(workdir), "--crops", crops], capsys)
    assert code == 0, err
    confusion, want = reference("end_to_end", crops)
    assert confusion[1:, :].sum() > 0 and confusion[:, 1:].sum() > 0  # not trivially empty
    last = out.strip().splitlines()[-1]
    assert last.startswith("overall") and f"{crops} crops" in last
    assert float(last.split()[-1]) == pytest.approx(want["overall"], abs=2e-4)
    result = json.loads((workdir / f"eval-end_to_end-test-{crops}.json").read_text())
    assert result["pixels"] == confusion.sum() and result["images"] == 4
    assert result["checkpoint"]["best_step"] == 4  # the fake run's end_to_end step
    for name, value in want.items():
        assert result["f1"][name] == pytest.approx(value, abs=2e-3), name
    header = out.splitlines()[0]
    assert header == "| " + " | ".join(F1_SETS) + " |"


def test_table2_rows_and_a_row_never_trained(fake_run, reference, capsys, tmp_path):
    workdir, _ = fake_run
    code, out, err = _run(["eval", "--workdir", str(workdir), "--table2"], capsys)
    assert code == 0, err
    rows = json.loads((workdir / "table2-test.json").read_text())["rows"]
    assert list(rows) == ["iCNN", "STN-iCNN*", "STN-iCNN"]
    for name, (stage, crops) in {"iCNN": ("parts", "centroid"),
                                 "STN-iCNN*": ("parts", "predicted"),
                                 "STN-iCNN": ("end_to_end", "predicted")}.items():
        assert (rows[name]["stage"], rows[name]["crops"], rows[name]["status"]) == (stage, crops, "ok")
        want = reference(stage, crops)[1]
        for key, value in want.items():
            assert rows[name]["f1"][key] == pytest.approx(value, abs=2e-3), (name, key)
        assert f"| {name} ({stage}, {crops} crops) | {rows[name]['f1']['eyes']:.3f} |" in out
    # the same run before its end-to-end stage
    partial = tmp_path / "partial"
    shutil.copytree(workdir, partial)
    shutil.rmtree(partial / "end_to_end")
    code, out, err = _run(["eval", "--workdir", str(partial), "--table2"], capsys)
    assert code == 0, err
    rows = json.loads((partial / "table2-test.json").read_text())["rows"]
    assert rows["STN-iCNN"] == {"stage": "end_to_end", "crops": "predicted",
                                "status": "not trained", "missing": ["end_to_end"]}
    assert rows["iCNN"]["status"] == "ok"
    assert "| STN-iCNN (end_to_end, predicted crops) | not trained: stage end_to_end |" in out


def test_export_then_eval_weights_equals_workdir(fake_run, reference, capsys, tmp_path):
    workdir, after = fake_run
    path = tmp_path / "model.stnw"
    code, out, err = _run(["export", "--workdir", str(workdir), "--out", str(path),
                           "--stage", "parts"], capsys)
    assert code == 0, err
    loaded = weights_lib.load(path)
    assert loaded.record["stage"] == "parts" and loaded.record["stages"]["parts"]["best_step"] == 3
    assert set(loaded.record["stages"]) == {"rough", "localizer", "parts"}
    want = jax.tree_util.tree_flatten_with_path(after["parts"])[0]
    got = dict(jax.tree_util.tree_flatten_with_path(loaded.variables)[0])
    for key, x in want:
        np.testing.assert_array_equal(got[key], x)
    for crops in ("centroid", "predicted"):
        code, out, err = _run(["eval", "--weights", str(path), "--crops", crops,
                               "--out", str(tmp_path / f"{crops}.json")], capsys)
        assert code == 0, err
        result = json.loads((tmp_path / f"{crops}.json").read_text())
        confusion, f1 = reference("parts", crops)
        assert result["pixels"] == confusion.sum()
        for key, value in f1.items():
            assert result["f1"][key] == pytest.approx(value, abs=2e-3), (crops, key)
    table = json.loads((workdir / "table2-test.json").read_text())["rows"] \
        if (workdir / "table2-test.json").exists() else None
    if table is not None:  # the same evaluation path: identical numbers
        assert result["f1"] == table["STN-iCNN*"]["f1"]


def _error_line(code, err):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_errors_are_one_line(fake_run, capsys, tmp_path):
    workdir, _ = fake_run
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((workdir / "config.json").read_text())
    partial = tmp_path / "partial"
    shutil.copytree(workdir, partial, ignore=shutil.ignore_patterns("end_to_end"))
    good = tmp_path / "good.stnw"
    weights_lib.save(good, {"params": {}, "batch_stats": {}},
                     build.load_config("experiments/configs/smoke.py"))
    damaged = tmp_path / "damaged.stnw"
    damaged.write_bytes(good.read_bytes()[:20])
    cases = [
        (["--workdir", str(tmp_path / "absent")], "no such work directory"),
        (["--workdir", str(empty)], "no checkpoints"),
        (["--workdir", str(partial)], "stage end_to_end was never trained here"),
        (["--workdir", str(partial), "--stage", "rough"], "does not train the part models"),
        (["--workdir", str(workdir), "--split", "nope"], "split 'nope' does not exist"),
        (["--workdir", str(workdir), "--data", "synthetic_faces", "--data_dir",
          str(tmp_path / "tfds")], "is not built"),
        (["--weights", str(tmp_path / "absent.stnw")], "no such weights file"),
        (["--weights", str(damaged)], "damaged.stnw"),
        (["--weights", str(good)], "do not fit the model"),
    ]
    for argv, message in cases:
        line = _error_line(*_run(["eval", *argv], capsys)[::2])
        assert message in line, (argv, line)
    line = _error_line(*_run(["export", "--workdir", str(partial), "--out",
                              str(tmp_path / "x.stnw"), "--stage", "end_to_end"], capsys)[::2])
    assert "stage end_to_end was never trained" in line
    assert not (tmp_path / "x.stnw").exists()
