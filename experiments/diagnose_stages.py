"""Scores every stage's best checkpoint of a training run both ways, to see which
network a stage changed.

For the parameters after `parts` and after `end_to_end`: validation F1 with
ground-truth crops (the part models alone) and with L's crops (the full pipeline),
and the mean |theta - theta_gt| of L on one validation batch. Usage:

    python experiments/diagnose_stages.py --config experiments/configs/synthetic.py \
        --workdir runs/synthetic [--out experiments/results/synthetic_run/diagnosis.md] \
        [--config.key=value ...]   # the overrides the run was trained with
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stn_icnn_jax import distributed, pipeline, runner, train_cli
from stn_icnn_jax.data import input_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out")
    args, overrides = parser.parse_known_args()
    config = train_cli.load_config(args.config, overrides)
    workdir = Path(args.workdir)
    mesh = distributed.make_mesh()
    sources = runner.load_sources(config, show_progress=False)
    model, variables = runner.initial_variables(config, sources, mesh)
    after = {}
    for stage in ("rough", "localizer", "parts", "end_to_end"):
        variables = runner.load_stage(stage, config, variables, sources, workdir, mesh)
        after[stage] = variables
    evals = runner.EvalFunctions(model, mesh)
    loader = input_pipeline.make_loader(
        sources["validation"], "eval", runner.input_config(config, 10, training=False))
    batch = next(iter(loader))
    truth = np.asarray(pipeline.ground_truth_theta(batch, model.config))
    lines = ["| parameters after | F1 overall, ground-truth crops | F1 overall, L's crops | "
             "mean abs(theta - theta_gt): sx, sy, tx, ty |", "|---|---|---|---|"]
    for name in ("parts", "end_to_end"):
        scores = [runner.evaluate(stage, evals(stage), after[name], sources["validation"],
                                  config, mesh)["f1"]["overall"] for stage in ("parts", "end_to_end")]
        logits = model.apply(after[name], batch["rough_image"], False,
                             method=pipeline.STNiCNN.rough_logits)
        theta = np.asarray(model.apply(after[name], logits, False, method=pipeline.STNiCNN.localize))
        err = np.abs(theta - truth).mean(axis=(0, 1))
        lines.append(f"| {name} | {scores[0]:.3f} | {scores[1]:.3f} | "
                     f"{err[0, 0]:.3f}, {err[1, 1]:.3f}, {err[0, 2]:.3f}, {err[1, 2]:.3f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
