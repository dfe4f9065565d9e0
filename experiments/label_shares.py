"""Share of each class's pixels in the 128x128 maps K is trained on (the labels resized as
the input pipeline does), per split of a built dataset: how imbalanced K's loss is.

    python experiments/label_shares.py [--data synthetic_faces/small] [--split validation]

With ``--workdir W --config C [--config.a.b=v ...]`` (a run's rough stage): for each
logged training step of the first ``--epochs`` epochs, the background share of that
step's batch (the same augmented batch, rebuilt from the run's seeds) beside the
run's logged training pixel accuracy. Equal numbers mean K predicted background at every
pixel, in training mode (batch statistics), so a low validation F1 is no BatchNorm
train/eval mismatch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from stn_icnn_jax.config import build, load_config
from stn_icnn_jax.data import input_pipeline
from stn_icnn_jax.train import loop, run
from stn_icnn_jax.train.stages import STAGES
from stn_icnn_jax.taxonomy import CLASS_NAMES


def label_counts(source, rough_size: int = 128) -> np.ndarray:
    """Pixel count per class (9,) over all records' resized label maps."""
    layout = input_pipeline.Layout(input_pipeline.InputConfig(rough_size=rough_size, canvas_size=1024),
                                   ("rough_label",))
    counts = np.zeros(len(CLASS_NAMES), np.int64)
    for i in range(len(source)):
        label = layout.map(dict(source[i]))["rough_label"]
        counts += np.bincount(label.ravel(), minlength=len(CLASS_NAMES))
    return counts


def background_vs_accuracy(config, workdir: Path, epochs: int) -> list[str]:
    """Table rows: step, background share of its batch, logged training pixel accuracy."""
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["pixel_accuracy"] for r in records
              if r.get("kind") == "train" and r["stage"] == "rough"}
    stage = STAGES["rough"]
    source = run.load_sources(config, show_progress=False)["train"]
    batch_size = config.train.batch_size
    rows, step = ["| step | background share of the batch | K's training pixel accuracy |",
                  "|---|---|---|"], 0
    for epoch in range(epochs):
        loader = input_pipeline.make_loader(
            source, ("rough_label",),
            build.input_config(config, batch_size, training=True,
                               seed=loop._epoch_seed(config, stage, epoch)), num_epochs=1)
        for batch in loader:
            step += 1
            if step in logged:
                share = float(np.mean(batch["rough_label"] == 0))
                rows.append(f"| {step} | {share:.5f} | {logged[step]:.5f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic_faces/small")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--config")
    parser.add_argument("--epochs", type=int, default=1)
    args, overrides = parser.parse_known_args()
    if args.workdir:
        config = load_config(args.config, overrides)
        print("\n".join(background_vs_accuracy(config, args.workdir, args.epochs)))
        return
    counts = label_counts(tfds.data_source(args.data, split=args.split))
    share = counts / counts.sum()
    print(f"| class | share of the 128x128 pixels ({args.data}, {args.split}) |\n|---|---|")
    for name, s in zip(CLASS_NAMES, share):
        print(f"| {name} | {s:.4f} |")
    print(f"| all parts | {1 - share[0]:.4f} |")


if __name__ == "__main__":
    main()
