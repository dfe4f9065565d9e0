"""Fig. 5 of the paper: occlude one part and see where each cropper puts its window.

Each test face is shown whole and with one part (a brow, an eye, the nose, the mouth)
covered by a flat grey block over the part's labelled box (plus a 15% margin); the labels
under the block become background (labels describe what is visible). For the STN (L's
theta) and the original iCNN's centroid cropper (centroids of K's rough mask, with its
fallback to the mean part centre), the table and plot give how far the occluded part's
window centre lands from where the part really is (its centre in the unoccluded labels),
the mean over all six parts, and the pooled F1 of the occluded faces (the evaluation
path of ``stn-icnn eval``). Usage:

    python experiments/fig_occlusion.py --workdir runs/synthetic [--stage end_to_end]

Writes ``<out_dir>/fig_occlusion.{png,md}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures_common as common  # noqa: E402

from stn_icnn_jax import evaluation  # noqa: E402
from stn_icnn_jax.model import stn_icnn  # noqa: E402
from stn_icnn_jax.taxonomy import PART_CLASSES, PART_NAMES, SMITH_PART_CHANNELS  # noqa: E402
from stn_icnn_jax.train import distributed, evaluate as evaluate_lib  # noqa: E402

OCCLUDED = ("none", "brow_L", "eye_L", "nose", "mouth")
CROPPERS = {"STN": "predicted", "iCNN (centroid)": "centroid"}


def occlude(record: dict, part: str, margin: float = 0.15) -> dict:
    """The record with ``part``'s labelled box covered by a grey block (labels: background)."""
    if part == "none":
        return dict(record)
    label = common.hard_label(record)
    ys, xs = np.nonzero(np.isin(label, PART_CLASSES[PART_NAMES.index(part)]))
    if len(ys) == 0:
        return dict(record)
    h, w = label.shape
    my, mx = margin * (ys.max() - ys.min() + 1), margin * (xs.max() - xs.min() + 1)
    y0, y1 = max(0, int(ys.min() - my)), min(h, int(ys.max() + my) + 1)
    x0, x1 = max(0, int(xs.min() - mx)), min(w, int(xs.max() + mx) + 1)
    image = np.array(record["image"])
    soft = np.array(record["soft_labels"])
    image[y0:y1, x0:x1] = 128
    block = soft[y0:y1, x0:x1]
    for channel in SMITH_PART_CHANNELS:  # the facial classes go to background
        block[..., 0] = np.clip(block[..., 0].astype(np.int32) + block[..., channel], 0, 255)
        block[..., channel] = 0
    return {**record, "image": image, "soft_labels": soft}


def main(argv=None) -> Path:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--stage", default="end_to_end", choices=evaluation.EVALUATED_STAGES)
    p.add_argument("--faces", type=int, default=50)
    args = p.parse_args(argv)
    mesh = distributed.make_mesh()
    trained = evaluation.load_run(args.workdir, mesh, until=args.stage)
    variables = trained.variables_for(args.stage, "predicted")
    source = evaluation.split_source(trained.config, args.split)
    records = [source[i] for i in range(min(args.faces, len(source)))]
    truth_batch = common.batch_of(records, trained.config)
    model = trained.model
    parse = jax.jit(lambda v, b, s: stn_icnn.parse(model, v, b, theta_source=s)["theta_canvas"],
                    static_argnums=2)
    eval_fns = evaluate_lib.EvalFunctions(model, mesh)
    canvas = truth_batch["canvas"].shape[1]
    results = []
    for part in OCCLUDED:
        occluded = [occlude(dict(r), part) for r in records]
        batch = common.batch_of(occluded, trained.config)
        for name, crops in CROPPERS.items():
            thetas = np.concatenate([np.asarray(parse(variables, {k: v[i : i + 8] for k, v in batch.items()}, crops))
                                     for i in range(0, len(occluded), 8)])
            centres = common.window_centres(thetas, canvas, batch["image_origin"],
                                            trained.config.model.theta_convention)
            error = np.linalg.norm(centres - truth_batch["centers"], axis=-1)
            present = truth_batch["centers_present"]
            index = PART_NAMES.index(part) if part != "none" else None
            part_error = (error[:, index][present[:, index]].mean() if index is not None
                          else float("nan"))
            f1 = evaluation.score(model, variables, trained.config, occluded, crops, mesh,
                                  eval_fns)["f1"]["overall"]
            results.append({"occluded": part, "cropper": name, "part_error": float(part_error),
                            "mean_error": float(error[present].mean()), "f1": float(f1)})
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / (args.name or "fig_occlusion")
    table = common.markdown_table(
        ["occluded part", "cropper", "its window centre error (px)",
         "mean centre error, all parts (px)", "F1 overall"],
        [[r["occluded"], r["cropper"], "-" if r["occluded"] == "none" else r["part_error"],
          r["mean_error"], r["f1"]]
         for r in results])
    stem.with_suffix(".md").write_text(
        f"{len(records)} faces of the {args.split} split, parameters after stage "
        f"{args.stage} of {args.workdir}; `{common.command(__file__, argv)}`. The "
        f"unoccluded row has no occluded part (its window centre error: -).\n\n" + table)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    x = np.arange(len(OCCLUDED))
    for k, name in enumerate(CROPPERS):
        rows = [r for r in results if r["cropper"] == name]
        axes[0].bar(x + 0.4 * k - 0.2, [r["part_error"] if r["occluded"] != "none"
                                         else r["mean_error"] for r in rows], 0.4, label=name)
        axes[1].bar(x + 0.4 * k - 0.2, [r["f1"] for r in rows], 0.4, label=name)
    for ax, title in zip(axes, ("window centre error of the occluded part (px; none: all parts)",
                                "F1 overall")):
        ax.set_xticks(x, OCCLUDED)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)
    plt.close(fig)
    print(table)
    return stem


if __name__ == "__main__":
    main()
