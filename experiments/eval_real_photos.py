"""Scores a weights file on the real-photo test set (hand-labelled public-domain photos).

Prints the pooled F1 table (the paper's sets, metrics.format_f1_table) over all photos and
one row per photo, and writes overlays (prediction and hand labels) and ``scores.json``
under --out.

    python experiments/eval_real_photos.py [--weights FILE] [--out experiments/results/real_photos]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stn_icnn_jax.metrics import format_f1_table
from stn_icnn_jax.photo import real_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file; default: the bundled default weights")
    parser.add_argument("--out", default="experiments/results/real_photos")
    args = parser.parse_args()
    scores = real_photos.score(args.weights, Path(args.out))
    per_photo = scores.pop("per_photo")
    print(f"weights: {args.weights or 'bundled default'}")
    print("all photos (pooled):")
    print(format_f1_table(scores))
    for name, row in per_photo.items():
        faces = row.pop("faces_found")
        print(f"\n{name} ({faces} face(s) found):")
        print(format_f1_table(row))
    Path(args.out, "scores.json").write_text(json.dumps(
        {"weights": args.weights or "bundled default", "pooled": scores,
         "per_photo": {k: {**v} for k, v in per_photo.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
