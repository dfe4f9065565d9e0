"""Makes the bundled default weights from a finished training run.

Exports the best parameters after ``--stage`` of the run in ``--workdir`` (as
``stn-icnn export`` does), scores them on the real-photo test set (hand-labelled
public-domain photos, ``stn_icnn_jax.photo.real_photos``) and writes one weights file
whose record says what they were trained on, with which config and seed, and what they
scored: the run's synthetic test F1 (``results.json``) and the real-photo F1. Usage:

    python experiments/make_default_weights.py --workdir /work/runs/main_seed0 \
        [--stage end_to_end] [--out stn_icnn_jax/default_weights/default.stnw] \
        [--photos_out experiments/results/real_photos]

The real-photo overlays (``NAME.parsed.png``) and ``scores.json`` go to --photos_out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stn_icnn_jax import weights
from stn_icnn_jax.evaluation import read_run_config, write_json
from stn_icnn_jax.metrics import format_f1_table
from stn_icnn_jax.photo import api, real_photos

DEFAULT_OUT = (Path(__file__).resolve().parents[1] / "stn_icnn_jax" / "default_weights"
               / api.DEFAULT_WEIGHTS_NAME)


def training_record(workdir: Path, stage: str) -> dict:
    """What the run was: data, seed, config file and its synthetic test F1."""
    config = read_run_config(workdir)
    record = {
        "trained_on": (f"{config.data.name} ({config.data.builder_config}), training split "
                       "only: procedural synthetic faces, no real photos"),
        "seed": config.seed,
    }
    results = workdir / "results.json"
    if results.exists():
        result = json.loads(results.read_text())
        if result.get("stage") == stage:
            record["synthetic_test_f1"] = result["test"]["f1"]
            record["training_seconds"] = result.get("seconds")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--stage", default="end_to_end")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--photos_out", default="experiments/results/real_photos")
    parser.add_argument("--note", default="", help="free text kept in the record (e.g. the command)")
    args = parser.parse_args()

    exported = weights.from_workdir(args.workdir, args.stage)
    record = {**exported.record, **training_record(args.workdir, args.stage)}
    record.pop("workdir", None)  # a path on the machine that trained it
    if args.note:
        record["note"] = args.note
    scores = real_photos.score(exported, Path(args.photos_out))
    document = real_photos.scores_document(scores, "bundled default")
    record["real_photo_f1"] = {k: document[k] for k in ("pooled", "per_photo")}
    path = weights.save(args.out, exported.variables, exported.config, record)
    write_json(document, Path(args.photos_out, "scores.json"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): stage {args.stage}, "
          f"seed {record['seed']}, {record['trained_on']}")
    if "synthetic_test_f1" in record:
        print("synthetic test split:")
        print(format_f1_table(record["synthetic_test_f1"]))
    print("real photos (pooled):")
    print(format_f1_table({k: v for k, v in scores.items() if k != "per_photo"}))


if __name__ == "__main__":
    main()
