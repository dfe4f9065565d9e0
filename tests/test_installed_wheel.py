"""A fresh install, as a user gets it: the wheel built from this source tree, installed
into a new virtual environment, parses a folder of photos with the bundled default
weights, from a directory outside the source tree.

Catches what the editable install of the test suite hides: package data left out of the
wheel (the default weights, the real-photo labels), imports of files that only exist in
the checkout, a console script that does not start. The new environment reuses the
already installed third-party packages (``--system-site-packages``) so the test needs no
network; the package itself comes only from the wheel (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stn_icnn_jax import taxonomy
from stn_icnn_jax.photo.real_photos import PHOTO_FILES

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd) -> subprocess.CompletedProcess:
    """``args`` run in ``cwd`` without PYTHONPATH (which would put a checkout's package
    before the installed one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` directory of a new venv holding only the wheel of this source tree."""
    work = tmp_path_factory.mktemp("fresh")
    source = work / "source"  # a copy, so the build leaves no build/ in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "stn_icnn_jax", source / "stn_icnn_jax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-w", work / "wheels", source], cwd=work)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (work / "wheels").glob("stn_icnn_jax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "stn_icnn_jax/default_weights/default.stnw" in names
    assert {"stn_icnn_jax/photo/real_photo_labels/grace_hopper.json",
            "stn_icnn_jax/photo/real_photo_labels/astronaut.json"} <= set(names)

    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=work)
    assert made.returncode == 0, made.stderr[-2000:]
    bin_dir = venv / "bin"
    # --force-reinstall --no-deps: the venv gets its own copy even though the test
    # environment has an (editable) install of the same version
    installed = run([bin_dir / "python", "-m", "pip", "install", "--no-deps",
                     "--force-reinstall", wheel], cwd=work)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return bin_dir


@pytest.mark.slow
def test_the_installed_package_is_the_wheel(installed, tmp_path):
    where = run([installed / "python", "-c",
                 "import stn_icnn_jax, sys; print(stn_icnn_jax.__file__)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    assert str(installed.parent) in where.stdout, where.stdout  # not the checkout's copy


@pytest.mark.slow
def test_fresh_install_parses_a_folder_with_the_bundled_weights(installed, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PHOTO_FILES["grace_hopper"](), photos / "grace.jpg")
    shutil.copy(PHOTO_FILES["astronaut"](), photos / "astronaut.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    done = run([installed / "stn-icnn", "parse", photos, "--out", out, "--no_progress"],
               cwd=tmp_path)
    # one photo failed: exit code 1, the bad file named, the others parsed
    assert done.returncode == 1, (done.stdout, done.stderr[-3000:])
    assert "broken.jpg" in done.stderr and "error:" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.labels.png", "astronaut.overlay.png", "grace.labels.png",
        "grace.overlay.png", "legend.json"]
    for name, photo in (("grace", "grace.jpg"), ("astronaut", "astronaut.png")):
        labels = Image.open(out / f"{name}.labels.png")
        assert labels.mode == "P"
        assert labels.size == Image.open(photos / photo).size
        ids = np.asarray(labels)
        assert ids.max() <= 8
        # the bundled model finds at least eyes, nose and mouth parts on these faces
        assert len(set(np.unique(ids).tolist()) - {0}) >= 3, np.unique(ids)
    legend = json.loads((out / "legend.json").read_text())
    assert [c["name"] for c in legend["classes"]] == list(taxonomy.CLASS_NAMES)
