"""Training throughput on this machine: train steps per stage, device scaling, input pipeline.

Writes ``experiments/results/bench_training.md``:

1. images/s of one jitted training step per stage (``rough``, ``localizer``, ``parts``,
   ``end_to_end``) for the default (paper preset) model at batch 8, after warm-up,
   median of a few steps; next to it the grain input pipeline's batches/s for the same
   stage (synthetic faces, paper augmentation, ``worker_count`` 0 and 2), so one sees
   whether data loading keeps up with the step.
2. one training step (``--scaling-stage``, ``rough`` by default: the ``end_to_end``
   step compiles ~3x longer) at the same global batch on 1, 2 and 4 fake CPU devices
   (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, one subprocess each), with
   global and per-device BatchNorm. Fake devices share the same CPU cores, so this
   measures the overhead of partitioning, not a speed-up.

Usage::

    python experiments/bench_training.py                 # ~10 minutes on 2 cores
    python experiments/bench_training.py --scaling-stage end_to_end   # longer
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stn_icnn_jax import markdown
from stn_icnn_jax.train.stages import STAGE_NAMES as STAGES
from stn_icnn_jax.train.stages import STAGES as RECORDS

RESULTS = Path(__file__).resolve().parent / "results" / "bench_training.md"


def model_and_variables(canvas: int):
    """The base config's (paper preset) model on a ``canvas`` canvas, fresh variables."""
    import jax
    import numpy as np

    from stn_icnn_jax.config import base_config, build
    from stn_icnn_jax.model import stn_icnn

    config = base_config()
    config.data.canvas_size = canvas
    model = stn_icnn.STNiCNN(build.model_config(config))
    variables = stn_icnn.init_variables(model, jax.random.key(0, impl="rbg"))
    return model, jax.tree.map(np.asarray, variables), config


def synthetic_records(n: int) -> list[dict]:
    from stn_icnn_jax.data.synthetic import generate_face

    return [{k: v for k, v in generate_face(1000 + i).items() if k != "meta"} for i in range(n)]


def input_config(config, batch: int, workers: int, seed: int = 0):
    from stn_icnn_jax.config import build

    training = build.input_config(config, batch, training=True, seed=seed)
    return dataclasses.replace(training, worker_count=workers)


def fixed_batches(records, stage: str, config, batch: int, count: int) -> list[dict]:
    """``count`` real input batches of ``stage`` (made once, outside the timing)."""
    from stn_icnn_jax.data import input_pipeline

    loader = input_pipeline.make_loader(records, RECORDS[stage].features,
                                        input_config(config, batch, 0),
                                        num_epochs=None)
    it = iter(loader)
    return [next(it) for _ in range(count)]


def time_steps(stage: str, model, variables, batches: list[dict], mesh, per_device: bool,
               warmup: int, steps: int) -> dict:
    """Compile + warm-up, then ``steps`` timed steps (each waits for its result)."""
    import jax

    from stn_icnn_jax.config import base_config, build
    from stn_icnn_jax.train import distributed, step as train

    stage_cfg = build.stage_config(base_config(), stage)
    tx = train.make_optimizer(stage_cfg, 1000, variables["params"])
    step = distributed.compile_train_step(
        functools.partial(train.make_train_step, model, RECORDS[stage], stage_cfg, tx), mesh,
        per_device_batch_stats=per_device)
    state = jax.device_put(train.init_state(variables["params"], variables["batch_stats"], tx),
                           distributed.replicated(mesh))
    global_batches = [distributed.to_global(b, mesh) for b in batches]
    started = time.perf_counter()
    state, metrics = step(state, global_batches[0])
    jax.block_until_ready((state, metrics))
    first = time.perf_counter() - started
    for i in range(1, warmup):
        state, metrics = step(state, global_batches[i % len(global_batches)])
    jax.block_until_ready((state, metrics))
    times = []
    for i in range(steps):
        started = time.perf_counter()
        state, metrics = step(state, global_batches[i % len(global_batches)])
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - started)
    loss = float(metrics["loss"])
    if loss != loss:
        raise FloatingPointError(f"{stage}: loss is NaN in the benchmark")
    return {"first_step_s": first, "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "loss": loss}


def time_loader(records, stage: str, config, batch: int, workers: int, count: int) -> dict:
    """Sustained batches/s of the grain loader: the first batch (worker start-up) and,
    with workers, the batches they prefetched meanwhile are not timed."""
    from stn_icnn_jax.data import input_pipeline

    loader = input_pipeline.make_loader(records, RECORDS[stage].features,
                                        input_config(config, batch, workers),
                                        num_epochs=None)
    it = iter(loader)
    started = time.perf_counter()
    next(it)
    first = time.perf_counter() - started
    for _ in range(2 * workers):  # drain what the workers prefetched during start-up
        next(it)
    started = time.perf_counter()
    for _ in range(count):
        next(it)
    elapsed = time.perf_counter() - started
    del it, loader
    return {"first_batch_s": first, "batches_per_s": count / elapsed}


# --------------------------------------------------------------------------- scaling worker


def scaling_worker(args) -> None:
    """Runs in a subprocess with N fake devices; prints one JSON line."""
    import jax

    from stn_icnn_jax.train import distributed

    model, variables, config = model_and_variables(args.canvas)
    records = synthetic_records(args.records)
    batches = fixed_batches(records, args.stage, config, args.batch, 2)
    mesh = distributed.make_mesh()
    out = {"devices": jax.device_count()}
    for per_device in (False, True) if jax.device_count() > 1 else (False,):
        out["per_device" if per_device else "global"] = time_steps(
            args.stage, model, variables, batches, mesh, per_device, args.warmup, args.steps)
    print("RESULT " + json.dumps(out), flush=True)


def run_scaling(args, devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    cmd = [sys.executable, __file__, "--scaling-worker", "--stage", args.scaling_stage,
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--canvas", str(args.canvas), "--records", str(args.records)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"scaling run on {devices} devices failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# --------------------------------------------------------------------------- report


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"jax {jax.__version__} ({jax.default_backend()}), {os.cpu_count()} CPUs ({cpu}), "
            f"load average {load:.1f} at the start")


def write_report(path: Path, args, header: str, stage_rows: dict, loader_rows: dict,
                 scaling: dict, seconds: float) -> str:
    b = args.batch
    lines = [
        "# Training throughput (CPU)",
        "",
        f"Model: the base config (paper iCNN preset, channels 8/16/24/32, 3 interlink layers; "
        f"VGG-9 localiser), rough input 128, crops 81, canvas {args.canvas}. Batch {b}; "
        f"Adam per network as in training; global BatchNorm unless noted. Inputs: real "
        f"batches from the grain pipeline over {args.records} synthetic faces "
        f"(`generate_face`, paper augmentation). Step times: {args.warmup} warm-up steps "
        f"(the first includes compilation), then the median of {args.steps} steps, each "
        f"waited for (`block_until_ready`).",
        "",
        f"{header}. The host is shared with other jobs, so absolute times are noisy.",
        "",
        "## Steps per stage and whether the input pipeline keeps up",
        "",
    ]
    rows = []
    for stage in STAGES:
        r = stage_rows[stage]
        lo = loader_rows[stage]
        sps = 1.0 / r["median_s"]
        best = max(lo[0]["batches_per_s"], lo[2]["batches_per_s"])
        rows.append([stage, f"{r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f})",
                     f"{sps:.2f}", f"{b * sps:.1f}", f"{r['first_step_s']:.1f}",
                     f"{lo[0]['batches_per_s']:.2f}", f"{lo[2]['batches_per_s']:.2f}",
                     f"{best / sps:.1f}x"])
    lines += markdown.table(
        ["stage", "step median s (min-max)", "steps/s", "images/s", "first step s (compile)",
         "loader batches/s, 0 workers", "loader batches/s, 2 workers", "loader / step"], rows)
    lines += [
        "",
        "`loader / step`: the faster loader's batches/s over the step's steps/s; above 1x "
        "the input pipeline keeps up (measured separately: during training loader workers "
        "and the step compete for the same cores). Loader rates are sustained rates: the "
        "first batch (worker start-up) and the batches prefetched meanwhile are not timed.",
        "",
        f"## One `{args.scaling_stage}` step on 1, 2, 4 fake CPU devices (global batch {b})",
        "",
    ]
    base = scaling[1]["global"]["median_s"]
    rows = []
    for n in sorted(scaling):
        for mode in ("global", "per_device"):
            if mode not in scaling[n]:
                continue
            r = scaling[n][mode]
            rows.append([n, mode.replace("_", "-"),
                         f"{r['median_s']:.3f} ({r['min_s']:.3f}-{r['max_s']:.3f})",
                         f"{b / r['median_s']:.1f}", f"{r['median_s'] / base:.2f}x time",
                         f"{r['first_step_s']:.1f}"])
    lines += markdown.table(
        ["devices", "BatchNorm", "step median s (min-max)", "images/s", "vs 1 device",
         "first step s (compile)"], rows)
    lines += [
        "",
        "Notes: the fake devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`) are "
        f"all backed by the same {os.cpu_count()} CPU cores, so this table measures the "
        "overhead of splitting the batch, the gradient all-reduce and (per-device BN) "
        "`shard_map`, not a speed-up; on N real accelerators the per-device work is 1/N. "
        "Each device count runs in its own process, after the first table, so its "
        "1-device row can differ from that table's row with the host's load.",
        "",
        f"Whole benchmark: {seconds / 60:.1f} min. Re-run: `python experiments/bench_training.py`.",
        "",
    ]
    return markdown.write(path, lines)


def main(argv=None) -> None:
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # grain's loader workers read absl flags
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--canvas", type=int, default=640)
    parser.add_argument("--records", type=int, default=16, help="synthetic faces")
    parser.add_argument("--loader-batches", type=int, default=8)
    parser.add_argument("--scaling-stage", default="rough", choices=STAGES,
                        help="stage of the device-scaling table (end_to_end: ~3x longer)")
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", default="end_to_end", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scaling_worker:
        scaling_worker(args)
        return

    started = time.time()
    header = machine()
    from stn_icnn_jax.train import distributed

    model, variables, config = model_and_variables(args.canvas)
    records = synthetic_records(args.records)
    mesh = distributed.make_mesh(1)
    stage_rows, loader_rows = {}, {}
    for stage in STAGES:
        batches = fixed_batches(records, stage, config, args.batch, 2)
        stage_rows[stage] = time_steps(stage, model, variables, batches, mesh, False,
                                       args.warmup, args.steps)
        print(f"{stage}: step {stage_rows[stage]}", flush=True)
        loader_rows[stage] = {w: time_loader(records, stage, config, args.batch, w,
                                             args.loader_batches) for w in (0, 2)}
        print(f"{stage}: loader {loader_rows[stage]}", flush=True)
    scaling = {}
    for n in (int(d) for d in args.devices.split(",")):
        scaling[n] = run_scaling(args, n)
        print(f"{n} devices: {scaling[n]}", flush=True)
    print(write_report(args.out, args, header, stage_rows, loader_rows, scaling,
                       time.time() - started))


if __name__ == "__main__":
    main()
