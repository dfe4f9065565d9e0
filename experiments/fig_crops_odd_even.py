"""Figs. 7/8 of the paper: an STN crop of odd size at an integer centre IS the integer
crop (zero difference); an even size cannot be centred on a pixel, so bilinear sampling
averages neighbouring pixels, blurring the picture and moving label borders.

For each crop size, every part of the first faces of a split is cropped from the canvas with the model's
sampler (eq. 21 theta at the labelled centre, bilinear, align_corners=False) and with
integer indexing (rows c - floor(s/2) .. c - floor(s/2) + s - 1, zero padding outside);
the table gives the mean and max absolute difference of the pictures (0-255) and the
share of label pixels that differ (the label cropped bilinearly as one-hot maps, then
argmax, against the integer crop of the label map). Usage:

    python experiments/fig_crops_odd_even.py --workdir runs/synthetic [--sizes 79-84]

Writes ``<out_dir>/fig_crops_odd_even.{md,png}``. Only the run's dataset and crop size
are read (no model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures_common as common  # noqa: E402

from stn_icnn_jax import evaluation, sampler, theta_geometry  # noqa: E402


def integer_crop(image: np.ndarray, center: np.ndarray, size: int) -> np.ndarray:
    """``image[c - floor(s/2) : ... + s]`` in both axes, zeros outside."""
    pad = size
    padded = np.pad(image, ((pad, pad), (pad, pad)) + ((0, 0),) * (image.ndim - 2))
    y0, x0 = (int(c) - size // 2 + pad for c in center)
    return padded[y0 : y0 + size, x0 : x0 + size]


def measure(batch: dict, size: int) -> dict:
    """Every labelled part of the batch's faces, cropped both ways from the canvas (the
    picture and the one-hot labels as 12 channels, one sampler call per size)."""
    canvas = batch["canvas"].astype(np.float32)
    label = batch["canvas_label"]
    stacked = np.concatenate([canvas, np.eye(9, dtype=np.float32)[label]], -1)
    side = canvas.shape[1]
    centers = batch["centers"] + batch["image_origin"][:, None, :]
    theta = theta_geometry.theta_from_centers(centers, (size, size), (side, side), "paper")
    crops = np.asarray(jax.jit(lambda x, t: sampler.crop(x, t, (size, size)))(stacked, theta))
    diffs, changed, pixels = [], 0, 0
    for n, p in zip(*np.nonzero(batch["centers_present"])):
        diffs.append(np.abs(crops[n, p, ..., :3] - integer_crop(canvas[n], centers[n, p], size)))
        changed += int((crops[n, p, ..., 3:].argmax(-1)
                        != integer_crop(label[n], centers[n, p], size)).sum())
        pixels += size * size
    diffs = np.concatenate([d.ravel() for d in diffs])
    return {"size": size, "mean_abs": float(diffs.mean()), "max_abs": float(diffs.max()),
            "label_changed": changed / pixels}


def main(argv=None) -> Path:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="a-b (default: crop size - 2 .. + 3)")
    p.add_argument("--faces", type=int, default=10)
    args = p.parse_args(argv)
    config = evaluation.read_run_config(Path(args.workdir))
    source = evaluation.split_source(config, args.split)
    records = [source[i] for i in range(min(args.faces, len(source)))]
    batch = common.batch_of(records, config)
    if args.sizes:
        a, b = (int(v) for v in args.sizes.split("-"))
    else:
        a, b = config.model.crop_size - 2, config.model.crop_size + 3
    rows = [measure(batch, s) for s in range(a, b + 1)]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / (args.name or "fig_crops_odd_even")
    table = common.markdown_table(
        ["crop size", "parity", "mean abs diff (0-255)", "max abs diff", "label pixels changed"],
        [[r["size"], "odd" if r["size"] % 2 else "even", r["mean_abs"], r["max_abs"],
          f"{100 * r['label_changed']:.2f}%"] for r in rows])
    note = (f"STN (bilinear, eq. 21 theta at the labelled centre) vs integer crops, "
            f"{len(records)} faces of the {args.split} split, every labelled part; "
            f"`python experiments/fig_crops_odd_even.py --workdir {args.workdir}`.\n\n")
    stem.with_suffix(".md").write_text(note + table)
    # the nose of the first face at two adjacent sizes: the crops and their difference
    image = np.asarray(records[0]["image"], np.float32)
    center = batch["centers"][0][4]
    tiles = []
    for size in (a + (1 - a % 2), a + (1 - a % 2) + 1):  # an odd size and the even one after
        theta = theta_geometry.theta_from_centers(center[None], (size, size), image.shape[:2])[None]
        stn = np.asarray(sampler.crop(image[None], theta, (size, size)))[0, 0]
        diff = np.abs(stn - integer_crop(image, center, size))
        row = [stn, integer_crop(image, center, size), np.clip(diff * 8, 0, 255)]
        tiles.append(np.concatenate([cv2.resize(t, (160, 160), interpolation=cv2.INTER_NEAREST)
                                     for t in row], 1))
    grid = np.concatenate(tiles, 0).astype(np.uint8)
    cv2.imwrite(str(stem.with_suffix(".png")), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(table)
    return stem


if __name__ == "__main__":
    main()
