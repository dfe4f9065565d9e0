"""A figure like the paper's Fig. 1 for six test faces: the input, K's rough mask, the six
crop windows of the STN (L's theta, yellow) and of the centroid cropper (the original
iCNN, magenta), and the final parse (L's crops). Usage:

    python experiments/fig_pipeline.py --workdir runs/synthetic [--stage end_to_end] [--real_photos]

Writes ``<out_dir>/fig_pipeline.{png,md}``; the table gives, per face, the mean distance
(pixels) of each cropper's window centres from the labelled part centres.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures_common as common  # noqa: E402

from stn_icnn_jax import evaluation  # noqa: E402
from stn_icnn_jax.model import stn_icnn  # noqa: E402
from stn_icnn_jax.photo import real_photos  # noqa: E402

TILE = 200


def main(argv=None) -> Path:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--stage", default="end_to_end", choices=evaluation.EVALUATED_STAGES)
    p.add_argument("--faces", type=int, default=6)
    p.add_argument("--real_photos", action="store_true",
                   help="the real-photo set's faces, framed as `parse` frames them, instead "
                        "of --split's first --faces faces")
    args = p.parse_args(argv)
    trained = evaluation.load_run(args.workdir, until=args.stage)
    variables = trained.variables_for(args.stage, "predicted")
    if args.real_photos:
        records = real_photos.framed_records(trained.config.data.canvas_size)
    else:
        source = evaluation.split_source(trained.config, args.split)
        records = [source[i] for i in range(min(args.faces, len(source)))]
    batch = common.batch_of(records, trained.config)
    model = trained.model
    parse = jax.jit(lambda v, b, s: stn_icnn.parse(model, v, b, theta_source=s),
                    static_argnums=2)
    stn = jax.device_get(parse(variables, batch, "predicted"))
    icnn = jax.device_get(parse(variables, batch, "centroid"))
    canvas = batch["canvas"].shape[1]
    rows, lines = [], []
    for i, record in enumerate(records):
        image = np.asarray(record["image"])
        (top, left), (h, w) = batch["image_origin"][i], batch["image_size"][i]
        rough = common.colour(np.asarray(
            stn_icnn.read_rough_map(stn["rough_logits"][i], model.config)).argmax(-1))
        stn_boxes = common.window_boxes(stn["theta_canvas"][i], canvas, (top, left))
        icnn_boxes = common.window_boxes(icnn["theta_canvas"][i], canvas, (top, left))
        boxed = common.draw_boxes(image, icnn_boxes, (255, 0, 255), max(1, h // 150))
        boxed = common.draw_boxes(boxed, stn_boxes, (255, 255, 0), max(1, h // 150))
        parsed = common.colour(stn["labels"][i][top : top + h, left : left + w])
        tiles = [image, rough, boxed, parsed]
        rows.append(np.concatenate([cv2.resize(t.astype(np.uint8), (TILE, TILE),
                                               interpolation=cv2.INTER_NEAREST) for t in tiles], 1))
        present = batch["centers_present"][i]
        truth = batch["centers"][i]
        dist = {name: np.linalg.norm(common.window_centres(
                    out["theta_canvas"][i : i + 1], canvas, [(top, left)],
                    trained.config.model.theta_convention)[0] - truth, axis=-1)[present].mean()
                for name, out in (("STN", stn), ("iCNN", icnn))}
        fallbacks = int((~icnn["centroid_present"][i]).sum())
        lines.append([i, f"{h}x{w}", float(dist["STN"]), float(dist["iCNN"]), fallbacks])
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / (args.name or "fig_pipeline")
    cv2.imwrite(str(stem.with_suffix(".png")),
                cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    table = common.markdown_table(
        ["face", "size", "STN: mean centre error (px)", "iCNN centroid: mean centre error (px)",
         "parts missing from K's mask (fallback)"], lines)
    stem.with_suffix(".md").write_text(
        f"Columns of the PNG: input, K's rough mask, crop windows (yellow: STN, magenta: "
        f"centroid), parse. Parameters after stage {args.stage} of {args.workdir}; "
        f"`{common.command(__file__, argv)}`.\n\n" + table)
    print(table)
    return stem


if __name__ == "__main__":
    main()
