"""Our jitted steps against the authors' PyTorch models, side by side in one run.

Rows: the stage-1 train step (batch B at 128), the part-model train step (B faces x 6
crops at 81, crops from the canvas included on both sides), the localiser step (K frozen,
L trained), the end-to-end step (all three train, gradients through the sampler), and
inference per face at batch 1 and B (stage 1 + localiser + crop + parts + paste-back),
for the ``authors`` and ``paper`` presets. PyTorch: the authors' networks as restated in
tests/torch_twin.py (imported, not copied), trained as a good PyTorch engineer would
(Adam, ``zero_grad(set_to_none=True)``, no autograd in inference, 2 threads), in the
default memory format and ``channels_last`` (its strongest variant on CPU); the
authors' paste-back (12 full-canvas ``grid_sample``s per face). Ours:
``stn_icnn_jax.benchmark`` (the timing function ``stn-icnn bench`` uses), by default in
a ``stn-icnn bench ... --json`` process per row, as users run it: with malloc's
transparent huge pages, which make our steps 1.14-1.17x faster and PyTorch's slower here
(results/bench_huge_pages.md, bench_frameworks_huge_pages.md), so each side runs in its
own best setting; ``--ours inline`` times ours in this process, on default pages. FLOPs per
step are XLA's count of our step (the same networks on both sides); "of peak" divides
the rate by the float32 GEMM rate measured in the same run (a large ``jnp.dot``).

Usage::

    python experiments/bench_frameworks.py            # batch 32, canvas 1024
    python experiments/bench_frameworks.py --quick    # batch 4, canvas 512, fewer reps
    taskset -c 1 python experiments/bench_frameworks.py --quick --threads 1   # one core each

On a host oversubscribed by other jobs, torch's 2-thread OpenMP kernels slowed down ~7x
against 1 thread (measured here at load 13 on 2 cores); pinning the run to one core with
one torch thread keeps the comparison fair then (the table records the core count).

Writes experiments/results/bench_frameworks.md (``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


from stn_icnn_jax import markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

RESULTS = Path(__file__).resolve().parent / "results" / "bench_frameworks.md"
PRESETS = ("authors", "paper")


# --------------------------------------------------------------------------- PyTorch side


def torch_models(preset: str):
    """(K, part models, L) as the authors' code builds them; the paper preset uses the
    same iCNN statement with 3x3 kernels (its ReLU/extra head BN are not restated; the
    convolutions, which are the time, are the same) and our torch statement of the
    paper's VGG-9 localiser at the widths the ``paper`` benchmark preset builds."""
    from torch import nn as tnn
    from torch_twin import TorchICNNTwin, TorchResNet18Twin, TorchStage2Twin, TorchVGG9Twin

    if preset == "authors":
        return TorchICNNTwin(9), TorchStage2Twin(), TorchResNet18Twin()
    parts = TorchStage2Twin()
    parts.model = tnn.ModuleList(TorchICNNTwin(c, k=3, k_last=3) for c in (2, 2, 2, 4))
    return TorchICNNTwin(9, k=3, k_last=3), parts, TorchVGG9Twin()


class TorchPipeline:
    """The authors' pipeline steps on random inputs of the paper's shapes."""

    def __init__(self, preset: str, batch: int, canvas: int, channels_last: bool, seed=0):
        import torch

        from stn_icnn_jax.taxonomy import NUM_CLASSES, PART_CLASSES

        self.torch = torch
        torch.manual_seed(seed)
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.rough, self.parts, self.loc = (
            m.to(memory_format=self.fmt) if m is not None else None for m in torch_models(preset))
        g = torch.Generator().manual_seed(seed)
        b, c = batch, canvas
        self.x = torch.rand(b, 3, 128, 128, generator=g).contiguous(memory_format=self.fmt)
        self.y = torch.randint(0, NUM_CLASSES, (b, 128, 128), generator=g)
        self.canvas = torch.rand(b, 3, c, c, generator=g).contiguous(memory_format=self.fmt)
        self.canvas_label = torch.randint(0, NUM_CLASSES, (b, 1, c, c), generator=g).float()
        theta = torch.zeros(b, 6, 2, 3)
        theta[:, :, 0, 0] = theta[:, :, 1, 1] = 80.0 / (c - 1)
        theta[:, :, :, 2] = torch.rand(b, 6, 2, generator=g) * 0.6 - 0.3
        self.theta = theta
        self.lut = torch.zeros(6, NUM_CLASSES, dtype=torch.long)
        for p, classes in enumerate(PART_CLASSES):
            for j, cls in enumerate(classes):
                self.lut[p, cls] = j + 1
        self.batch = b

    # pieces
    def crop(self, theta, image, mode="bilinear"):
        F = self.torch.nn.functional
        out = []
        for i in range(6):
            grid = F.affine_grid(theta[:, i], [self.batch, image.shape[1], 81, 81],
                                 align_corners=True)
            out.append(F.grid_sample(image, grid, mode=mode, align_corners=True))
        return out

    def part_loss(self, theta):
        F = self.torch.nn.functional
        patches = self.torch.stack(self.crop(theta, self.canvas), 1)
        labels = self.crop(theta.detach(), self.canvas_label, mode="nearest")
        logits = self.parts(patches)
        return sum(F.cross_entropy(z, self.lut[p][labels[p][:, 0].long()])
                   for p, z in enumerate(logits))

    def paste(self, probs, theta):
        """The authors' paste-back: 12 full-canvas nearest grid_samples per face; fuse."""
        torch, F = self.torch, self.torch.nn.functional
        b, c = self.batch, self.canvas.shape[-1]
        m = torch.zeros(b, 6, 3, 3)
        m[:, :, :2] = theta
        m[:, :, 2, 2] = 1
        inv = torch.inverse(m)[:, :, :2]
        bg = torch.ones(b, 1, c, c)
        fg = []
        for i in range(6):
            grid = F.affine_grid(inv[:, i], [b, 1, c, c], align_corners=True)
            fg.append(F.grid_sample(probs[i][:, 1:], grid, mode="nearest", align_corners=True))
            bg = bg * (1 - F.grid_sample(1 - probs[i][:, :1], grid, mode="nearest",
                                         align_corners=True))
        return torch.cat([bg] + fg, 1).argmax(1)

    # steps
    def step_fn(self, stage: str):
        torch, F = self.torch, self.torch.nn.functional
        nets = {"rough": [self.rough], "parts": [self.parts], "localizer": [self.loc],
                "end_to_end": [self.rough, self.loc, self.parts]}[stage]
        opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=1e-4)
        for n in (self.rough, self.parts, self.loc):
            if n is not None:
                n.train()

        def loss():
            if stage == "rough":
                return F.cross_entropy(self.rough(self.x), self.y)
            if stage == "parts":
                return self.part_loss(self.theta)
            if stage == "localizer":
                with torch.no_grad():
                    prob = F.softmax(self.rough(self.x), 1)
                return F.smooth_l1_loss(self.loc(prob), self.theta)
            theta = self.loc(F.softmax(self.rough(self.x), 1))
            return self.part_loss(theta)

        def step():
            opt.zero_grad(set_to_none=True)
            value = loss()
            value.backward()
            opt.step()
            return value.detach().item()

        return step

    def parse_fn(self):
        torch, F = self.torch, self.torch.nn.functional
        for n in (self.rough, self.parts, self.loc):
            n.eval()

        def parse():
            with torch.inference_mode():
                theta = self.loc(F.softmax(self.rough(self.x), 1))
                patches = torch.stack(self.crop(theta, self.canvas), 1)
                probs = [F.softmax(z, 1) for z in self.parts(patches)]
                return self.paste(probs, theta)

        return parse


def time_torch(fn, reps: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def time_ours(args, preset: str, what: str, batch: int) -> dict:
    """Our step ``what`` (a stage or ``parse``): by default in a ``stn-icnn bench ...
    --json`` process of its own, as users run it (malloc's huge pages on where the
    platform has them); with ``--ours inline`` in this process (glibc's default pages,
    like the PyTorch side)."""
    from stn_icnn_jax import benchmark

    if args.ours == "process":
        kind = "parse" if what == "parse" else "train"
        command = benchmark.bench_command(kind, preset, batch,
                                          stage=None if kind == "parse" else what,
                                          canvas=args.canvas, reps=args.reps,
                                          warmup=args.warmup)
        result = benchmark.run_bench_process(command)
    elif what == "parse":
        result = benchmark.parse_benchmark(preset, batch, canvas=args.canvas, reps=args.reps,
                                           warmup=args.warmup)
    else:
        result = benchmark.train_step_benchmark(what, preset, batch, canvas=args.canvas,
                                                reps=args.reps, warmup=args.warmup)
    result.setdefault("machine", benchmark.machine_line())
    result["huge_pages"] = "malloc huge pages on" in result["machine"]
    return result


def torch_peak_gflops(n: int, reps: int = 3) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    t = time_torch(lambda: a @ b, reps, 1)["median_s"]
    return 2.0 * n**3 / t / 1e9


# --------------------------------------------------------------------------- the run


def uptime() -> str:
    load = os.getloadavg()
    return f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def run(args, on_row=None) -> dict:
    import torch

    from stn_icnn_jax import benchmark

    torch.set_num_threads(args.threads)
    rows = []
    peak = benchmark.peak_gflops(args.peak_n)
    torch_peak = torch_peak_gflops(args.peak_n)
    print(f"peak: jnp.dot {peak:.0f} GFLOP/s, torch {torch_peak:.0f} GFLOP/s; load {uptime()}",
          flush=True)
    # most asked-for rows first; the table is rewritten after every row
    work = [(p, s) for s in ("rough", "parts") for p in PRESETS]
    work += [("authors", f"parse@{b}") for b in (1, args.batch)]
    work += [(p, s) for s in ("localizer", "end_to_end") for p in PRESETS]
    work += [("paper", f"parse@{b}") for b in (1, args.batch)]
    if args.only:
        wanted = {tuple(item.split(":", 1)) for item in args.only.split(",")}
        work = [(p, w) for p, w in work if (p, w.split("@")[0]) in wanted]
    result = {"peak": peak, "torch_peak": torch_peak, "rows": rows, "todo": len(work)}
    for preset, what in work:
        row = {"preset": preset, "what": what, "load_before": uptime()}
        is_parse = what.startswith("parse")
        batch = int(what.split("@")[1]) if is_parse else args.batch
        for variant, cl in (("torch", False), ("torch_cl", True)):
            pipe = TorchPipeline(preset, batch, args.canvas, cl)
            fn = pipe.parse_fn() if is_parse else pipe.step_fn(what)
            row[variant] = time_torch(fn, args.reps, args.warmup)
            del pipe, fn
        row["ours"] = time_ours(args, preset, what.split("@")[0], batch)
        row["batch"] = batch
        row["load_after"] = uptime()
        print({k: v for k, v in row.items()}, flush=True)
        rows.append(row)
        if on_row is not None:
            on_row(result)
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}" if seconds >= 0.01 else f"{seconds * 1e3:.1f}"


def where_each_side_ran(args, result: dict) -> str:
    """One sentence: the process and the malloc page setting of each side."""
    from stn_icnn_jax import huge_pages

    parent = "on" if huge_pages.active() else "off"
    on = sum(bool(row["ours"].get("huge_pages")) for row in result["rows"])
    if args.ours == "process":
        ours = (f"Ours: each row in a `stn-icnn bench ... --json` process of its own, as users "
                f"run it (malloc huge pages on in {on} of {len(result['rows'])} rows)")
    else:
        ours = f"Ours: inline in this process (malloc huge pages {parent})"
    return (f"{ours}. PyTorch: in this process, malloc huge pages {parent}; each side in "
            "its own best setting (under `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` PyTorch's "
            "steps were slower here: bench_frameworks_huge_pages.md).")


def write_report(path: Path, args, result: dict, header: str, seconds: float) -> str:
    peak = result["peak"]
    mode = (f"`--quick`: batch {args.batch}, canvas {args.canvas}, {args.warmup} warm-up + "
            f"median of {args.reps} timed calls" if args.quick else
            f"batch {args.batch}, canvas {args.canvas}, {args.warmup} warm-up + median of "
            f"{args.reps} timed calls")
    lines = [
        "# Frameworks side by side: our jitted steps vs the authors' PyTorch models (CPU)",
        "",
        f"{header}. Mode: {mode}. Measured float32 GEMM peak in this run: jnp.dot "
        f"{peak:.0f} GFLOP/s, torch {result['torch_peak']:.0f} GFLOP/s ({args.peak_n}x"
        f"{args.peak_n}). Torch {args.threads} threads. The host is shared with other jobs "
        "(the load average before and after each row is in the last column): compare ratios "
        "within a row, not absolute times across runs.",
        "",
        "Times in ms per step (train rows) or per batch (parse rows); `x` = PyTorch's best "
        "variant time / ours (above 1: we are faster). GFLOP: XLA's count of our step; "
        "`% peak` = that work at our median over the measured jnp.dot peak.",
        "",
        where_each_side_ran(args, result),
        "",
    ]
    steps = []
    for row in result["rows"]:
        ours = row["ours"]
        t = row.get("torch", {}).get("median_s")
        tcl = row.get("torch_cl", {}).get("median_s")
        best = min(x for x in (t, tcl) if x is not None) if t is not None else None
        ratio = f"{best / ours['median_s']:.2f}x" if best else "—"
        per_face = ""
        if row["what"].startswith("parse"):
            b = row["batch"]
            per_face = f"{ms(ours['median_s'] / b)} / " + (ms(best / b) if best else "—")
        steps.append([
            row["preset"], row["what"].split("@")[0], row["batch"], ms(t) if t else "—",
            ms(tcl) if tcl else "—", ms(ours["median_s"]), ratio, f"{ours['flops'] / 1e9:.2f}",
            f"{100 * ours['gflops_per_s'] / peak:.1f}%", f"{ours['compile_s']:.1f}", per_face,
            f"{row['load_before']} -> {row['load_after']}"])
    lines += markdown.table(
        ["preset", "step", "batch", "PyTorch", "PyTorch channels_last", "ours",
         "ours vs best torch", "GFLOP/step", "% peak (ours)", "our compile s",
         "ms per face (ours / torch best)", "load"], steps)
    lines += ["", "Our parse rows split into the network (stage 1 + L + crop + parts) and the "
              "paste-back (softmax, fuse, argmax), each jitted and timed alone (ms per batch):", ""]
    parse_rows = []
    for row in result["rows"]:
        if row["what"].startswith("parse"):
            o = row["ours"]
            face = o["face_finding"]
            parse_rows.append([
                row["preset"], row["batch"], ms(o["network"]["median_s"]),
                ms(o["paste_back"]["median_s"]),
                f"{ms(face['median_s'])} per image" if face else
                "not available in this OpenCV build"])
    lines += markdown.table(
        ["preset", "batch", "network", "paste-back", "face finding (OpenCV Haar)"], parse_rows)
    if len(result["rows"]) < result["todo"]:
        lines += ["", f"**Partial table**: {len(result['rows'])} of {result['todo']} rows "
                  "measured so far (the run writes the table after every row)."]
    lines += [
        "",
        "Notes: `paper` rows' PyTorch side is the authors' iCNN statement with 3x3 kernels "
        "and our torch statement of the paper's VGG-9 localiser (tests/torch_twin.py, "
        "default widths 32-256 on both sides). Both sides crop the parts from "
        "the canvas inside the parts and end-to-end steps (ours: `sampler.crop`; torch: "
        "`affine_grid` + `grid_sample` per part, as the authors). Our first-call compile "
        "time is `jit(step).lower(...).compile()` alone.",
        "",
        "`% peak` uses the jnp.dot rate measured once at the start; on a host whose load "
        "changes during the run it can exceed 100%.",
        "",
        f"Run time so far: {seconds / 60:.1f} min. Re-run: `python experiments/bench_frameworks.py"
        f"{' --quick' if args.quick else ''} --threads {args.threads}"
        f"{f' --batch {args.batch}' if args.batch_given else ''}"
        f"{f' --only {args.only}' if args.only else ''}"
        f"{' --ours inline' if args.ours == 'inline' else ''}` (pinned: `taskset -c 1 ...`).",
        "",
    ]
    return markdown.write(path, lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="batch 4, canvas 512, 1 warm-up + 2 reps, 2048 peak matmul")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--canvas", type=int)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--peak_n", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ours", choices=("process", "inline"), default="process",
                        help="time our steps in `stn-icnn bench --json` processes of their "
                             "own, as users run them (default; malloc huge pages on where "
                             "supported), or inline in this process (default pages, like "
                             "PyTorch here)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", help="rows to run, e.g. paper:rough,authors:parts "
                                       "(step names: rough, parts, localizer, end_to_end, parse)")
    args = parser.parse_args(argv)
    args.batch_given = args.batch is not None
    defaults = (dict(batch=4, canvas=512, reps=2, warmup=1, peak_n=2048) if args.quick else
                dict(batch=32, canvas=1024, reps=3, warmup=1, peak_n=4096))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from stn_icnn_jax import benchmark

    started = time.time()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    header = (benchmark.machine_line() + f" at the start; this process may use {cores} "
              f"core(s) (taskset)")
    result = run(args, lambda r: write_report(args.out, args, r, header, time.time() - started))
    print(write_report(args.out, args, result, header, time.time() - started))


if __name__ == "__main__":
    main()
