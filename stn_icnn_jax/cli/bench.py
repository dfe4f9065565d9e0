"""``stn-icnn bench``: time one training step or inference of our model on random data."""

from __future__ import annotations

import argparse
import json

from stn_icnn_jax.cli.main import config_errors_are_usage_errors
from stn_icnn_jax.errors import UsageError
from stn_icnn_jax.train.stages import STAGE_NAMES


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench",
        help="time a training step (bench train) or inference per face (bench parse)",
        description=(
            "Time our jitted training step of one stage, or inference, on random inputs of "
            "the paper's shapes: compile time separately, then the median of timed calls "
            "after warm-up; FLOPs from XLA's cost analysis. Override any model field with "
            "--config.a.b=value (e.g. --config.model.icnn_channels=8,16)."
        ),
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    train = sub.add_parser("train", help="one training step of a stage")
    train.add_argument("--stage", required=True, choices=STAGE_NAMES)
    parse = sub.add_parser("parse", help="inference per face (stage 1 + L + crop + parts + "
                                         "paste-back; face finding separately)")
    for p in (train, parse):
        p.add_argument("--preset", default="paper", choices=("authors", "paper"),
                       help="the paper's model (3x3 iCNN, VGG-9 L) or the authors' code's "
                            "(5x5/9x9 iCNN, ResNet-18 L)")
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--canvas", type=int, default=1024, help="side of the padded canvas")
        p.add_argument("--reps", type=int, default=5, help="timed calls (median reported)")
        p.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--compilation_cache", metavar="DIR",
                       help="use this persistent XLA cache (default: none, so compile_s is "
                            "a cold compile)")
        p.set_defaults(func=_cmd_bench, accepts_overrides=True)
    return parser


def _cmd_bench(args: argparse.Namespace) -> int:
    import jax

    from stn_icnn_jax import benchmark

    if args.compilation_cache:
        jax.config.update("jax_compilation_cache_dir", args.compilation_cache)
    if args.batch < 1 or args.reps < 1 or args.warmup < 0:
        raise UsageError("stn-icnn bench: --batch and --reps must be >= 1, --warmup >= 0")
    with config_errors_are_usage_errors():
        config = benchmark.bench_config(args.preset, args.canvas, args.overrides)
    if args.bench_command == "train":
        result = benchmark.train_step_benchmark(args.stage, args.preset, args.batch,
                                                reps=args.reps, warmup=args.warmup,
                                                config=config)
    else:
        result = benchmark.parse_benchmark(args.preset, args.batch, reps=args.reps,
                                           warmup=args.warmup, config=config)
    result["machine"] = benchmark.machine_line()
    if args.json:
        print(json.dumps(result))
    else:
        print(format_result(result))
    return 0


def format_result(result: dict) -> str:
    """A few human-readable lines."""
    what = (f"train step, stage {result['stage']}" if "stage" in result else "parse")
    lines = [
        f"{what}, {result['preset']} preset, batch {result['batch']} ({result['machine']})",
        f"  median {result['median_s'] * 1e3:.1f} ms (min {result['min_s'] * 1e3:.1f}, "
        f"max {result['max_s'] * 1e3:.1f}, {result['reps']} reps); compile "
        f"{result['compile_s']:.1f} s (tracing and lowering {result['lower_s']:.1f} s of it); "
        f"{result['flops'] / 1e9:.2f} GFLOP "
        f"({result['gflops_per_s']:.1f} GFLOP/s)",
    ]
    if "per_face_s" in result:
        lines.append(f"  per face {result['per_face_s'] * 1e3:.1f} ms: network "
                     f"{result['network']['median_s'] * 1e3:.1f} ms, paste-back "
                     f"{result['paste_back']['median_s'] * 1e3:.1f} ms per batch")
        face = result["face_finding"]
        lines.append("  face finding (OpenCV Haar cascade): " + (
            f"{face['median_s'] * 1e3:.1f} ms per {face['image_size'][0]}x"
            f"{face['image_size'][1]} image" if face else "not available (no cv2.CascadeClassifier in this OpenCV)"))
    return "\n".join(lines)
