"""Training steps of config variants side by side, interleaved, in one process.

Each variant is a name and ``--config.a.b=value`` overrides of the ``stn-icnn bench``
config of a preset; every (stage, variant) step is compiled first, then timed in rounds
that call each variant once in turn (``benchmark.interleaved``), so that a host whose
speed drifts slows all variants alike. Prints and writes a Markdown table with each
variant's median, its ratio to the first variant, compile time and XLA's FLOP count.

Usage::

    python experiments/bench_variants.py --preset paper --stage rough --stage parts \\
        --batch 8 --variant xla --config.model.conv=xla \\
        --variant channel_tuned --config.model.conv=channel_tuned \\
        --out experiments/results/bench_conv_impl.md

``--variant NAME`` starts a variant; the ``--config.*`` items after it are its overrides.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stn_icnn_jax import benchmark, markdown


def split_variants(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["--variant", "a", "--config.x=1", "--variant", "b"]`` -> [(a, [..]), (b, [])]."""
    variants: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(items):
        if items[i] == "--variant":
            if i + 1 >= len(items):
                raise SystemExit("--variant needs a name")
            variants.append((items[i + 1], []))
            i += 2
            continue
        if not variants:
            raise SystemExit(f"{items[i]!r} before the first --variant NAME")
        variants[-1][1].append(items[i])
        i += 1
    if not variants:
        raise SystemExit("give at least one --variant NAME [--config.a.b=value ...]")
    return variants


def run(args, variants) -> list[list]:
    rows = []
    for stage in args.stage:
        prepared = {}
        for name, overrides in variants:
            config = benchmark.bench_config(args.preset, args.canvas, overrides)
            prepared[name] = benchmark.prepare_train_step(stage, args.preset, args.batch,
                                                          config=config)
            print(f"{stage} {name}: compiled in {prepared[name].compile_s:.1f} s", flush=True)
        timings = benchmark.interleaved(prepared, reps=args.reps, warmup=args.warmup)
        base = timings[variants[0][0]].median_s
        for name, overrides in variants:
            t = timings[name]
            rows.append([stage, name, " ".join(overrides) or "(defaults)",
                         f"{t.median_s * 1e3:.0f}", f"{t.min_s * 1e3:.0f}-{t.max_s * 1e3:.0f}",
                         f"{base / t.median_s:.2f}x", f"{t.compile_s:.1f}",
                         f"{t.flops / 1e9:.2f}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=benchmark.PRESETS)
    parser.add_argument("--stage", action="append", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--canvas", type=int, default=512)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args, rest = parser.parse_known_args(argv)
    variants = split_variants(rest)
    started = time.time()
    rows = run(args, variants)
    lines = [
        f"# Step time of config variants, interleaved ({args.preset} preset, batch "
        f"{args.batch})",
        "",
        f"{benchmark.machine_line()} at the end; {args.warmup} warm-up calls, then "
        f"{args.reps} rounds calling each variant once in turn; median per variant, "
        f"`vs first` = the first variant's median / this one's (above 1: faster). "
        f"Run time {(time.time() - started) / 60:.1f} min.",
        "",
    ]
    lines += markdown.table(["stage", "variant", "overrides", "median ms", "range ms",
                             "vs first", "compile s", "GFLOP/step"], rows)
    markdown.report(lines, "experiments/bench_variants.py", argv, args.out)


if __name__ == "__main__":
    main()
