"""``stn-icnn train``: run the training stages from an ml_collections config file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stn_icnn_jax.cli.main import config_errors_are_usage_errors
from stn_icnn_jax.train.stages import STAGE_NAMES


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train STN-iCNN (all stages in order, or --stage)",
        description=(
            "Train the stages of config.stage_order (rough, localizer, parts, end_to_end) "
            "in order, resuming from the work directory's checkpoints. Override any config "
            "field with --config.a.b=value, e.g. --config.train.batch_size=16."
        ),
    )
    parser.add_argument("--config", required=True, help="Python file with get_config()")
    parser.add_argument("--workdir", required=True, help="checkpoints, logs and results go here")
    parser.add_argument("--stage", action="append", choices=STAGE_NAMES,
                        help="train only this stage (repeatable); default: config.stage_order")
    parser.add_argument("--coordinator", help="multi-host: coordinator address host:port")
    parser.add_argument("--num_processes", type=int, help="multi-host: number of processes")
    parser.add_argument("--process_id", type=int, help="multi-host: this process's index")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--compilation_cache", metavar="DIR",
        help="persistent XLA compilation cache: a resumed or repeated run reuses the compiled "
             "steps instead of compiling them again. Default: JAX_COMPILATION_CACHE_DIR if "
             "set, else $XDG_CACHE_HOME/stn-icnn/jax (~/.cache/stn-icnn/jax)",
    )
    parser.add_argument("--no_compilation_cache", action="store_true",
                        help="compile every step from scratch (no persistent cache)")
    parser.set_defaults(func=_cmd_train, accepts_overrides=True)
    return parser


def compilation_cache_dir(flag: str | None, disabled: bool) -> str | None:
    """The persistent cache directory: ``--compilation_cache``, else
    JAX_COMPILATION_CACHE_DIR, else the user cache folder; None when disabled."""
    if disabled:
        return None
    if flag:
        return str(Path(flag).expanduser())
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return str(Path(base) / "stn-icnn" / "jax")


def _cmd_train(args: argparse.Namespace) -> int:
    import jax

    from stn_icnn_jax.config import load_config
    from stn_icnn_jax.train import distributed, run

    with config_errors_are_usage_errors():  # before jax starts
        config = load_config(args.config, args.overrides)
    cache = compilation_cache_dir(args.compilation_cache, args.no_compilation_cache)
    jax.config.update("jax_compilation_cache_dir", cache)
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    # Errors (a work directory in use or of another config, a NaN loss, a failed save,
    # preemption) propagate to cli.main, which prints them as one line.
    run.run(config, args.workdir, stages=args.stage, show_progress=not args.no_progress)
    return 0
