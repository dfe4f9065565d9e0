"""``stn-icnn train``: run the training stages from an ml_collections config file."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path

import ml_collections


def load_config(path: str | Path, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """``get_config()`` of a Python config file, with ``--config.a.b=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_stn_icnn_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} has no get_config() function")
    config = module.get_config()
    for item in _pairs(overrides):
        key, raw = item
        apply_override(config, key, raw)
    return config


def _pairs(overrides: list[str]) -> list[tuple[str, str]]:
    out, i = [], 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--config."):
            raise ValueError(f"unrecognised argument {arg!r}; overrides look like --config.a.b=value")
        key = arg[len("--config."):]
        if "=" in key:
            key, raw = key.split("=", 1)
        else:
            if i + 1 >= len(overrides):
                raise ValueError(f"override {arg} has no value")
            i += 1
            raw = overrides[i]
        out.append((key, raw))
        i += 1
    return out


def apply_override(config: ml_collections.ConfigDict, key: str, raw: str) -> None:
    """Sets ``config.<key>`` (dotted) to ``raw`` parsed as a Python literal (else a string)."""
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
        if name not in node:
            raise KeyError(f"--config.{key}: no field {name!r} in the config")
        node = node[name]
    if leaf not in node:
        raise KeyError(f"--config.{key}: no field {leaf!r} in the config (typo?)")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    old = node[leaf]
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(old, tuple) and isinstance(value, str):  # --config.stage_order=rough,parts
        value = tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        node[leaf] = value
    except TypeError as exc:
        raise ValueError(
            f"--config.{key}={raw}: {type(value).__name__} does not fit the field's "
            f"{type(old).__name__} (now {old!r})"
        ) from exc


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
    parser.add_argument("--stage", action="append", choices=["rough", "localizer", "parts", "end_to_end"],
                        help="train only this stage (repeatable); default: config.stage_order")
    parser.add_argument("--coordinator", help="multi-host: coordinator address host:port")
    parser.add_argument("--num_processes", type=int, help="multi-host: number of processes")
    parser.add_argument("--process_id", type=int, help="multi-host: this process's index")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--compilation_cache", metavar="DIR",
        help="persistent XLA compilation cache (also JAX_COMPILATION_CACHE_DIR): a resumed "
             "or repeated run reuses the compiled steps instead of compiling them again",
    )
    parser.set_defaults(func=_cmd_train, accepts_overrides=True)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    import jax

    from stn_icnn_jax import checkpoints, distributed, runner

    config = load_config(args.config, args.overrides)  # config errors before jax starts
    if args.compilation_cache:
        jax.config.update("jax_compilation_cache_dir", str(Path(args.compilation_cache).expanduser()))
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    try:
        runner.run(config, args.workdir, stages=args.stage, show_progress=not args.no_progress)
    except (checkpoints.ConfigMismatchError, checkpoints.ResumeMismatchError,
            FloatingPointError) as exc:
        # Expected stops with a message that says what to do: no traceback.
        print(f"stn-icnn train: error: {exc}", file=sys.stderr, flush=True)
        return 3 if isinstance(exc, FloatingPointError) else 2
    return 0
