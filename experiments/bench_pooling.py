"""The iCNN's max-pool (3x3/s2/p1) as flax's ``reduce_window`` against
``model/pooling.max_pool_3x3_s2`` (the same values and gradient), interleaved in one run.

Two tables: forward + backward of the pool alone at the stage-1 pyramid's shapes (batch
B), and whole training steps of the given stages with ``icnn.max_pool_down`` set to
each implementation in turn (the steps are traced while it is set, so each compiled
step holds its own pool).

Usage::

    python experiments/bench_pooling.py --preset paper --stage rough --stage parts --batch 8
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp

from stn_icnn_jax import benchmark, markdown
from stn_icnn_jax.model import icnn, pooling

POOLS = {
    "flax_reduce_window": lambda x: nn.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1))),
    "nine_views": pooling.max_pool_3x3_s2,
}


def layer_rows(batch: int, reps: int) -> list[list]:
    rows = []
    for size, channels in ((128, 8), (64, 16), (32, 24), (81, 8), (41, 16)):
        x = jax.random.normal(jax.random.key(0), (batch, size, size, channels))
        dy = jnp.ones((batch, -(-size // 2), -(-size // 2), channels))
        prepared = {name: benchmark.Prepared(lambda x, dy, f=f: jax.vjp(f, x)[1](dy)[0], x, dy)
                    for name, f in POOLS.items()}
        t = benchmark.interleaved(prepared, reps=reps, warmup=2)
        a, b = (t[name].median_s for name in POOLS)
        rows.append([f"{batch}x{size}x{size}x{channels}", f"{a * 1e3:.2f}", f"{b * 1e3:.2f}",
                     f"{a / b:.2f}x"])
        print(rows[-1], flush=True)
    return rows


def step_rows(preset: str, stages: list[str], batch: int, reps: int) -> list[list]:
    rows = []
    original = icnn.max_pool_down
    try:
        for stage in stages:
            prepared = {}
            for name, pool in POOLS.items():
                icnn.max_pool_down = pool
                prepared[name] = benchmark.prepare_train_step(
                    stage, preset, batch, config=benchmark.bench_config(preset, 512))
            t = benchmark.interleaved(prepared, reps=reps, warmup=2)
            a, b = (t[name].median_s for name in POOLS)
            rows.append([stage, f"{a * 1e3:.0f}", f"{b * 1e3:.0f}", f"{a / b:.2f}x"])
            print(rows[-1], flush=True)
    finally:
        icnn.max_pool_down = original
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=benchmark.PRESETS)
    parser.add_argument("--stage", action="append", default=[])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--out", default="experiments/results/bench_pooling.md")
    args = parser.parse_args(argv)
    lines = [f"# Max-pool 3x3/s2/p1: flax reduce_window vs nine strided views ({args.preset} "
             f"preset, batch {args.batch})", "",
             f"{benchmark.machine_line()} at the start; medians of {args.reps} interleaved "
             "rounds after 2 warm-up calls; `ratio` = reduce_window / nine views (above 1: "
             "the views are faster).", "", "Forward + backward of the pool alone (ms):", ""]
    lines += markdown.table(["input (N, H, W, C)", "reduce_window", "nine views", "ratio"],
                            layer_rows(args.batch, args.reps))
    if args.stage:
        lines += ["", "Whole training step (ms):", ""]
        lines += markdown.table(["stage", "reduce_window", "nine views", "ratio"],
                                step_rows(args.preset, args.stage, args.batch, args.reps))
    markdown.report(lines, "experiments/bench_pooling.py", argv, args.out)


if __name__ == "__main__":
    main()
