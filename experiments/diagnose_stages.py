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

import numpy as np

from stn_icnn_jax import markdown
from stn_icnn_jax.config import build, load_config
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.train import distributed, evaluate, loop, run
from stn_icnn_jax.train.stages import STAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out")
    args, overrides = parser.parse_known_args()
    config = load_config(args.config, overrides)
    mesh = distributed.make_mesh()
    model, sources, after = run.load_trained(config, args.workdir, mesh)
    evals = evaluate.EvalFunctions(model, mesh)
    loader = input_pipeline.make_loader(
        sources["validation"], STAGES["end_to_end"].eval_features,
        build.input_config(config, 10, training=False))
    batch = next(iter(loader))
    truth = np.asarray(stn_icnn.ground_truth_theta(batch, model.config))
    rows = []
    for name in ("parts", "end_to_end"):
        scores = [evaluate.evaluate(STAGES[stage], evals(STAGES[stage]), after[name],
                                    sources["validation"], loop.eval_input_config(config, mesh),
                                    mesh)["f1"]["overall"] for stage in ("parts", "end_to_end")]
        logits = model.apply(after[name], batch["rough_image"], False,
                             method=stn_icnn.STNiCNN.rough_logits)
        theta = np.asarray(model.apply(after[name], logits, False, method=stn_icnn.STNiCNN.localize))
        err = np.abs(theta - truth).mean(axis=(0, 1))
        rows.append([name, f"{scores[0]:.3f}", f"{scores[1]:.3f}",
                     f"{err[0, 0]:.3f}, {err[1, 1]:.3f}, {err[0, 2]:.3f}, {err[1, 2]:.3f}"])
    lines = markdown.table(["parameters after", "F1 overall, ground-truth crops",
                            "F1 overall, L's crops",
                            "mean abs(theta - theta_gt): sx, sy, tx, ty"], rows) + [""]
    print("\n".join(lines))
    if args.out:
        markdown.write(args.out, lines)


if __name__ == "__main__":
    main()
