"""Real photos beside synthetic faces, as the part models see them: for each face, the
framed picture (as `parse` frames a photo; a synthetic image is its own frame) and the
81x81 windows at the labelled centres of the left brow, left eye, nose and mouth. Made to
compare the generator's renders with real faces part by part (realism work). Usage:

    python experiments/fig_realism.py [--synthetic 4] [--split test] \\
        [--out experiments/results/fig_realism.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from stn_icnn_jax import part_centers
from stn_icnn_jax.data import labels as labels_lib
from stn_icnn_jax.data.builders.synthetic_faces import seed_for
from stn_icnn_jax.data.synthetic import SyntheticFaceConfig, generate_face
from stn_icnn_jax.photo import real_photos

#: (name, index into part_centers' six parts) of the windows shown.
PARTS = (("left brow", 0), ("left eye", 2), ("nose", 4), ("mouth", 5))
CROP = 81
TILE = 162  # each window enlarged 2x
FRAME_HEIGHT = 240


def windows(image: np.ndarray, soft_labels: np.ndarray, crop: int = CROP) -> list[np.ndarray]:
    """The ``crop`` x ``crop`` windows of ``image`` at the labelled centres of
    :data:`PARTS` (zeros outside the image; an absent part: an empty window)."""
    probs = labels_lib.class_probs(soft_labels)[None]
    centres, present = part_centers.part_centers(probs)
    half = crop // 2
    padded = np.pad(image, ((half, half), (half, half), (0, 0)))
    out = []
    for _, k in PARTS:
        y, x = (int(v) for v in centres[0, k])
        out.append(padded[y : y + crop, x : x + crop] if present[0, k]
                   else np.zeros((crop, crop, 3), np.uint8))
    return out


def row(name: str, image: np.ndarray, soft_labels: np.ndarray) -> np.ndarray:
    """One figure row: the framed face (height :data:`FRAME_HEIGHT`) and its windows."""
    h, w = image.shape[:2]
    frame = cv2.resize(image, (round(w * FRAME_HEIGHT / h), FRAME_HEIGHT),
                       interpolation=cv2.INTER_AREA)
    cv2.putText(frame, name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    frame = np.pad(frame, ((0, 0), (0, max(0, 330 - frame.shape[1])), (0, 0)))[:, :330]
    tiles = [cv2.resize(win, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
             for win in windows(image, soft_labels)]
    tiles = [np.pad(t, ((0, FRAME_HEIGHT - TILE), (4, 0), (0, 0))) for t in tiles]
    return np.concatenate([frame, *tiles], axis=1)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=4, help="synthetic faces shown")
    parser.add_argument("--split", default="test", help="synthetic split the faces come from")
    parser.add_argument("--out", default="experiments/results/fig_realism.png")
    args = parser.parse_args(argv)
    rows = [row(r["name"].split("#")[0], r["image"], r["soft_labels"])
            for r in real_photos.framed_records(max_side=640)]
    for i in range(args.synthetic):
        face = generate_face(seed_for(args.split, i), SyntheticFaceConfig())
        rows.append(row(f"synthetic {args.split} {i}", face["image"], face["soft_labels"]))
    header = np.zeros((22, rows[0].shape[1], 3), np.uint8)
    for j, (name, _) in enumerate(PARTS):
        cv2.putText(header, name, (334 + j * (TILE + 4), 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([header, *rows], axis=0)).save(out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
