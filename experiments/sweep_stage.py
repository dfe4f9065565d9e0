"""Short single-stage runs under different overrides, tabulated side by side.

Each variant is one ``stn-icnn train`` run of one stage alone
(``--config.stage_order=<stage>``) in its own work directory, with the variant's
``--config.key=value`` overrides; the table lists every run's validation F1 per class
after its last epoch (or the theta loss for the localiser) and its step time. Runs that
finished earlier are not repeated (the CLI resumes / skips them), so the table can be
rebuilt from the work directories alone. Example (the synthetic parts sweep in
experiments/results/synthetic_tuning.md):

    python experiments/sweep_stage.py --config experiments/configs/synthetic.py \\
        --stage parts --workdir runs/sweep_parts --out experiments/results/sweep_parts.md \\
        --variant "bce_lr0.0008: seg_loss=bce" \\
        --variant "ce_lr0.0008: seg_loss=ce" \\
        --common stages.parts.epochs=1

Variant overrides without a dot are stage keys (``seg_loss=ce`` is
``stages.<stage>.seg_loss=ce``); ``lr=X`` sets the stage's learning rate of its network.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from stn_icnn_jax import markdown
from stn_icnn_jax.taxonomy import F1_SETS

CLASSES = tuple(F1_SETS)  # the paper's Table 2 columns
SINGLE_NETWORK_STAGES = ("rough", "localizer", "parts")  # each trains the network of its name


def parse_variant(text: str, stage: str) -> tuple[str, list[str]]:
    """``"name: k=v k2=v2"`` -> ``(name, ["--config.<key>=v", ...])``."""
    name, _, rest = text.partition(":")
    if not name.strip() or not rest.strip():
        raise SystemExit(f"bad --variant {text!r}: use 'name: key=value [key=value ...]'")
    overrides = []
    for item in rest.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"bad override {item!r} in --variant {text!r}: use key=value")
        if key == "lr":
            if stage not in SINGLE_NETWORK_STAGES:
                raise SystemExit(f"lr= is ambiguous for stage {stage}; give the full key")
            key = f"stages.{stage}.learning_rates.{stage}"
        elif "." not in key:
            key = f"stages.{stage}.{key}"
        overrides.append(f"--config.{key}={value}")
    return name.strip(), overrides


def summarise(workdir: Path) -> dict | None:
    """The last validation record and the stage's step time of a finished run."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return None
    last, seconds = None, None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "validation":
            last = record
        elif record["kind"] == "time" and isinstance(record.get("seconds"), dict):
            seconds = record["seconds"]
    if last is None:
        return None
    return {"validation": last, "seconds": seconds}


def table(rows: list[tuple[str, str, dict | None]]) -> str:
    cells = []
    for name, overrides, summary in rows:
        if summary is None:
            cells.append([name, overrides, "(not finished)", *[""] * (len(CLASSES) + 1)])
            continue
        v = summary["validation"]
        if "f1" in v:
            scores = [f"{v['f1'][c]:.3f}" for c in CLASSES]
        else:
            scores = ["-"] * (len(CLASSES) - 1) + [f"theta {v['theta_loss']:.4g}"]
        sec = summary["seconds"]
        per_step = f"{sec['steps'] / max(1, v['step'] - 1):.2f}" if sec else "-"
        cells.append([name, overrides, v["step"], *scores, per_step])
    header = ["variant", "overrides", "steps", *CLASSES, "step s/it"]
    return "\n".join(markdown.table(header, cells)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--stage", required=True, choices=("rough", "localizer", "parts"))
    parser.add_argument("--workdir", required=True, help="one sub-directory per variant")
    parser.add_argument("--variant", action="append", required=True,
                        help="'name: key=value ...' (repeatable)")
    parser.add_argument("--common", nargs="*", default=[],
                        help="overrides for every variant (key=value)")
    parser.add_argument("--out", help="write the markdown table here too")
    parser.add_argument("--table_only", action="store_true",
                        help="do not train; tabulate the finished runs")
    args = parser.parse_args()
    root = Path(args.workdir)
    common = parse_variant("common: " + " ".join(args.common), args.stage)[1] if args.common else []
    rows = []
    for text in args.variant:
        name, overrides = parse_variant(text, args.stage)
        workdir = root / name
        if not args.table_only:
            command = ["stn-icnn", "train", "--config", args.config, "--workdir", str(workdir),
                       "--no_progress", f"--config.stage_order={args.stage}", *common, *overrides]
            print("$", " ".join(command), flush=True)
            subprocess.run(command, check=True)
        shown = " ".join(o.removeprefix("--config.") for o in overrides)
        rows.append((name, shown, summarise(workdir)))
    text = table(rows)
    if args.common:
        text = f"Common overrides: {' '.join(c.removeprefix('--config.') for c in common)}\n\n" + text
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
