"""Test F1 of several runs of the same job (one per seed), side by side with mean and spread.

For each work directory: the run's final test F1 per class (``results.json``, STN-iCNN
after its last stage), K's own F1 on its rough map (the best `rough` checkpoint scored
on the test split, and its best validation F1 from ``metrics.jsonl``) and the wall time
per stage. Usage (the synthetic main job over seeds 0-2,
experiments/results/synthetic_main_seeds.md):

    python experiments/summarize_seeds.py --config experiments/configs/synthetic.py \
        --workdir /work/runs/main_seed0 --workdir /work/runs/main_seed1 ... \
        [--out experiments/results/synthetic_main_seeds.md] [--config.key=value ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stn_icnn_jax.config import load_config
from stn_icnn_jax.taxonomy import F1_SETS
from stn_icnn_jax.train import distributed, evaluate, loop, run
from stn_icnn_jax.train.stages import STAGES

CLASSES = tuple(F1_SETS)


def _records(workdir: Path) -> list[dict]:
    path = workdir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rough_test_f1(config, workdir: Path, mesh) -> dict:
    """K's own F1 per class on the test split (its best `rough` checkpoint)."""
    model, sources, after = run.load_trained(config, workdir, mesh, until="rough")
    stage = STAGES["rough"]
    return evaluate.evaluate(stage, evaluate.EvalFunctions(model, mesh)(stage), after["rough"],
                             sources["test"], loop.eval_input_config(config, mesh), mesh)["f1"]


def stage_seconds(records: list[dict]) -> dict[str, float]:
    return {r["stage"]: r["stage_seconds"] for r in records
            if r.get("kind") == "time" and "stage_seconds" in r}


def _row(label: str, f1: dict) -> str:
    return f"| {label} | " + " | ".join(f"{f1[c]:.3f}" for c in CLASSES) + " |"


def _stats(label: str, rows: list[dict]) -> list[str]:
    values = np.array([[r[c] for c in CLASSES] for r in rows])
    mean = dict(zip(CLASSES, values.mean(0)))
    lines = [_row(f"{label}: mean", mean)]
    if len(rows) > 1:
        lines.append(f"| {label}: std (min-max) | " + " | ".join(
            f"{s:.3f} ({lo:.3f}-{hi:.3f})" for s, lo, hi in
            zip(values.std(0, ddof=1), values.min(0), values.max(0))) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--out")
    args, overrides = parser.parse_known_args()
    mesh = distributed.make_mesh()
    header = "| run | " + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES)
    final, rough, times = [], [], []
    for workdir in map(Path, args.workdir):
        config = load_config(args.config, overrides + [f"--config.seed={_seed(workdir)}"])
        records = _records(workdir)
        results = json.loads((workdir / "results.json").read_text())
        rough_val = max((r["f1"]["overall"] for r in records
                         if r.get("kind") == "validation" and r["stage"] == "rough"), default=None)
        final.append((workdir.name, config.seed, results["test"]["f1"]))
        rough.append((workdir.name, config.seed, rough_test_f1(config, workdir, mesh), rough_val))
        times.append((workdir.name, config.seed, stage_seconds(records), results["seconds"]))
    lines = ["Test F1, STN-iCNN after its last stage (`results.json`):", "", header]
    lines += [_row(f"{name} (seed {seed})", f1) for name, seed, f1 in final]
    lines += _stats("all seeds", [f1 for _, _, f1 in final])
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


def _seed(workdir: Path) -> int:
    """The seed the run was trained with (its ``config.json``)."""
    return int(json.loads((workdir / "config.json").read_text())["seed"])


if __name__ == "__main__":
    main()
