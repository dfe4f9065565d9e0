"""Does photometric augmentation help the part models on real photos? One table.

The same K and L (after the localiser stage of --run, the run trained with
``data.photometric = "default"``) feed two sets of part models: those pre-trained in --run
(photometric on) and those of --twin, a parts-only run with the same config, seed and
data order but ``data.photometric = "none"`` (its geometric augmentation draws are
identical: the photometric draws come after them). Each is scored on the real-photo set
(``real_photos.score_croppers``: hand-label crops and L's crops, the frames' resolution)
and on the synthetic test split of --run's dataset (ground-truth and L's crops). Usage:

    stn-icnn train --config experiments/configs/default.py --workdir TWIN --stage parts \\
        --config.data.photometric=none
    python experiments/ablate_photometric.py --run RUN --twin TWIN \\
        [--out experiments/results/photometric_ablation.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stn_icnn_jax import evaluation, markdown, weights
from stn_icnn_jax.metrics import format_f1_rows
from stn_icnn_jax.photo import real_photos


def part_models_scores(k_and_l: evaluation.TrainedRun, parts: evaluation.TrainedRun,
                       split: str) -> dict:
    """``{measure: {set: F1}}`` of ``parts``' part models behind ``k_and_l``'s K and L."""
    variables = evaluation.with_part_models_of(k_and_l, parts)
    config = k_and_l.config
    combined = weights.Weights(variables=variables, config=config, record={})
    photos = real_photos.score_croppers(combined)
    mesh = evaluation.mesh_for(config)
    source = evaluation.split_source(config, split)
    synthetic = {crops: evaluation.score(k_and_l.model, variables, config, source, crops,
                                         mesh)["f1"]
                 for crops in ("ground_truth", "predicted")}
    return {"real photos, hand-label crops": photos["crops"]["ground_truth"],
            "real photos, L's crops": photos["crops"]["predicted"],
            f"synthetic {split}, ground-truth crops": synthetic["ground_truth"],
            f"synthetic {split}, L's crops": synthetic["predicted"]}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path,
                        help="run trained with photometric augmentation (K, L, parts)")
    parser.add_argument("--twin", required=True, type=Path,
                        help="parts-only run without it (same config and seed otherwise)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="experiments/results/photometric_ablation.md")
    args = parser.parse_args(argv)

    run = evaluation.load_run(args.run, until="parts")
    twin = evaluation.load_run(args.twin, until="parts")
    for name, trained in (("--run", run), ("--twin", twin)):
        if trained.records.get("parts") is None:
            raise SystemExit(f"{name} {trained.workdir}: its parts stage was never trained")
    modes = {"on": run.config.data.photometric, "off": twin.config.data.photometric}
    scores = {mode: part_models_scores(run, trained, args.split)
              for mode, trained in (("on", run), ("off", twin))}
    lines = ["# Photometric augmentation and the part models", "",
             f"K and L from `{args.run.name}` (seed {run.config.seed}, synthetic "
             f"`{run.config.data.builder_config}` split); the best part models (validation "
             f"F1) pre-trained with `data.photometric = \"{modes['on']}\"` (that run) "
             f"and `\"{modes['off']}\"` (`{args.twin.name}`), otherwise the same run.", ""]
    for measure in scores["on"]:
        lines += [f"## {measure}", "",
                  format_f1_rows({f"photometric {m} ({modes[m]})": scores[m][measure]
                                  for m in ("on", "off")}, "part models"), ""]
    return markdown.report(lines, "experiments/ablate_photometric.py", argv, args.out)


if __name__ == "__main__":
    main()
