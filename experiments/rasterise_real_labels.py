"""Rasterises the real-photo polygons and writes pictures to check them by eye.

For each labelled photo (stn_icnn_jax/photo/real_photo_labels/*.json) writes
``OUT/NAME.labels.png``: the face region with the rasterised 9-class labels blended in
(``real_photos.face_zoom``, 4x) and each polygon's outline drawn in its class colour.

    python experiments/rasterise_real_labels.py [--out experiments/results/real_photos]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stn_icnn_jax import taxonomy
from stn_icnn_jax.photo import real_photos

SCALE, MARGIN = 4, 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results/real_photos")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    documents = {d["photo"]: d for d in map(real_photos.load_labels, real_photos.label_files())}
    for name, image, label in real_photos.real_photo_set():
        zoom = Image.fromarray(real_photos.face_zoom(image, label, label, SCALE, MARGIN))
        ys, xs = np.nonzero(label)
        x0, y0 = max(0, xs.min() - MARGIN), max(0, ys.min() - MARGIN)
        draw = ImageDraw.Draw(zoom)
        for region in documents[name]["regions"]:
            colour = tuple(int(v) for v in taxonomy.PALETTE[taxonomy.CLASS_NAMES.index(region["class"])])
            points = [((x - x0) * SCALE, (y - y0) * SCALE) for x, y in region["points"]]
            draw.line(points + points[:1], fill=colour, width=1)
        zoom.save(out / f"{name}.labels.png")
        present = [taxonomy.CLASS_NAMES[c] for c in np.unique(label) if c]
        print(f"{name}: {image.shape[1]}x{image.shape[0]}, classes {present}")


if __name__ == "__main__":
    main()
