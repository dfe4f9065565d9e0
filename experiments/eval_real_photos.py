"""Scores a weights file on the real-photo test set (hand-labelled public-domain photos).

Prints the pooled F1 table (the paper's sets, metrics.format_f1_table) over all photos and
one row per photo, and writes overlays (prediction and hand labels) and ``scores.json``
under --out. With --croppers, also which stage fails on the photos
(``real_photos.score_croppers``): K's own F1 on its rough map and the F1 of the same part
models fed by L's windows, by the centroids of K's map and by the hand labels' part
centres, written to ``croppers.md``.

    python experiments/eval_real_photos.py [--weights FILE] [--out experiments/results/real_photos] [--croppers]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stn_icnn_jax.evaluation import write_json
from stn_icnn_jax import markdown
from stn_icnn_jax.metrics import format_f1_rows, format_f1_table
from stn_icnn_jax.photo import real_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file; default: the bundled default weights")
    parser.add_argument("--out", default="experiments/results/real_photos")
    parser.add_argument("--croppers", action="store_true",
                        help="also score K's map and each cropper (croppers.md)")
    args = parser.parse_args()
    scores = real_photos.score(args.weights, Path(args.out))
    document = real_photos.scores_document(scores, args.weights or "bundled default")
    print(f"weights: {document['weights']}")
    print("all photos (pooled):")
    print(format_f1_table({k: v for k, v in scores.items() if k != "per_photo"}))
    for name, row in scores["per_photo"].items():
        print(f"\n{name} ({row['faces_found']} face(s) found):")
        print(format_f1_table({k: v for k, v in row.items() if k != "faces_found"}))
    write_json(document, Path(args.out, "scores.json"))
    if args.croppers:
        write_croppers(args.weights, Path(args.out, "croppers.md"))


def write_croppers(weights: str | None, out: Path) -> None:
    result = real_photos.score_croppers(weights)
    rows = {"K's own map (128x128)": result["rough_map"],
            **{f"crops: {real_photos.CROPPERS[k]}": v for k, v in result["crops"].items()}}
    lines = [f"# Real photos: which stage fails ({weights or 'bundled default weights'})", "",
             f"F1 pooled over the {result['frames']} framed faces of the real-photo set, at "
             "the frames' resolution (the part rows: the same part models, fed by each "
             "cropper; the first row: K's own map against the labels resized to it).", "",
             format_f1_rows(rows, "what")]
    markdown.report(lines, "experiments/eval_real_photos.py", None, out)


if __name__ == "__main__":
    main()
