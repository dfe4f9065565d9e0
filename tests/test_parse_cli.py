"""`stn-icnn parse` on a folder with a real photo and a corrupt file."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from stn_icnn_jax import taxonomy
from stn_icnn_jax.cli.main import main
from stn_icnn_jax.photo import api
from stn_icnn_jax.photo.real_photos import PHOTO_FILES
from parse_helpers import shared_weights_file


def test_cli_parses_a_folder_and_names_the_corrupt_file(tmp_path, capsys):
    weights = shared_weights_file()
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO_FILES["grace_hopper"](), photos / "grace.jpg")
    (photos / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (photos / "notes.txt").write_text("not a photo, ignored")
    out = tmp_path / "out"
    code = main(["parse", str(photos), "--out", str(out), "--weights", str(weights),
                 "--max_side", "256", "--batch_size", "2", "--no_progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the first one compiles the model" in err
    assert "corrupt.png" in err and "error:" in err
    assert "1 photo(s) failed" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "grace.labels.png", "grace.overlay.png", "legend.json"]

    label_png = Image.open(out / "grace.labels.png")
    assert label_png.mode == "P" and label_png.size == (512, 600)  # the photo's (w, h)
    labels = np.asarray(label_png)
    palette = np.asarray(label_png.getpalette()[: 3 * 9], np.uint8).reshape(9, 3)
    np.testing.assert_array_equal(palette, taxonomy.PALETTE)
    # the pixel values are the class ids that the API returns for the same photo
    same = api.parse(photos / "grace.jpg", api.get_parser(weights, 2, 256))
    np.testing.assert_array_equal(labels, same)
    assert labels.max() <= 8 and (labels > 0).any()

    overlay = np.asarray(Image.open(out / "grace.overlay.png"))
    photo = np.asarray(Image.open(photos / "grace.jpg").convert("RGB"))
    assert overlay.shape == photo.shape
    np.testing.assert_array_equal(overlay[labels == 0], photo[labels == 0])
    assert (overlay[labels > 0] != photo[labels > 0]).any()

    legend = json.loads((out / "legend.json").read_text())
    assert [c["id"] for c in legend["classes"]] == list(range(9))
    assert [c["name"] for c in legend["classes"]] == list(taxonomy.CLASS_NAMES)
    assert legend["classes"][3] == {"id": 3, "name": "left_eye", "rgb": [0, 90, 255]}
    assert "image's left" in legend["left"]


def test_cli_all_good_exits_zero_without_overlay(tmp_path, capsys):
    weights = shared_weights_file()
    photo = tmp_path / "blank.png"
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(photo)
    out = tmp_path / "out"
    code = main(["parse", str(photo), "--out", str(out), "--weights", str(weights),
                 "--max_side", "256", "--batch_size", "2", "--no-overlay",
                 "--no-face-fallback", "--no_progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "blank.png: no face found; skipped" in err
    assert sorted(p.name for p in out.iterdir()) == ["blank.labels.png", "legend.json"]
    assert not np.asarray(Image.open(out / "blank.labels.png")).any()


def test_cli_missing_weights_is_one_line(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    code = main(["parse", str(photo), "--out", str(tmp_path / "o"), "--weights",
                 str(tmp_path / "nope.stnw")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"error: {tmp_path / 'nope.stnw'}: no such weights file"


def test_cli_no_photos_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["parse", str(empty), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"error: no photos found in {empty}"
