"""Measures how synthetic training faces fill their frame, for the photo parser's framing.

The photo parser (stn_icnn_jax/photo/framing.py) crops each detected face so that the
face fills the share of the crop it fills in the training images. Two measurements on
``generate_face(seed)`` (the default training data), seeds 0..N-1:

1. from the exact labels of every face: the face box (bounding box of face skin and the
   eight facial classes, soft label >= 50%) over the image width / height, the face box
   centre's offset from the image centre (in face-box sides), the image's longer side;
2. on the faces the detector finds (``framing.detect_faces``): the detector box's side
   over the face box's width / height and the offset of the face box centre from the
   detector box centre (in detector-box sides), which turns a detection into a face box.

Prints medians (and 10% / 90% quantiles).

    python experiments/measure_face_framing.py [--faces 200]
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from stn_icnn_jax.data.synthetic import generate_face
from stn_icnn_jax.photo import framing


def face_box(soft: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of face skin + facial classes in (H, W, 11) soft labels."""
    mask = soft[..., 1:10].max(axis=-1) >= 128
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def show(title: str, names, rows) -> None:
    rows = np.array(rows)
    print(f"{title} ({len(rows)} faces)")
    for name, col in zip(names, rows.T):
        q = np.percentile(col, [10, 50, 90])
        print(f"  {name:>22}: median {q[1]:.3f}  (10% {q[0]:.3f}, 90% {q[2]:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=200)
    args = parser.parse_args()
    label_rows, det_rows = [], []
    for seed in tqdm(range(args.faces), desc="faces"):
        face = generate_face(seed)
        image = face["image"]
        h, w = image.shape[:2]
        x0, y0, x1, y1 = face_box(face["soft_labels"])
        fw, fh = x1 - x0, y1 - y0
        label_rows.append((fw / w, fh / h, ((x0 + x1) / 2 - w / 2) / fw,
                           ((y0 + y1) / 2 - h / 2) / fh, max(h, w)))
        boxes = framing.detect_faces(image)
        if boxes:
            bx, by, bw, bh = boxes[0]
            det_rows.append((fw / bw, fh / bh, ((x0 + x1) / 2 - (bx + bw / 2)) / bw,
                             ((y0 + y1) / 2 - (by + bh / 2)) / bh))
    show("face box in the image, from the labels",
         ("face width / image width", "face height / image h", "centre dx / face w",
          "centre dy / face h", "image side"), label_rows)
    show("face box vs detector box",
         ("face width / det side", "face height / det side", "face dx / det side",
          "face dy / det side"), det_rows)


if __name__ == "__main__":
    main()
