"""Same seed, same faces: the synthetic faces of every builder config stay as recorded.

The records in ``tests/data/synthetic_face_hashes.json`` were first made from the
generator before it was split into a package (issue 8). Labels and generator meta are
compared bit for bit (sha256 per builder config): any change to what a seed draws
changes them. The pictures are compared by a fingerprint with a tolerance, not bit for
bit: OpenCV's image operations take CPU-specific code paths (Intel IPP among them), so
the same seed gives pictures that differ by a few grey levels at a few pixels on
different CPUs (measured here: IPP on vs off changed 7 of 24 `tiny` faces, by at most
6/255 at up to 947 pixels; the labels did not change). The fingerprint of a picture is
its 8x8 grid of block means of the grey image and its three channel means; they must
agree to 0.5 grey levels. When a change to the faces is intended, re-record with
``python tests/test_synthetic_bytes.py --record`` and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from stn_icnn_jax.data.builders import common
from stn_icnn_jax.data.synthetic import SyntheticFaceConfig, generate_face
from stn_icnn_jax.data.builders.synthetic_faces import seed_for, synthetic_configs

HASHES = Path(__file__).parent / "data" / "synthetic_face_hashes.json"
PER_SPLIT = 17  # 17 of each split: 51 faces a config (tiny has 24)
SMALL_FACES = SyntheticFaceConfig(min_size=64, max_size=96)  # the tests' tiny faces


@lru_cache(maxsize=None)
def _face(seed: int, config: SyntheticFaceConfig) -> dict:
    return generate_face(seed, config)


def _update(h, face: dict) -> None:
    """Adds the labels and the meta of ``face`` to the hash ``h`` (the picture: see
    :func:`fingerprint`)."""
    for key in ("soft_labels", "label"):
        if key in face:
            a = np.ascontiguousarray(face[key])
            h.update(f"{key}{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    if "meta" in face:
        h.update(json.dumps(face["meta"], sort_keys=True, default=repr).encode())


def builder_config_hash(name: str) -> str:
    """sha256 of the records (and generator meta) of the first faces of each split."""
    cfg = {c.name: c for c in synthetic_configs()}[name]
    h = hashlib.sha256()
    for split, n in cfg.sizes().items():
        for i in range(min(n, PER_SPLIT)):
            seed = seed_for(split, i)
            face = _face(seed, SyntheticFaceConfig())
            record = common.make_record(
                f"seed_{seed}", face["image"], face["soft_labels"], cfg.keep_skin_hair
            )
            _update(h, {**record, "meta": face["meta"]})
    return h.hexdigest()


def small_faces_hash() -> str:
    h = hashlib.sha256()
    for seed in range(50):
        _update(h, _face(seed, SMALL_FACES))
    return h.hexdigest()


GRID = 8  # fingerprint: GRID x GRID block means of the grey picture + 3 channel means
SCALE = 64  # stored as uint16 of value * SCALE


def fingerprint(image: np.ndarray) -> np.ndarray:
    """``(GRID * GRID + 3,)`` float64: block means of the grey ``(H, W, 3)`` uint8 picture
    (the picture cropped to a multiple of GRID), then the mean of each channel."""
    x = image.astype(np.float64)
    h, w = (image.shape[0] // GRID) * GRID, (image.shape[1] // GRID) * GRID
    grey = x[:h, :w].mean(-1).reshape(GRID, h // GRID, GRID, w // GRID).mean((1, 3))
    return np.concatenate([grey.reshape(-1), x.reshape(-1, 3).mean(0)])


def picture_seeds() -> dict[str, tuple[int, SyntheticFaceConfig]]:
    """The faces whose pictures are fingerprinted: the first faces of each split (the
    same pictures in every builder config) and the tests' small faces."""
    out = {f"seed_{seed_for(split, i)}": (seed_for(split, i), SyntheticFaceConfig())
           for split in ("train", "validation", "test") for i in range(PER_SPLIT)}
    out.update({f"small_{seed}": (seed, SMALL_FACES) for seed in range(50)})
    return out


def picture_fingerprints() -> dict[str, str]:
    return {key: np.round(fingerprint(_face(seed, cfg)["image"]) * SCALE).astype("<u2")
            .tobytes().hex() for key, (seed, cfg) in picture_seeds().items()}


def all_hashes() -> dict:
    out = {c.name: builder_config_hash(c.name) for c in synthetic_configs()}
    out["small_faces_64_96"] = small_faces_hash()
    return {"labels_and_meta": out, "pictures": picture_fingerprints()}


@pytest.mark.parametrize("name", [c.name for c in synthetic_configs()] + ["small_faces_64_96"])
def test_labels_are_bit_identical_to_the_recorded_ones(name):
    expected = json.loads(HASHES.read_text())["labels_and_meta"]
    got = small_faces_hash() if name == "small_faces_64_96" else builder_config_hash(name)
    assert got == expected[name], f"labels or meta of the synthetic faces of {name!r} changed"


def test_pictures_match_the_recorded_fingerprints():
    expected = json.loads(HASHES.read_text())["pictures"]
    assert sorted(expected) == sorted(picture_seeds())
    worst = {}
    for key, (seed, cfg) in picture_seeds().items():
        recorded = np.frombuffer(bytes.fromhex(expected[key]), "<u2") / SCALE
        worst[key] = float(np.abs(fingerprint(_face(seed, cfg)["image"]) - recorded).max())
    changed = {k: round(v, 3) for k, v in worst.items() if v > 0.5}
    assert not changed, f"pictures changed (largest fingerprint difference, grey levels): {changed}"


def test_the_fingerprint_sees_a_small_change():
    """A change of one facial feature moves the fingerprint by more than the tolerance:
    a 12x12 patch of one face's picture 40 grey levels brighter."""
    image = _face(0, SMALL_FACES)["image"]
    brighter = image.copy()
    brighter[40:52, 40:52] = np.clip(brighter[40:52, 40:52].astype(int) + 40, 0, 255)
    assert np.abs(fingerprint(brighter) - fingerprint(image)).max() > 0.5


if __name__ == "__main__" and "--record" in sys.argv:
    HASHES.write_text(json.dumps(all_hashes(), indent=1) + "\n")
    print(f"wrote {HASHES}")
