"""Does photometric augmentation help on real photos? K and the part models, with and
without it, side by side.

--run is a whole training run (K, L, part models); --twin a run of the same config and
seed with the other ``data.photometric`` setting that trained the part models (and, if
given, K) only. The geometric augmentation is the same in both (the photometric draws
come after the scheme's), so the two differ by the photometric operations alone.

- Part models: the best part models of each run behind --run's K and L, scored on the
  real-photo set (``real_photos.score_croppers``: hand-label crops and L's crops, at the
  framed faces' resolution) and on the synthetic test split (ground-truth and L's crops).
- K (if the twin trained it): each run's K on its own map, on the real photos and on the
  synthetic test split.

    stn-icnn train --config experiments/configs/synthetic.py --workdir TWIN \\
        --config.data.photometric=default --stage rough --stage parts
    python experiments/ablate_photometric.py --run RUN --twin TWIN \\
        [--out experiments/results/photometric_ablation.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stn_icnn_jax import evaluation, markdown, weights
from stn_icnn_jax.config.base import added_value
from stn_icnn_jax.metrics import format_f1_rows
from stn_icnn_jax.photo import real_photos


def part_models_scores(k_and_l: evaluation.TrainedRun, parts: evaluation.TrainedRun,
                       source, split: str) -> dict:
    """``{measure: {set: F1}}`` of ``parts``' part models behind ``k_and_l``'s K and L
    (``source``: the records of the synthetic ``split``)."""
    variables = evaluation.with_part_models_of(k_and_l, parts)
    config = k_and_l.config
    photos = real_photos.score_croppers(weights.Weights(variables, config, {}),
                                        croppers=("ground_truth", "predicted"))
    mesh = evaluation.mesh_for(config)
    synthetic = {crops: evaluation.score(k_and_l.model, variables, config, source, crops,
                                         mesh)["f1"]
                 for crops in ("ground_truth", "predicted")}
    return {"part models: real photos, hand-label crops": photos["crops"]["ground_truth"],
            "part models: real photos, L's crops": photos["crops"]["predicted"],
            f"part models: synthetic {split}, ground-truth crops": synthetic["ground_truth"],
            f"part models: synthetic {split}, L's crops": synthetic["predicted"]}


def rough_scores(trained: evaluation.TrainedRun, source, split: str) -> dict:
    """``{measure: {set: F1}}`` of the run's K on its own map (``source``: as above)."""
    variables, config = trained.variables["rough"], trained.config
    photos = real_photos.score_croppers(weights.Weights(variables, config, {}), croppers=())
    synthetic = evaluation.score_rough_map(trained.model, variables, config, source,
                                           evaluation.mesh_for(config))
    return {"K's own map: real photos": photos["rough_map"],
            f"K's own map: synthetic {split}": synthetic}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path,
                        help="whole run (K, L, part models)")
    parser.add_argument("--twin", required=True, type=Path,
                        help="the part models (and K) trained with the other photometric setting")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="experiments/results/photometric_ablation.md")
    args = parser.parse_args(argv)

    runs = {"run": evaluation.load_run(args.run, until="parts"),
            "twin": evaluation.load_run(args.twin, until="parts")}
    for name, trained in runs.items():
        if trained.records.get("parts") is None:
            raise SystemExit(f"--{name} {trained.workdir}: its parts stage was never trained")
    modes = {name: added_value(trained.config, "data.photometric")
             for name, trained in runs.items()}
    if modes["run"] == modes["twin"]:
        raise SystemExit(f"--run and --twin both have data.photometric = {modes['run']!r}")
    label = {name: f"`{trained.workdir.name}`: photometric \"{modes[name]}\""
             for name, trained in runs.items()}
    source = evaluation.split_source(runs["run"].config, args.split)
    scores = {name: part_models_scores(runs["run"], trained, source, args.split)
              for name, trained in runs.items()}
    if runs["twin"].records.get("rough") is not None:
        for name, trained in runs.items():
            scores[name] = {**rough_scores(trained, source, args.split), **scores[name]}
    config = runs["run"].config
    lines = ["# Photometric augmentation: K and the part models with and without it", "",
             f"Seed {config.seed}, synthetic `{config.data.builder_config}` split. Part "
             f"models: the best (validation F1) of each run, behind the K and L of "
             f"`{args.run.name}`; real photos at the framed faces' resolution.", ""]
    for measure in scores["twin"]:
        lines += [f"## {measure}", "",
                  format_f1_rows({label[name]: scores[name][measure] for name in runs}, "run"),
                  ""]
    return markdown.report(lines, "experiments/ablate_photometric.py", argv, args.out)


if __name__ == "__main__":
    main()
