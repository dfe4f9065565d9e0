"""Compile time of the gradient of the mean softmax CE: optax's
``softmax_cross_entropy_with_integer_labels`` against ``losses.softmax_cross_entropy``.

optax picks the label's logit with ``take(0, axis=-1)``; the gradient of that ``take`` is a
scatter of a constant cotangent into constant zeros, which XLA's constant folding
evaluates element by element at compile time (``slow_operation_alarm``: "Constant folding
an instruction is taking > 1s: scatter-add ..."). Each row: ``jit(grad(f)).lower(...).compile()``
twice per formulation, interleaved. Writes experiments/results/bench_compile_ce.md.

Usage: ``python experiments/bench_compile_ce.py``
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from stn_icnn_jax import losses, markdown

RESULTS = Path(__file__).resolve().parent / "results" / "bench_compile_ce.md"
SHAPES = ((4, 128, 128, 9), (32, 128, 128, 9), (192, 81, 81, 2))  # stage 1; 32 faces x 6 crops


def compile_s(f, logits, labels) -> float:
    started = time.perf_counter()
    jax.jit(jax.grad(f)).lower(logits, labels).compile()
    return time.perf_counter() - started


def main() -> None:
    variants = {
        "optax": lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
        "ours": lambda z, y: losses.softmax_cross_entropy(z, y).mean(),
    }
    lines = ["# Compile time of the softmax-CE gradient", "",
             "`jit(grad(mean CE)).lower(...).compile()`, each formulation twice, interleaved, "
             "on a shared 2-core host (load average per row).", ""]
    rows = []
    for shape in SHAPES:
        z, y = jnp.zeros(shape), jnp.zeros(shape[:-1], jnp.int32)
        times = {name: [] for name in variants}
        for _ in range(2):
            for name, f in variants.items():
                times[name].append(compile_s(f, z, y))
        o, u = min(times["optax"]), min(times["ours"])
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        rows.append([shape, f"{times['optax'][0]:.1f}, {times['optax'][1]:.1f}",
                     f"{times['ours'][0]:.1f}, {times['ours'][1]:.1f}", f"{o / u:.1f}x", load])
        print(markdown.row(rows[-1]), flush=True)
    lines += markdown.table(["logits shape", "optax s (two runs)", "ours s (two runs)",
                             "optax / ours", "load"], rows)
    lines += ["", "Re-run: `python experiments/bench_compile_ce.py`.", ""]
    markdown.write(RESULTS, lines)


if __name__ == "__main__":
    main()
