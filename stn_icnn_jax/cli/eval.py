"""``stn-icnn eval``: the paper's F1 columns of a trained run or a weights file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stn_icnn_jax.train.stages import STAGE_NAMES

from stn_icnn_jax.model.stn_icnn import THETA_SOURCES as CROPS


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="F1 of a trained run or weights file (the paper's Table 2 columns)",
        description=(
            "Parse a split at each image's native resolution and print the pooled F1 of "
            "the paper's columns (eyes, brows, nose, inner mouth, upper lip, lower lip, "
            "mouth, overall) as a Markdown table and a last line 'overall ... F1'; the same "
            "is written as JSON into the work directory (or --out)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a `stn-icnn train` work directory")
    source.add_argument("--weights", help="a weights file (`stn-icnn export`)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--stage", default="end_to_end", choices=STAGE_NAMES,
                        help="the parameters after this stage (default end_to_end; "
                             "parts = after pre-training)")
    parser.add_argument("--crops", default="predicted", choices=CROPS,
                        help="part crops from L's theta (predicted, default), the labelled "
                             "part centres (ground_truth) or the centroids of K's rough mask "
                             "(centroid: the paper's iCNN baseline)")
    parser.add_argument("--table2", action="store_true",
                        help="the paper's Table 2 rows side by side: iCNN (centroid crops "
                             "after pre-training), STN-iCNN* (L's crops after pre-training), "
                             "STN-iCNN (after end_to_end)")
    parser.add_argument("--data", help="score this TFDS dataset instead of the run's own")
    parser.add_argument("--data_dir", help="TFDS data directory of --data")
    parser.add_argument("--config", dest="builder_config",
                        help="builder config of --data (e.g. small)")
    parser.add_argument("--out", help="write the JSON here (default: into the work "
                                      "directory; --weights: not written without --out)")
    parser.set_defaults(func=_cmd_eval)
    return parser


def _cmd_eval(args: argparse.Namespace) -> int:
    from stn_icnn_jax import evaluation

    # EvaluationError / WeightsFileError: cli.main prints them as one line, exit status 1.
    data = evaluation.DataChoice(args.data, args.data_dir, args.builder_config)
    other_data = any(v is not None for v in (args.data, args.data_dir, args.builder_config))
    if args.table2:
        if not args.workdir:
            raise evaluation.EvaluationError("--table2 needs --workdir (the three rows "
                                             "come from one training run)")
        result = evaluation.table2(args.workdir, args.split, data)
        text = evaluation.format_table2(result)
    elif args.workdir:
        result = evaluation.evaluate_workdir(args.workdir, args.stage, args.split,
                                             args.crops, data)
        text = evaluation.format_result(result)
    else:
        result = evaluation.evaluate_weights(args.weights, args.split, args.crops, data)
        text = evaluation.format_result(result)
    print(text, flush=True)
    out = args.out
    if out is None and args.workdir:
        out = Path(args.workdir) / evaluation.result_name(result, other_data)
    if out is not None:
        print(f"wrote {evaluation.write_json(result, out)}", file=sys.stderr, flush=True)
    return 0
