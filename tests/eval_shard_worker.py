"""Subprocess worker for tests/test_eval_shards.py: one process of a multi-process
evaluation of the tiny model's ``rough`` and ``localizer`` stages on 5 validation
records (fake CPU devices and several processes need a fresh jax). Prints
``RESULT {json}``."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    args = parser.parse_args(argv)

    import jax

    from stn_icnn_jax.config import build
    from stn_icnn_jax.data.sources import load_sources
    from stn_icnn_jax.train import distributed, evaluate, run, stages
    from training_helpers import tiny_training_config

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    config = tiny_training_config(("rough", "localizer"), epochs=1)
    config.data.num_validation = 5
    config.train.eval_batch_size = 2  # global: one row per process on 2 processes
    mesh = distributed.make_mesh()
    sources = load_sources(config, show_progress=False)
    model, variables = run.initial_variables(config, sources, mesh)
    per_process = distributed.check_batch_size(config.train.eval_batch_size, mesh)
    eval_input = build.input_config(config, per_process, training=False)
    out = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    for name in ("rough", "localizer"):
        stage = stages.STAGES[name]
        out[name] = evaluate.evaluate(stage, evaluate.EvalFunctions(model, mesh)(stage),
                                      variables, sources["validation"], eval_input, mesh)
    print("RESULT " + json.dumps(out), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
