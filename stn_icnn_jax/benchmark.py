"""Timing of jitted steps: the one timing function of ``stn-icnn bench`` and the experiments.

:func:`time_jitted` lowers and compiles a function once (compile time measured on its
own, ``jit(f).lower(...).compile()``), reads its FLOPs from XLA's cost analysis, runs a
few warm-up calls and returns the median of timed calls, each waited for
(``block_until_ready``). :func:`peak_gflops` measures the machine's float32 GEMM rate
(a large ``jnp.dot``) to put step rates in proportion. :func:`train_step_benchmark` and
:func:`parse_benchmark` time our training step of one stage and inference per face on
random inputs of the paper's shapes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from stn_icnn_jax import huge_pages

Preset = Literal["authors", "paper"]
PRESETS: tuple[str, ...] = ("authors", "paper")


@dataclasses.dataclass(frozen=True)
class Timing:
    """One measurement. Times in seconds; ``flops`` per call (XLA's count, 0 if unknown);
    ``compile_s`` = tracing + lowering to StableHLO (``lower_s``) + XLA's compile."""

    median_s: float
    min_s: float
    max_s: float
    compile_s: float
    first_call_s: float
    reps: int
    flops: float
    lower_s: float = 0.0

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.median_s / 1e9 if self.median_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(dataclasses.asdict(self), gflops_per_s=self.gflops_per_s)


def compiled_flops(compiled: Any) -> float:
    """FLOPs of one call of a compiled function (``compiled.cost_analysis()``; 0 if absent)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))


class Prepared:
    """A function compiled for fixed arguments, ready to be timed call by call.

    ``compile_s``: ``jit(fn).lower(*args).compile()`` alone, of which ``lower_s`` the
    tracing and lowering (Python, before XLA); ``flops``: XLA's count per call; :meth:`call` runs it once, waits for the result and returns the seconds taken
    (with ``carry``, the returned state becomes the next call's first argument);
    ``last``: the latest output."""

    def __init__(self, fn: Callable, *args, carry: bool = False, donate_carry: bool = False):
        jitted = jax.jit(fn, donate_argnums=(0,) if (carry and donate_carry) else ())
        started = time.perf_counter()
        lowered = jitted.lower(*args)
        self.lower_s = time.perf_counter() - started
        self._compiled = lowered.compile()
        self.compile_s = time.perf_counter() - started
        self.flops = compiled_flops(self._compiled)
        self._args = list(args)
        if carry and donate_carry:  # the caller's first argument must survive donation
            self._args[0] = jax.tree.map(jnp.copy, self._args[0])
        self._carry = carry
        self.last: Any = None

    def call(self, *args) -> float:
        """Runs once and waits; ``args``: other arguments of the same shapes instead of
        those compiled for (after the carried state, with ``carry``)."""
        started = time.perf_counter()
        if args:
            args = ([self._args[0]] if self._carry else []) + list(args)
        out = self._compiled(*(args or self._args))
        jax.block_until_ready(out)
        if self._carry:
            self._args[0] = out[0]
        self.last = out
        return time.perf_counter() - started


def _timing(prepared: Prepared, first: float, times: list[float]) -> Timing:
    return Timing(median_s=statistics.median(times), min_s=min(times), max_s=max(times),
                  compile_s=prepared.compile_s, first_call_s=first, reps=len(times),
                  flops=prepared.flops, lower_s=prepared.lower_s)


def interleaved(prepared: dict[str, Prepared], reps: int = 5, warmup: int = 1) -> dict[str, Timing]:
    """Time several prepared functions side by side: after ``warmup`` untimed calls of
    each, ``reps`` rounds that call each once in turn, so that a host whose speed drifts
    (other jobs, clocks) slows all of them alike and their ratios stay fair."""
    first = {name: (p.call() if warmup > 0 else float("nan")) for name, p in prepared.items()}
    for _ in range(warmup - 1):
        for p in prepared.values():
            p.call()
    times: dict[str, list[float]] = {name: [] for name in prepared}
    for _ in range(max(1, reps)):
        for name, p in prepared.items():
            times[name].append(p.call())
    return {name: _timing(p, first[name], times[name]) for name, p in prepared.items()}


def time_jitted(fn: Callable, *args, reps: int = 5, warmup: int = 1, carry: bool = False,
                donate_carry: bool = False, return_output: bool = False):
    """Compile ``fn`` for ``args`` and time it.

    Args:
      fn: a pure function of ``args`` (jitted here).
      reps: timed calls; the median is reported.
      warmup: untimed calls after compilation (the first of them is ``first_call_s``).
      carry: ``fn`` returns ``(new_first_arg, ...)`` (a training step's state), fed back
        as the first argument of the next call, as a training loop does.
      donate_carry: donate the first argument's buffers (as the training step does).
      return_output: return ``(timing, last output)`` instead of the timing alone.
    """
    prepared = Prepared(fn, *args, carry=carry, donate_carry=donate_carry)
    timing = interleaved({"fn": prepared}, reps=reps, warmup=warmup)["fn"]
    return (timing, prepared.last) if return_output else timing


def peak_gflops(n: int = 2048, reps: int = 5) -> float:
    """The machine's measured float32 GEMM rate: an (n, n) @ (n, n) ``jnp.dot``, GFLOP/s."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    timing = time_jitted(jnp.dot, a, b, reps=reps, warmup=1)
    return 2.0 * n**3 / timing.median_s / 1e9


def machine_line() -> str:
    """jax version and backend, CPU count, whether malloc's huge pages are on
    (``stn_icnn_jax.huge_pages``), the load average now."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    pages = "on" if huge_pages.active() else "off"
    return (f"jax {jax.__version__} ({jax.default_backend()}), {os.cpu_count()} CPUs, "
            f"malloc huge pages {pages}, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def bench_command(what: Literal["train", "parse"], preset: Preset, batch: int, *,
                  stage: str | None = None, canvas: int = 1024, reps: int = 5,
                  warmup: int = 1, overrides: list[str] = ()) -> list[str]:
    """The ``stn-icnn bench train|parse ... --json`` command line (this Python) that times
    one of our steps in a process of its own: the command's defaults apply there, malloc's
    huge pages included (``stn_icnn_jax.huge_pages``)."""
    command = [sys.executable, "-m", "stn_icnn_jax.cli", "bench", what]
    if what == "train":
        if stage is None:
            raise ValueError("bench_command: 'train' needs a stage")
        command += ["--stage", stage]
    return command + ["--preset", preset, "--batch", str(batch), "--canvas", str(canvas),
                      "--reps", str(reps), "--warmup", str(warmup), "--json", *overrides]


def parse_script_args(parser: argparse.ArgumentParser, argv: list[str] | None, *, reps: int,
                      rounds: int, out: Path) -> argparse.Namespace:
    """The command line of a script that runs :func:`bench_command` processes: adds the
    options they share (``--preset``, ``--batch``, ``--canvas``, ``--reps``, ``--rounds``,
    ``--out``; defaults paper, 8, 640 and the given ones) to the script's own ``parser``,
    parses ``argv``, and keeps ``--config.KEY=VALUE`` items for the bench command in
    ``args.overrides`` (anything else is an error) and the whole command line in
    ``args.argv``."""
    parser.add_argument("--preset", default="paper", choices=PRESETS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--canvas", type=int, default=640)
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--out", default=out, type=Path)
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides = overrides
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def write_report(text: str, out: Path) -> None:
    """Writes a script's report to ``out`` (parents created) and prints it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def run_bench_process(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs a :func:`bench_command` to its end; returns its JSON object plus the child's
    ``minor_faults`` and ``system_s`` (``getrusage``: compile, warm-up and timed calls
    together). Raises RuntimeError with the child's stderr if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {out.returncode}):\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["minor_faults"] = after.ru_minflt - before.ru_minflt
    result["system_s"] = after.ru_stime - before.ru_stime
    return result


# --------------------------------------------------------------------------- our model


def bench_config(preset: Preset, canvas: int = 1024, overrides: list[str] = ()):
    """The training config of a preset: ``paper`` is the base config (3x3 iCNN, VGG-9 L,
    image-frame theta), ``authors`` their code's model (5x5/9x9 tanh iCNN, ResNet-18 L,
    canvas-frame theta, align_corners, parts summed); both with softmax CE.
    ``overrides``: ``--config.a.b=value`` items (e.g. smaller widths)."""
    from stn_icnn_jax.config import base_config, build

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {PRESETS}")
    c = base_config()
    c.data.canvas_size = canvas
    if preset == "authors":
        c.model.icnn_preset = "authors"
        c.model.localizer_backbone = "resnet18"
        c.model.theta_convention = "authors"
        c.model.theta_frame = "canvas"
    for name in c.stages:
        c.stages[name].seg_loss = "ce"
        if preset == "authors":
            c.stages[name].part_reduction = "sum"
    for key, raw in build._pairs(list(overrides)):
        build.apply_override(c, key, raw)
    return c


def random_batch(features: tuple[str, ...], batch: int, rough_size: int, canvas: int,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the pipeline's dtypes and shapes (``input_pipeline.Layout``): an
    image of 3/4 of the canvas centred on it, part centres inside the image."""
    rng = np.random.default_rng(seed)
    side = max(8, (3 * canvas) // 4)
    origin = (canvas - side) // 2
    out = {
        "rough_image": rng.random((batch, rough_size, rough_size, 3), np.float32),
        "rough_label": rng.integers(0, 9, (batch, rough_size, rough_size), np.int32),
        "canvas": rng.integers(0, 256, (batch, canvas, canvas, 3), np.uint8),
        "canvas_label": rng.integers(0, 9, (batch, canvas, canvas), np.int32),
        "image_size": np.full((batch, 2), side, np.int32),
        "image_origin": np.full((batch, 2), origin, np.int32),
        "centers": (side * rng.uniform(0.3, 0.7, (batch, 6, 2))).astype(np.float32),
        "centers_present": np.ones((batch, 6), bool),
    }
    return {k: out[k] for k in features}


def _model(config):
    from stn_icnn_jax.config import build
    from stn_icnn_jax.model import stn_icnn

    model = stn_icnn.STNiCNN(build.model_config(config))
    return model, stn_icnn.init_variables(model, jax.random.key(0))


def prepare_train_step(stage: str, preset: Preset, batch: int, *, canvas: int = 1024,
                       config=None) -> Prepared:
    """One training step of ``stage`` (``train/step.make_train_step``, Adam) compiled for
    a random batch, its state carried from call to call as in a training loop.

    ``config``: a training config to use instead of :func:`bench_config` (e.g. tiny
    widths in tests, or a variant under comparison)."""
    from stn_icnn_jax.config import build
    from stn_icnn_jax.train import stages, step as train

    config = config if config is not None else bench_config(preset, canvas)
    model, variables = _model(config)
    stage_cfg = build.stage_config(config, stage)
    record = stages.get(stage)
    tx = train.make_optimizer(stage_cfg, 1000, variables["params"])
    state = train.init_state(variables["params"], variables["batch_stats"], tx)
    data = random_batch(record.features, batch, model.config.rough_size,
                        config.data.canvas_size)
    return Prepared(train.make_train_step(model, record, stage_cfg, tx), state, data,
                    carry=True, donate_carry=True)


def train_step_benchmark(stage: str, preset: Preset, batch: int, *, canvas: int = 1024,
                         reps: int = 5, warmup: int = 1, config=None) -> dict[str, Any]:
    """Time :func:`prepare_train_step`: ``{"stage", "preset", "batch", **Timing.as_dict()}``."""
    prepared = prepare_train_step(stage, preset, batch, canvas=canvas, config=config)
    timing = interleaved({"step": prepared}, reps=reps, warmup=warmup)["step"]
    return {"stage": stage, "preset": preset, "batch": batch, **timing.as_dict()}


def face_finding_benchmark(reps: int = 5) -> dict[str, Any] | None:
    """OpenCV's frontal-face Haar cascade on a synthetic face photo (per image), or None
    when cv2, its ``CascadeClassifier`` (gone from OpenCV 5's main modules) or the cascade
    file is missing."""
    try:
        import cv2
    except ImportError:
        return None
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        return None
    cascade = cv2.CascadeClassifier(
        os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    if cascade.empty():
        return None
    from stn_icnn_jax.data.synthetic import generate_face

    gray = cv2.cvtColor(np.asarray(generate_face(0)["image"]), cv2.COLOR_RGB2GRAY)
    times = []
    for _ in range(max(1, reps) + 1):
        started = time.perf_counter()
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)
        times.append(time.perf_counter() - started)
    times = times[1:]
    return {"median_s": statistics.median(times), "min_s": min(times),
            "image_size": list(gray.shape), "faces_found": int(len(faces))}


def prepare_parse(preset: Preset, batch: int, *, canvas: int = 1024,
                  config=None) -> dict[str, Prepared]:
    """Inference of ``batch`` random faces compiled: ``whole`` (``model/stn_icnn.parse``:
    stage 1, localiser, crop, parts, paste-back; its labels) and its two halves jitted on
    their own, ``network`` (forward up to the part logits) and ``paste_back`` (softmax,
    fuse, argmax; compiled for, and fed, the network's output)."""
    from stn_icnn_jax.model import stn_icnn

    config = config if config is not None else bench_config(preset, canvas)
    model, variables = _model(config)
    features = ("rough_image", "canvas", "image_size", "image_origin")
    data = random_batch(features, batch, model.config.rough_size, config.data.canvas_size)
    size = (config.data.canvas_size,) * 2

    def whole(v, b):
        return stn_icnn.parse(model, v, b)["labels"]

    def network(v, b):
        out, _ = stn_icnn.forward(model, v, b, train=False)
        return out["part_logits"], out["theta_canvas"]

    def paste_back(logits, theta_canvas):
        probs = tuple(jax.nn.softmax(z, axis=-1) for z in logits)
        return stn_icnn.fuse_labels(probs, theta_canvas, size, model.config)

    net = Prepared(network, variables, data)
    net.call()
    return {"whole": Prepared(whole, variables, data), "network": net,
            "paste_back": Prepared(paste_back, *net.last)}


def parse_benchmark(preset: Preset, batch: int, *, canvas: int = 1024, reps: int = 5,
                    warmup: int = 1, config=None) -> dict[str, Any]:
    """:func:`prepare_parse`'s three functions timed in interleaved rounds (so that the
    halves and the whole see the same host). Times are per batch; ``per_face_s`` =
    median_s / batch. ``face_finding``: OpenCV's Haar cascade per image (None without
    cv2)."""
    timings = interleaved(prepare_parse(preset, batch, canvas=canvas, config=config),
                          reps=reps, warmup=warmup)
    total = timings["whole"]
    return {"preset": preset, "batch": batch, **total.as_dict(),
            "per_face_s": total.median_s / batch,
            "network": timings["network"].as_dict(),
            "paste_back": timings["paste_back"].as_dict(),
            "face_finding": face_finding_benchmark(reps)}
