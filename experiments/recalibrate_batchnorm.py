"""Validation F1 of a stage's best checkpoint with its BatchNorm running statistics as
trained, and re-estimated on training batches (to tell a train/eval BatchNorm mismatch
from a real failure). Usage (the overrides the run was trained with):

    python experiments/recalibrate_batchnorm.py --config experiments/configs/synthetic.py \
        --workdir runs/sweep_parts/ce_lr0.003 --stage parts \
        --config.stage_order=parts --config.stages.parts.epochs=1 \
        --config.stages.parts.learning_rates.parts=0.003
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

from stn_icnn_jax.config import build, load_config
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.model import stn_icnn
from stn_icnn_jax.train import distributed, evaluate, loop, run
from stn_icnn_jax.train.stages import STAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--stage", required=True, choices=("parts", "end_to_end"))
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 40],
                        help="report after this many training batches")
    args, overrides = parser.parse_known_args()
    config = load_config(args.config, overrides)
    mesh = distributed.make_mesh()
    stage = STAGES[args.stage]
    model, sources, after = run.load_trained(config, args.workdir, mesh, until=args.stage)
    variables = after[args.stage]
    eval_fn = evaluate.EvalFunctions(model, mesh)(stage)
    eval_input = loop.eval_input_config(config, mesh)

    def show(what: str, v: dict) -> None:
        f1 = evaluate.evaluate(stage, eval_fn, v, sources["validation"], eval_input, mesh)["f1"]
        print(f"{what}: " + ", ".join(f"{k} {x:.3f}" for k, x in f1.items()), flush=True)

    show("as trained", variables)
    source = "ground_truth" if args.stage == "parts" else "predicted"

    @jax.jit
    def update(v: dict, batch: dict) -> dict:
        _, stats = stn_icnn.forward(model, v, batch, True, theta_source=source)
        return {"params": v["params"], "batch_stats": stats}

    loader = input_pipeline.make_loader(
        sources["train"], stage.features,
        build.input_config(config, config.train.batch_size, training=True, seed=1),
        num_epochs=1)
    for i, batch in enumerate(loader, start=1):
        variables = update(variables, batch)
        if i in args.batches:
            show(f"statistics re-estimated on {i} training batches", variables)
        if i >= max(args.batches):
            break


if __name__ == "__main__":
    main()
