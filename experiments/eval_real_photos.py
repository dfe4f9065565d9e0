"""Scores a weights file on the real-photo test set (hand-labelled public-domain photos).

Prints the pooled F1 table (the paper's sets, metrics.format_f1_table) over all photos and
one row per photo, and writes overlays (prediction and hand labels) and ``scores.json``
under --out.

    python experiments/eval_real_photos.py [--weights FILE] [--out experiments/results/real_photos]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stn_icnn_jax.evaluation import write_json
from stn_icnn_jax.metrics import format_f1_table
from stn_icnn_jax.photo import real_photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights file; default: the bundled default weights")
    parser.add_argument("--out", default="experiments/results/real_photos")
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


if __name__ == "__main__":
    main()
