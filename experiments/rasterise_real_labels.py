"""Rasterises the real-photo polygons and writes overlays to look at.

For each labelled photo (stn_icnn_jax/photo/real_photo_labels/*.json) writes
``OUT/NAME.labels_overlay.png`` (the photo with the 9-class labels blended in and the
polygon outlines drawn) and ``OUT/NAME.labels_zoom.png`` (the face region enlarged 4x).

    python experiments/rasterise_real_labels.py [--out experiments/results/real_photos]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stn_icnn_jax import taxonomy
from stn_icnn_jax.photo import outputs, real_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results/real_photos")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    documents = {real_photos.load_labels(p)["photo"]: real_photos.load_labels(p)
                 for p in real_photos.label_files()}
    for name, image, label in real_photos.real_photo_set():
        picture = Image.fromarray(outputs.overlay(image, label, alpha=0.4))
        ys, xs = np.nonzero(label)
        x0, y0 = max(0, xs.min() - 20), max(0, ys.min() - 20)
        x1, y1 = min(image.shape[1], xs.max() + 20), min(image.shape[0], ys.max() + 20)
        scale = 4
        zoom = picture.crop((x0, y0, x1, y1)).resize(((x1 - x0) * scale, (y1 - y0) * scale),
                                                     Image.NEAREST)
        draw = ImageDraw.Draw(zoom)
        for region in documents[name]["regions"]:
            colour = tuple(int(v) for v in taxonomy.PALETTE[taxonomy.CLASS_NAMES.index(region["class"])])
            points = [((x - x0) * scale, (y - y0) * scale) for x, y in region["points"]]
            draw.line(points + points[:1], fill=colour, width=1)
        picture.save(out / f"{name}.labels_overlay.png")
        zoom.save(out / f"{name}.labels_zoom.png")
        present = [taxonomy.CLASS_NAMES[c] for c in np.unique(label) if c]
        print(f"{name}: {image.shape[1]}x{image.shape[0]}, classes {present}")


if __name__ == "__main__":
    main()
