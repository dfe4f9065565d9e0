"""Train steps with and without malloc's transparent huge pages, alternated in one run.

Each measurement is one ``stn-icnn bench train --json`` process: with the command's
default (it re-executes itself with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``,
``stn_icnn_jax.huge_pages``) and with ``STN_ICNN_HUGE_PAGES=0`` (glibc's default 4 KiB
pages). For every stage the two settings run back to back, ``--rounds`` times, so that a
host whose speed drifts slows both alike. Besides the step's median time the table gives
each process's minor page faults and system CPU seconds (``getrusage`` of the child:
compile, warm-up and timed calls together).

Usage::

    python experiments/bench_huge_pages.py            # paper preset, batch 8, canvas 640
    python experiments/bench_huge_pages.py --stage rough --rounds 1
    python experiments/bench_huge_pages.py --stage rough --config.model.icnn_channels=4,8

Writes experiments/results/bench_huge_pages.md (``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from stn_icnn_jax import benchmark, huge_pages, markdown

RESULTS = Path(__file__).resolve().parent / "results" / "bench_huge_pages.md"
SETTINGS = ("off", "on")


def environment(setting: str) -> dict[str, str]:
    """This process's environment without any huge-page choice, plus the opt-out for
    ``off`` (``on`` leaves it to the command's re-execution)."""
    env = dict(os.environ)
    env.pop(huge_pages.OPT_OUT, None)
    tunables, _ = huge_pages.split_tunables(env)
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(tunables)
    if setting == "off":
        env[huge_pages.OPT_OUT] = "0"
    return env


def measure(setting: str, stage: str, args) -> dict:
    """One ``stn-icnn bench train`` process: its JSON, plus its page faults and system
    seconds. Raises if the process did not run with the setting asked for."""
    command = benchmark.bench_command("train", args.preset, args.batch, stage=stage,
                                      canvas=args.canvas, reps=args.reps,
                                      overrides=args.overrides)
    try:
        result = benchmark.run_bench_process(command, environment(setting))
    except RuntimeError as error:
        raise SystemExit(str(error)) from None
    if f"malloc huge pages {setting}" not in result["machine"]:
        raise SystemExit(f"asked for huge pages {setting}, the process says: "
                         f"{result['machine']}")
    return result


def report(rows: dict, args, header: str) -> str:
    lines = [
        "# Train steps with and without malloc's transparent huge pages",
        "",
        f"{header}. Preset {args.preset}, batch {args.batch}, canvas {args.canvas}, "
        f"median of {args.reps} timed calls per process, {args.rounds} round(s) of "
        "off/on back to back per stage.",
        "",
        "`off`: glibc's default pages (`STN_ICNN_HUGE_PAGES=0`); `on`: the command's "
        "default, `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`. Step times in seconds (one "
        "per round); faults and system seconds are the whole process's (compile "
        "included), median over rounds.",
        "",
    ]
    header_row = ["stage", "off: median s", "on: median s", "off / on", "off: minor faults",
                  "on: minor faults", "off: system s", "on: system s"]
    table = []
    for stage, by_setting in rows.items():
        times = {s: [r["median_s"] for r in by_setting[s]] for s in SETTINGS}
        med = {s: statistics.median(times[s]) for s in SETTINGS}
        faults = {s: statistics.median(r["minor_faults"] for r in by_setting[s])
                  for s in SETTINGS}
        system = {s: statistics.median(r["system_s"] for r in by_setting[s]) for s in SETTINGS}
        table.append([stage, " / ".join(f"{t:.3f}" for t in times["off"]),
                      " / ".join(f"{t:.3f}" for t in times["on"]),
                      f"{med['off'] / med['on']:.2f}x", f"{faults['off']:,.0f}",
                      f"{faults['on']:,.0f}", f"{system['off']:.1f}", f"{system['on']:.1f}"])
    lines += markdown.table(header_row, table)
    command = " ".join(["python experiments/bench_huge_pages.py", *args.argv])
    lines += ["", f"Re-run: `{command}`", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", action="append",
                        choices=("rough", "localizer", "parts", "end_to_end"))
    args = benchmark.parse_script_args(parser, argv, reps=5, rounds=2, out=RESULTS)
    stages = args.stage or ["rough", "parts", "end_to_end"]
    load = os.getloadavg()
    header = (f"{os.cpu_count()} CPUs, glibc {'.'.join(map(str, huge_pages.glibc_version() or ()))}"
              f", transparent huge pages `{huge_pages.thp_mode()}`, load average "
              f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start")
    rows = {stage: {s: [] for s in SETTINGS} for stage in stages}
    started = time.time()
    for round_ in range(args.rounds):
        for stage in stages:
            for setting in SETTINGS:
                result = measure(setting, stage, args)
                rows[stage][setting].append(result)
                print(f"round {round_ + 1} {stage} {setting}: {result['median_s']:.3f} s, "
                      f"{result['minor_faults']:,} faults, {result['system_s']:.1f} s system",
                      flush=True)
    text = report(rows, args, header + f"; {(time.time() - started) / 60:.1f} min in all")
    benchmark.write_report(text, args.out)


if __name__ == "__main__":
    main()
