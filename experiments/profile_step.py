"""Where one training step's (or inference's) time goes: a ``jax.profiler`` trace of a few
steps, summed per XLA operation and per kind of operation.

The step is ``stn-icnn bench train``'s (random inputs of the paper's shapes), or with
``--stage parse`` ``stn-icnn bench parse``'s whole inference of a batch. XLA's CPU
runtime runs independent operations side by side, so on several cores the operations'
times add up to more than the step's wall time; pin the process to one core (``taskset
-c 0``) for shares that add up. Kinds are the operation names without their numeric
suffix: ``ynn_fusion`` (convolutions and dots run by YNNPACK, with what XLA fused into
them), ``convolution`` / ``conv_general_dilated`` (convolutions run by XLA's own Eigen
kernels), ``wrapped_reduce-window`` and ``wrapped_iota`` (max-pool gradients made by
differentiating ``reduce_window``), ``transpose_copy_fusion`` (layout changes), the
``broadcast_*_fusion`` kinds (mostly BatchNorm).

Usage::

    taskset -c 0 python experiments/profile_step.py --stage rough --preset paper --batch 8 \\
        [--config.model.conv=xla] [--out experiments/results/profile_rough_paper.md]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import statistics
import tempfile
from pathlib import Path

import jax

from stn_icnn_jax import benchmark, markdown

RUNTIME = ("ThunkExecutor", "$", "PjitFunction", "CommonPjRt", "ParseArguments",
           "Handle inputs", "DevicePut")


def op_times(trace_dir: str, steps: int) -> dict[str, float]:
    """Milliseconds per step of every XLA operation in the newest trace under trace_dir."""
    traces = sorted(Path(trace_dir).rglob("*.trace.json.gz"), key=os.path.getmtime)
    if not traces:
        raise SystemExit(f"no *.trace.json.gz written under {trace_dir}")
    events = json.load(gzip.open(traces[-1]))
    events = events["traceEvents"] if isinstance(events, dict) else events
    total: collections.Counter = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and "dur" in event and not event["name"].startswith(RUNTIME):
            total[event["name"]] += event["dur"] / 1e3 / steps
    return dict(total)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="rough",
                        choices=("rough", "localizer", "parts", "end_to_end", "parse"),
                        help="a stage's training step, or parse (inference of a batch)")
    parser.add_argument("--preset", default="paper", choices=benchmark.PRESETS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args, overrides = parser.parse_known_args(argv)
    config = benchmark.bench_config(args.preset, 512, overrides)
    if args.stage == "parse":
        step = benchmark.prepare_parse(args.preset, args.batch, config=config)["whole"]
    else:
        step = benchmark.prepare_train_step(args.stage, args.preset, args.batch, config=config)
    for _ in range(2):
        step.call()
    wall = []
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                wall.append(step.call())
        ops = op_times(trace_dir, args.steps)
    kinds: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    for name, ms in ops.items():
        kind = re.sub(r"\.\d+$", "", name)
        kinds[kind] += ms
        counts[kind] += 1
    summed = sum(kinds.values())
    wall_ms = 1e3 * statistics.median(wall)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"# Profile of one {'parse' if args.stage == 'parse' else args.stage + ' training step'} "
        f"({args.preset} preset, batch {args.batch})",
        "",
        f"{benchmark.machine_line()}; this process may use {cores} core(s). Median wall time "
        f"of the {args.steps} traced steps: {wall_ms:.0f} ms; the operations' times add up to "
        f"{summed:.0f} ms per step (more than the wall time when operations ran side by side).",
        "",
    ]
    lines += markdown.table(
        ["kind of operation", "ms per step", "share of the summed time", "operations"],
        [[kind, f"{ms:.1f}", f"{100 * ms / summed:.1f}%", counts[kind]]
         for kind, ms in kinds.most_common()[:args.top]])
    lines += ["", "Slowest single operations:", ""]
    lines += markdown.table(["operation", "ms per step"],
                            [[name, f"{ms:.2f}"] for name, ms in
                             collections.Counter(ops).most_common(args.top)])
    markdown.report(lines, "experiments/profile_step.py", argv, args.out)


if __name__ == "__main__":
    main()
