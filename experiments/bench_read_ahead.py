"""Training steps on real batches of the input pipeline, with the next batch built in
turn (after each step) or read ahead in a thread while the step runs
(``data/read_ahead.ReadAhead``, what the training loop does), interleaved in one run.

For each stage: the training step of the config (compiled once), fed ``--steps`` batches
of the config's training split per round; rounds alternate the two ways. Also the input
pipeline alone (seconds per batch) and the step alone (one batch repeated). Prints and
writes a Markdown table.

Usage::

    python experiments/bench_read_ahead.py --config experiments/configs/synthetic.py \\
        --stage rough --stage localizer --stage parts --stage end_to_end
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

from stn_icnn_jax import benchmark, markdown
from stn_icnn_jax.config import build, load_config
from stn_icnn_jax.data import input_pipeline, read_ahead
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.train import stages


def seconds_per_step(prepared: benchmark.Prepared, batches, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        prepared.call(next(batches))
    return (time.perf_counter() - started) / steps


def stage_row(config, sources, stage: str, steps: int, rounds: int,
              niceness: list[int]) -> list:
    batch_size = config.train.batch_size
    prepared = benchmark.prepare_train_step(stage, config.model.icnn_preset, batch_size,
                                            config=config)
    features = stages.get(stage).features

    def loader(seed: int):
        return iter(input_pipeline.make_loader(
            sources["train"], features,
            build.input_config(config, batch_size, training=True, seed=seed), num_epochs=None))

    one = next(loader(0))
    prepared.call(one)  # warm-up
    ways = ["in turn"] + [f"read ahead, nice {n}" for n in niceness]
    times: dict[str, list[float]] = {way: [] for way in ways + ["data", "step"]}
    for r in range(rounds):
        times["in turn"].append(seconds_per_step(prepared, loader(r + 1), steps))
        for n in niceness:
            with read_ahead.ReadAhead(loader(r + 1), niceness=n) as reader:
                times[f"read ahead, nice {n}"].append(seconds_per_step(prepared, reader, steps))
        batches = loader(r + 1)
        started = time.perf_counter()
        for _ in range(steps):
            next(batches)
        times["data"].append((time.perf_counter() - started) / steps)
        times["step"].append(statistics.median(prepared.call(one) for _ in range(steps)))
        print(f"{stage} round {r + 1}: " + ", ".join(
            f"{way} {t[-1]:.3f} s" for way, t in times.items()), flush=True)
    median = {way: statistics.median(t) for way, t in times.items()}
    return [stage, batch_size, f"{median['data'] * 1e3:.0f}", f"{median['step'] * 1e3:.0f}"] + [
        f"{median[way] * 1e3:.0f} ({median['in turn'] / median[way]:.2f}x)" for way in ways]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/configs/synthetic.py")
    parser.add_argument("--stage", action="append", default=[])
    parser.add_argument("--steps", type=int, default=20, help="steps per round and way")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--niceness", type=int, action="append", default=[],
                        help="read-ahead thread niceness to try (repeat; default 0 and 19)")
    parser.add_argument("--out", default="experiments/results/bench_read_ahead.md")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    sources = load_sources(config, show_progress=False)
    niceness = args.niceness or [0, 19]
    rows = [stage_row(config, sources, stage, args.steps, args.rounds, niceness)
            for stage in args.stage or list(stages.STAGE_NAMES)]
    lines = [f"# Training steps with the input pipeline in turn vs read ahead ({args.config})",
             "", f"{benchmark.machine_line()} at the start; jax {jax.__version__}. Medians of "
             f"{args.rounds} rounds of {args.steps} steps per way (each round runs every way "
             "on the same batches). `data alone`: the input pipeline without steps; `step "
             "alone`: one batch repeated; the other columns: ms per training step with its "
             "batch, and in brackets in turn / that (above 1: faster than in turn). `nice "
             "N`: the reading thread's scheduling niceness.", ""]
    lines += markdown.table(["stage", "batch", "data alone (ms)", "step alone (ms)", "in turn"]
                            + [f"read ahead, nice {n}" for n in niceness], rows)
    markdown.report(lines, "experiments/bench_read_ahead.py", argv, args.out)


if __name__ == "__main__":
    main()
