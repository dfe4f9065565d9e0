"""What the persistent XLA compilation cache buys: each stage's train step compiled cold,
then again in a new process with the cache the first process filled.

Each measurement is a fresh ``stn-icnn bench train --stage S --compilation_cache DIR
--json`` process (the command reports ``compile_s``: ``jit(step).lower(...).compile()``).
Writes experiments/results/bench_compile_cache.md.

Usage::

    python experiments/bench_compile_cache.py [--preset paper] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stn_icnn_jax import markdown

RESULTS = Path(__file__).resolve().parent / "results" / "bench_compile_cache.md"
STAGES = ("rough", "localizer", "parts", "end_to_end")


def bench(stage: str, preset: str, batch: int, canvas: int, cache: str) -> dict:
    cmd = [sys.executable, "-m", "stn_icnn_jax.cli", "bench", "train", "--stage", stage,
           "--preset", preset, "--batch", str(batch), "--canvas", str(canvas), "--reps", "1",
           "--compilation_cache", cache, "--json"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=("authors", "paper"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--canvas", type=int, default=512)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for stage in args.stages.split(","):
            cold = bench(stage, args.preset, args.batch, args.canvas, cache)
            warm = bench(stage, args.preset, args.batch, args.canvas, cache)
            rows.append((stage, cold, warm))
            print(stage, cold["compile_s"], warm["compile_s"], cold["machine"], flush=True)
    lines = [
        "# Compile time with and without the persistent XLA cache",
        "",
        f"`{args.preset}` preset, batch {args.batch}, canvas {args.canvas}; each cell is a "
        "fresh process of `stn-icnn bench train` (`compile_s` = `jit(step).lower(...)"
        ".compile()`); the warm process reads the cache the cold one wrote. The host is "
        "shared: the load average at each measurement is in its row.",
        "",
    ]
    cells = []
    for stage, cold, warm in rows:
        lc = cold["machine"].split("load average ")[1]
        lw = warm["machine"].split("load average ")[1]
        cells.append([stage, f"{cold['compile_s']:.1f}", f"{warm['compile_s']:.2f}",
                      f"{cold['compile_s'] / max(warm['compile_s'], 1e-9):.0f}x",
                      f"{cold['median_s']:.3f} / {warm['median_s']:.3f}", f"{lc}; {lw}"])
    lines += markdown.table(
        ["stage", "cold compile s", "cached compile s", "saved",
         "step median s (cold / cached process)", "load (cold; cached)"], cells)
    lines += ["", f"Whole run: {(time.time() - started) / 60:.1f} min. Re-run: "
              f"`python experiments/bench_compile_cache.py --preset {args.preset} "
              f"--batch {args.batch}`.", ""]
    print(markdown.write(args.out, lines))


if __name__ == "__main__":
    main()
