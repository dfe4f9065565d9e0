"""The paper's Table 2 over several runs of the same job (one per seed): each row per
seed, with mean and spread, K's own F1 and the wall time per stage.

For each work directory (its own ``config.json`` is read): the three rows of Table 2 on
the test split (``stn_icnn_jax.evaluation.table2``: iCNN = centroid crops after
pre-training, STN-iCNN* = L's crops after pre-training, STN-iCNN = after the end-to-end
stage), K's own F1 on its rough map (best ``rough`` checkpoint on the test split, and its
best validation F1 from ``metrics.jsonl``) and the wall time of each stage. Then the
main job's goals checked per seed: overall >= 0.85, STN-iCNN > STN-iCNN* > iCNN, no
class below 0.70. Usage:

    python experiments/summarize_seeds.py --workdir /work/runs/main_seed0 \
        --workdir /work/runs/main_seed1 ... [--out experiments/results/synthetic_main_seeds.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stn_icnn_jax import evaluation
from stn_icnn_jax.taxonomy import F1_SETS
from stn_icnn_jax.train import distributed, run
from stn_icnn_jax.train.stages import STAGES

CLASSES = tuple(F1_SETS)
ROWS = tuple(row.name for row in evaluation.TABLE2_ROWS)
GOAL_OVERALL, GOAL_CLASS = 0.85, 0.70


def _records(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rough_test_f1(config, workdir: Path, mesh) -> dict:
    """K's own F1 per class on the test split (its best `rough` checkpoint)."""
    model, sources, after = run.load_trained(config, workdir, mesh, until="rough")
    return evaluation.score_rough_map(model, after["rough"], config, sources["test"], mesh)


def stage_seconds(records: list[dict]) -> dict[str, float]:
    return {r["stage"]: r["stage_seconds"] for r in records
            if r.get("kind") == "time" and "stage_seconds" in r}


def _row(label: str, f1: dict) -> str:
    return f"| {label} | " + " | ".join(f"{f1[c]:.3f}" for c in CLASSES) + " |"


def _stats(label: str, rows: list[dict]) -> list[str]:
    values = np.array([[r[c] for c in CLASSES] for r in rows])
    lines = [_row(f"{label}: mean", dict(zip(CLASSES, values.mean(0))))]
    if len(rows) > 1:
        lines.append(f"| {label}: std (min-max) | " + " | ".join(
            f"{s:.3f} ({lo:.3f}-{hi:.3f})" for s, lo, hi in
            zip(values.std(0, ddof=1), values.min(0), values.max(0))) + " |")
    return lines


def goals(rows: dict[str, dict]) -> str:
    """Which of the main job's goals one seed's Table 2 meets."""
    final = rows["STN-iCNN"]
    overall = [rows[name]["overall"] for name in ("iCNN", "STN-iCNN*", "STN-iCNN")]
    worst = min(CLASSES, key=lambda c: final[c])
    return (f"overall {final['overall']:.3f} {'>=' if final['overall'] >= GOAL_OVERALL else '<'} "
            f"{GOAL_OVERALL}; order STN-iCNN > STN-iCNN* > iCNN: "
            f"{'yes' if overall[2] > overall[1] > overall[0] else 'no'} "
            f"({overall[2]:.3f} / {overall[1]:.3f} / {overall[0]:.3f}); lowest class {worst} "
            f"{final[worst]:.3f} {'>=' if final[worst] >= GOAL_CLASS else '<'} {GOAL_CLASS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", action="append", required=True, type=Path)
    parser.add_argument("--out")
    args = parser.parse_args()
    mesh = distributed.make_mesh()
    header = "| run | " + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES)
    tables, rough, times = [], [], []
    for workdir in args.workdir:
        config = evaluation.read_run_config(workdir)
        records = _records(workdir)
        table = evaluation.table2(workdir)
        tables.append((workdir.name, config.seed,
                       {name: row["f1"] for name, row in table["rows"].items()}))
        rough_val = max((r["f1"]["overall"] for r in records
                         if r.get("kind") == "validation" and r["stage"] == "rough"), default=None)
        rough.append((workdir.name, config.seed, rough_test_f1(config, workdir, mesh), rough_val))
        result = json.loads((workdir / "results.json").read_text())
        times.append((workdir.name, config.seed, stage_seconds(records), result["seconds"]))
    limit = int(config.data.get("num_test", 0) or 0) if config.data.source == "tfds" else 0
    split = f"the first {limit} faces of the test split" if limit else "the test split"
    lines = [f"Table 2 on {split} ({table['data']}), per seed:"]
    for name in ROWS:
        lines += ["", f"**{name}** (stage {table['rows'][name]['stage']}, "
                      f"{table['rows'][name]['crops']} crops)", "", header]
        lines += [_row(f"{run_name} (seed {seed})", rows[name]) for run_name, seed, rows in tables]
        lines += _stats("all seeds", [rows[name] for _, _, rows in tables])
    lines += ["", "Goals of the main job (issue 9), per seed:", ""]
    lines += [f"- {run_name} (seed {seed}): {goals(rows)}" for run_name, seed, rows in tables]
    lines += ["", "K's own F1 on its rough map (best `rough` checkpoint; test split, and its "
              "best validation F1 overall):", "", header.replace(" |\n", " | best validation |\n")
              + "---|"]
    lines += [_row(f"{name} (seed {seed})", f1) + f" {val:.3f} |" for name, seed, f1, val in rough]
    lines += [row + " |" for row in _stats("all seeds", [f1 for _, _, f1, _ in rough])]
    lines += ["", "Wall time of each stage inside the run, and of the whole run (seconds)", "",
              "| run | " + " | ".join(STAGES) + " | total |", "|---|" + "---|" * (len(STAGES) + 1)]
    for name, seed, secs, total in times:
        lines.append(f"| {name} (seed {seed}) | " + " | ".join(
            f"{secs.get(s, float('nan')):.0f}" for s in STAGES) + f" | {total:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
