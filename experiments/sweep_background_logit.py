"""K's map read with several background logits (``model.rough_background_logit``),
without retraining: K's own F1 on its rough map and the iCNN row (the part models on the
centroids of K's map), per trained run.

K trained with its parts' pixels weighted W times (``stages.rough.foreground_weight``)
over-predicts them; adding ``log(w)`` to its background logit where its map is read
undoes a prior factor ``w`` (logit adjustment). This scores each value on a split of the
run's dataset (validation by default: choose the value there, report it on test). L is
not scored: it was trained on K's map as read during its training.

Usage::

    python experiments/sweep_background_logit.py --workdir runs/main_seed0 \\
        --value 0 --value 1.0986 --value 2.3026 --value 3.4012 \\
        --out experiments/results/background_logit.md
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from stn_icnn_jax import evaluation, markdown
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.taxonomy import F1_SETS
from stn_icnn_jax.train import distributed, evaluate


def scores(workdir: str, values: list[float], split: str) -> list[list]:
    """Rows ``[run, value, e^value, what, F1 per class...]`` for each value."""
    trained = evaluation.load_run(workdir, until="parts")
    config = trained.config
    mesh = distributed.make_mesh(config.train.num_devices or None)
    source = evaluation.split_source(config, split)
    icnn_variables = trained.variables_for("parts", "centroid")
    rows = []
    for value in values:
        model = stn_icnn.STNiCNN(dataclasses.replace(trained.model.config,
                                                     rough_background_logit=value))
        fns = evaluate.EvalFunctions(model, mesh)
        own = evaluation.score_rough_map(model, trained.variables["rough"], config, source,
                                         mesh, eval_fns=fns)
        icnn = evaluation.score(model, icnn_variables, config, source, "centroid", mesh,
                                eval_fns=fns)["f1"]
        for what, f1 in (("K's own map", own), ("iCNN (centroid crops)", icnn)):
            rows.append([workdir, f"{value:.4f}", f"{math.exp(value):.1f}", what]
                        + [f"{f1[c]:.3f}" for c in F1_SETS])
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--value", type=float, action="append", required=True,
                        help="background logit to add (repeat)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = [row for workdir in args.workdir for row in scores(workdir, args.value, args.split)]
    lines = [f"# K's map read with a background logit ({args.split} split)", "",
             "`value` is added to K's background logit where its map is read (never in its "
             "loss); `e^value` is the prior factor it undoes. Rows: K's own F1 on its "
             "rough map, and the iCNN row (the run's part models on the centroids of K's "
             "map).", ""]
    lines += markdown.table(["run", "value", "e^value", "what", *F1_SETS], rows)
    markdown.report(lines, "experiments/sweep_background_logit.py", argv, args.out)


if __name__ == "__main__":
    main()
