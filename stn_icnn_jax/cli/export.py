"""``stn-icnn export``: a training run's best parameters as one weights file."""

from __future__ import annotations

import argparse

from stn_icnn_jax.train.stages import STAGE_NAMES


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="write a run's best parameters as a weights file",
        description=(
            "Write the best parameters after a stage of a `stn-icnn train` run (default: "
            "its last trained stage) with the run's config and a record of each stage's "
            "steps and validation score, as one weights file (`stn-icnn eval --weights`)."
        ),
    )
    parser.add_argument("--workdir", required=True, help="a `stn-icnn train` work directory")
    parser.add_argument("--out", required=True, help="the weights file to write (.stnw)")
    parser.add_argument("--stage", choices=STAGE_NAMES,
                        help="the parameters after this stage (default: the last trained)")
    parser.set_defaults(func=_cmd_export)
    return parser


def _cmd_export(args: argparse.Namespace) -> int:
    from stn_icnn_jax import weights

    # EvaluationError (no such run or stage): cli.main prints it as one line, exit status 1.
    exported = weights.from_workdir(args.workdir, args.stage)
    path = weights.save(args.out, exported.variables, exported.config, exported.record)
    stage = exported.record["stage"]
    record = exported.record["stages"][stage]
    print(f"wrote {path}: parameters after stage {stage} (best step {record['best_step']}, "
          f"validation selection score {record['selection']})", flush=True)
    return 0
