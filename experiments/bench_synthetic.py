"""Times the synthetic face generator: 1,000 faces on all cores (a process pool).

Writes experiments/results/bench_synthetic.md. Usage:
    python experiments/bench_synthetic.py [--faces 1000] [--processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

from stn_icnn_jax import markdown


def _one(seed: int) -> tuple[int, float]:
    import cv2

    cv2.setNumThreads(1)
    from stn_icnn_jax.data.synthetic import generate_face

    start = time.process_time()
    face = generate_face(seed)
    return int(np.prod(face["image"].shape[:2])), time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    start = time.perf_counter()
    with mp.get_context("fork").Pool(args.processes) as pool:
        results = pool.map(_one, range(args.faces), chunksize=8)
    wall = time.perf_counter() - start
    pixels = np.array([r[0] for r in results])
    cpu = np.array([r[1] for r in results])
    lines = [
        "# Synthetic face generation speed",
        "",
        f"`python experiments/bench_synthetic.py --faces {args.faces} --processes {args.processes}` "
        f"on {os.cpu_count()} CPUs ({platform.machine()}), load average at start "
        f"{os.getloadavg()[0]:.1f} (other jobs share the machine).",
        "",
        *markdown.table(
            ["faces", "processes", "wall s", "CPU s per face (median)", "CPU s total",
             "mean image side px"],
            [[args.faces, args.processes, f"{wall:.1f}", f"{np.median(cpu):.3f}",
              f"{cpu.sum():.1f}", f"{np.sqrt(pixels).mean():.0f}"]]),
        "",
    ]
    print(markdown.write(Path(__file__).parent / "results" / "bench_synthetic.md", lines))


if __name__ == "__main__":
    main()
