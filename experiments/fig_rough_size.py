"""Fig. 6 of the paper: the rough input size b (64 vs 128) for both croppers.

K and L are trained at b = 64 in a second work directory (rough and localizer stages
only, the same config otherwise); the part models are the ``parts`` stage's of the
b = 128 run (they see ground-truth crops of the full-resolution canvas while they
pre-train, so they do not depend on b). Each b is then scored on the test split with
the original iCNN's centroid cropper (centroids of K's rough mask) and with L's crops:
the rows iCNN and STN-iCNN* (after pre-training; no end-to-end stage at either size, a
smaller budget than the paper's, whose STN-iCNN row is after end-to-end training).
Usage:

    stn-icnn train --config C --workdir W64 --stage rough --stage localizer \
        --config.model.rough_size=64 [the run's other overrides]
    python experiments/fig_rough_size.py --workdir W128 --workdir64 W64 [--split test]

Writes ``<out_dir>/fig_rough_size.{png,md}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stn_icnn_jax import evaluation  # noqa: E402
from stn_icnn_jax.model.stn_icnn import MODULES  # noqa: E402
from stn_icnn_jax.taxonomy import F1_SETS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures_common  # noqa: E402

CROPPERS = {"centroid": "iCNN (centroid crops)", "predicted": "STN-iCNN* (L's crops)"}


def combined_variables(small, large) -> dict:
    """K and L after ``small``'s localizer stage, the part models after ``large``'s
    parts stage (``TrainedRun``s)."""
    missing = [s for s in ("rough", "localizer") if small.records.get(s) is None]
    if missing:
        raise SystemExit(f"{small.workdir}: stage {missing[0]} was never trained here")
    k_and_l = small.variables["localizer"]
    parts = large.variables_for("parts", "ground_truth")
    return {collection: {module: (parts if module == "parts" else k_and_l)[collection][module]
                         for module in MODULES if module in parts[collection]}
            for collection in ("params", "batch_stats")}


def main(argv: list[str] | None = None) -> Path:
    parser = figures_common.parser(__doc__.splitlines()[0])
    parser.add_argument("--workdir64", required=True,
                        help="K and L trained at b = 64 (rough and localizer stages)")
    args = parser.parse_args(argv)
    args.workdir, args.workdir64 = Path(args.workdir), Path(args.workdir64)

    large = evaluation.load_run(args.workdir, until="parts")
    small = evaluation.load_run(args.workdir64, until="localizer")
    source = evaluation.split_source(large.config, args.split)
    models = {
        large.config.model.rough_size: (large, large.variables_for("parts", "predicted")),
        small.config.model.rough_size: (small, combined_variables(small, large)),
    }
    mesh = evaluation.distributed.make_mesh(None)
    rows = {}
    for size, (trained, variables) in sorted(models.items()):
        for crops in CROPPERS:
            scores = evaluation.score(trained.model, variables, trained.config, source,
                                      crops, mesh)
            rows[(size, crops)] = scores["f1"]
            print(f"b = {size}, {crops}: overall {scores['f1']['overall']:.3f}", flush=True)

    sizes = sorted(models)
    classes = tuple(F1_SETS)
    note = (f"Rough input size b: pooled F1 on the `{args.split}` split ({len(source)} "
            f"faces). Part models: `{args.workdir.name}`'s parts stage; K and L: "
            f"`{args.workdir.name}` (b = {sizes[-1]}) and `{args.workdir64.name}` "
            f"(b = {sizes[0]}), pre-training only.\n\n")
    table = figures_common.markdown_table(
        ["b", "cropper", *classes],
        [[size, CROPPERS[crops], *(f1[c] for c in classes)]
         for (size, crops), f1 in sorted(rows.items())])

    figure, axis = plt.subplots(figsize=(5, 3.5))
    for crops, label in CROPPERS.items():
        axis.plot(sizes, [rows[(s, crops)]["overall"] for s in sizes], "o-", label=label)
    axis.set_xticks(sizes)
    axis.set_xlabel("rough input size b (pixels)")
    axis.set_ylabel(f"overall F1 ({args.split})")
    axis.legend()
    figure.tight_layout()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (args.name or "fig_rough_size")
    figure.savefig(stem.with_suffix(".png"), dpi=120)
    stem.with_suffix(".md").write_text(note + table)
    print(note + table)
    return stem


if __name__ == "__main__":
    main()
