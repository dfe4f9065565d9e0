"""Compile time and step time of one of our train steps under XLA flag settings.

Each measurement is one ``stn-icnn bench train --json`` process with ``XLA_FLAGS`` set to
the setting (after any XLA_FLAGS of this process's environment), so every compile is
cold and no flag leaks into the next setting; the settings run in turn, ``--rounds``
times, so that a host whose speed drifts slows all of them alike. The table gives the
first-step compile (``jit(step).lower(...).compile()``) split into tracing + lowering
(Python, before XLA) and XLA's part, the step's median time, and both as ratios to the
first setting.

Usage::

    python experiments/bench_xla_flags.py                      # end_to_end, candidates below
    python experiments/bench_xla_flags.py --stage rough --flags= \\
        --flags=--xla_backend_optimization_level=1      # "--flags=VALUE": VALUE starts with --

Writes experiments/results/bench_xla_flags.md (``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from stn_icnn_jax import benchmark, markdown

RESULTS = Path(__file__).resolve().parent / "results" / "bench_xla_flags.md"

#: XLA CPU options that trade code quality for compile time (the first: no flags).
CANDIDATES = (
    "",
    "--xla_backend_optimization_level=1",
    "--xla_cpu_opt_preset=FAST_COMPILE",
    "--xla_cpu_use_fusion_emitters=false",
)


def environment(flags: str) -> dict[str, str]:
    """This process's environment with ``flags`` appended to its XLA_FLAGS."""
    env = dict(os.environ)
    joined = " ".join(f for f in (env.get("XLA_FLAGS", ""), flags) if f)
    env.pop("XLA_FLAGS", None)
    if joined:
        env["XLA_FLAGS"] = joined
    return env


def measure(flags: str, args) -> dict | None:
    """One process's JSON, or None if it failed (an unknown flag in this jaxlib, say:
    printed, and the setting's row says so)."""
    command = benchmark.bench_command("train", args.preset, args.batch, stage=args.stage,
                                      canvas=args.canvas, reps=args.reps,
                                      overrides=args.overrides)
    try:
        return benchmark.run_bench_process(command, environment(flags))
    except RuntimeError as error:
        print(f"XLA_FLAGS={flags!r}: {error}", file=sys.stderr, flush=True)
        return None


def report(results: dict[str, list[dict]], args, header: str) -> str:
    base = next((flags for flags, runs in results.items() if runs), None)
    if base is None:
        raise SystemExit("every setting failed")

    def med(flags, key):
        return statistics.median(r[key] for r in results[flags])

    rows = []
    for flags, runs in results.items():
        if not runs:
            rows.append([f"`{flags}`", "failed (see the run's output)"] + [""] * 5)
            continue
        rows.append([
            f"`{flags}`" if flags else "(none)",
            " / ".join(f"{r['compile_s']:.1f}" for r in runs),
            f"{med(flags, 'lower_s'):.1f}",
            f"{med(flags, 'compile_s') - med(flags, 'lower_s'):.1f}",
            " / ".join(f"{r['median_s']:.3f}" for r in runs),
            f"{med(flags, 'compile_s') / med(base, 'compile_s'):.2f}",
            f"{med(flags, 'median_s') / med(base, 'median_s'):.2f}",
        ])
    lines = [
        f"# XLA flags: compile and step time of the {args.stage} train step",
        "",
        f"{header}. Preset {args.preset}, batch {args.batch}, canvas {args.canvas}, median "
        f"of {args.reps} timed calls per process, {args.rounds} round(s) of all settings "
        "in turn; each a `stn-icnn bench train --json` process of its own (cold compile, "
        "malloc huge pages as the command sets them).",
        "",
        "Compile = `jit(step).lower(...).compile()` in seconds (one per round), split into "
        "tracing + lowering (Python) and XLA (medians); step in seconds (one per round); "
        "the ratios divide the medians by the first row's (below 1: less time).",
        "",
    ]
    lines += markdown.table(["XLA_FLAGS", "compile s", "of it tracing + lowering s",
                             "of it XLA s", "step s", "compile / first", "step / first"], rows)
    command = " ".join(["python experiments/bench_xla_flags.py", *args.argv])
    lines += ["", f"Re-run: `{command}`", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="end_to_end",
                        choices=("rough", "localizer", "parts", "end_to_end"))
    parser.add_argument("--flags", action="append",
                        help="one XLA_FLAGS setting, written --flags=VALUE (repeat; --flags= "
                             "is none); default: the candidates in this script")
    args = benchmark.parse_script_args(parser, argv, reps=3, rounds=1, out=RESULTS)
    settings = list(dict.fromkeys(args.flags if args.flags is not None else CANDIDATES))
    header = benchmark.machine_line() + " at the start (this process)"
    results: dict[str, list[dict]] = {flags: [] for flags in settings}
    started = time.time()
    for round_ in range(args.rounds):
        for flags in settings:
            result = measure(flags, args)
            if result is None:
                continue
            results[flags].append(result)
            print(f"round {round_ + 1} {flags or '(none)'}: compile {result['compile_s']:.1f} s "
                  f"(lowering {result['lower_s']:.1f}), step {result['median_s']:.3f} s",
                  flush=True)
    load = os.getloadavg()
    text = report(results, args, header + f"; {(time.time() - started) / 60:.1f} min in all, "
                  f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    benchmark.write_report(text, args.out)


if __name__ == "__main__":
    main()
