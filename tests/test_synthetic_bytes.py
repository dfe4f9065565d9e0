"""Same seed, same bytes: the synthetic faces of every builder config stay bit-identical.

The hashes in ``tests/data/synthetic_face_hashes.json`` were recorded from the
generator before it was split into a package (issue 8). Any change to what a seed draws
(image, soft labels, hard label, meta) changes a hash and fails here. When a change to
the faces is intended, re-record with ``python tests/test_synthetic_bytes.py --record``
and say so in the commit.
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
    for key in ("image", "soft_labels", "label"):
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


def all_hashes() -> dict[str, str]:
    out = {c.name: builder_config_hash(c.name) for c in synthetic_configs()}
    out["small_faces_64_96"] = small_faces_hash()
    return out


@pytest.mark.parametrize("name", [c.name for c in synthetic_configs()] + ["small_faces_64_96"])
def test_faces_are_bit_identical_to_the_recorded_ones(name):
    expected = json.loads(HASHES.read_text())
    got = small_faces_hash() if name == "small_faces_64_96" else builder_config_hash(name)
    assert got == expected[name], f"synthetic faces of {name!r} changed"


if __name__ == "__main__" and "--record" in sys.argv:
    HASHES.write_text(json.dumps(all_hashes(), indent=2) + "\n")
    print(HASHES.read_text())
