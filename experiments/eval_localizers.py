"""STN-iCNN* with other localisers: K and L of each given run, the part models of one
run, scored with L's crops, and how far L's windows land from the labelled part centres.

For localiser sweeps (``sweep_stage.py --stage localizer --reuse_from RUN``): each
``--workdir`` holds a finished ``localizer`` stage; ``--parts_from`` is the run whose
part models (its ``parts`` stage) parse every row, so rows differ only in K and L. The
first row is ``--parts_from`` itself with its own K and L. Usage:

    python experiments/eval_localizers.py --parts_from runs/main_seed0 \\
        --workdir runs/sweep_loc/a --workdir runs/sweep_loc/b [--split test] [--out F]

Columns: the localiser settings of the row's run (``model.localizer_scale``, epochs,
halving), its best validation theta loss, the mean distance (image pixels) of L's window
centres from the labelled part centres over every present part of the split, and the
pooled F1 per class (the path of ``stn-icnn eval``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures_common as common  # noqa: E402

from stn_icnn_jax import evaluation, markdown  # noqa: E402
from stn_icnn_jax.config import base  # noqa: E402
from stn_icnn_jax.model import stn_icnn  # noqa: E402
from stn_icnn_jax.taxonomy import F1_SETS  # noqa: E402
from stn_icnn_jax.train import distributed  # noqa: E402

CHUNK = 8  # faces per jitted parse when measuring window centres


def centre_error(trained: evaluation.TrainedRun, variables: dict, records: list) -> float:
    """Mean distance (pixels) of L's window centres from the labelled part centres."""
    model = trained.model
    parse = jax.jit(lambda v, b: stn_icnn.parse(model, v, b, theta_source="predicted")
                    ["theta_canvas"])
    errors = []
    for start in range(0, len(records), CHUNK):
        batch = common.batch_of(records[start : start + CHUNK], trained.config)
        theta = np.asarray(parse(variables, batch))
        centres = common.window_centres(theta, batch["canvas"].shape[1], batch["image_origin"],
                                        trained.config.model.theta_convention)
        distance = np.linalg.norm(centres - batch["centers"], axis=-1)
        errors.append(distance[batch["centers_present"]])
    return float(np.concatenate(errors).mean())


def settings(trained: evaluation.TrainedRun) -> list:
    """The localiser recipe of a run: scale switch, coordinate channels, epochs, halving,
    best theta loss."""
    stage = trained.config.stages.localizer
    scale = base.added_value(trained.config, "model.localizer_scale")
    coords = "yes" if base.added_value(trained.config, "model.localizer_coord_channels") else "no"
    record = trained.records.get("localizer") or {}
    theta_loss = -record["selection"] if record.get("selection") is not None else float("nan")
    return [scale, coords, stage.epochs, stage.halve_every_epochs, f"{theta_loss:.5f}"]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts_from", required=True, type=Path,
                        help="the run whose part models (parts stage) parse every row")
    parser.add_argument("--workdir", action="append", required=True, type=Path,
                        help="a run with a finished localizer stage (repeatable)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", help="write the Markdown table here too")
    args = parser.parse_args(argv)
    mesh = distributed.make_mesh(None)
    parts = evaluation.load_run(args.parts_from, mesh, until="parts")
    source = evaluation.split_source(parts.config, args.split)
    records = [source[i] for i in range(len(source))]
    runs = [(args.parts_from, parts, parts.variables_for("parts", "predicted"))]
    for workdir in args.workdir:
        trained = evaluation.load_run(workdir, mesh, until="localizer")
        runs.append((workdir, trained, evaluation.with_part_models_of(trained, parts)))
    classes = tuple(F1_SETS)
    rows = []
    for workdir, trained, variables in runs:
        f1 = evaluation.score(trained.model, variables, trained.config, source, "predicted",
                              mesh)["f1"]
        error = centre_error(trained, variables, records)
        rows.append([workdir.name, *settings(trained), f"{error:.1f}",
                     *(f"{f1[c]:.3f}" for c in classes)])
        print(f"{workdir.name}: centre error {error:.1f} px, overall F1 {f1['overall']:.3f}",
              flush=True)
    header = ["K and L from", "localizer_scale", "coord channels", "L epochs", "halve every", "best val theta loss",
              "L's centre error (px)", *classes]
    lines = [f"STN-iCNN* (L's crops) on the {args.split} split ({len(source)} faces); part "
             f"models of `{args.parts_from.name}`'s parts stage in every row; `"
             f"{common.command(__file__, argv)}`.", "",
             *markdown.table(header, rows), ""]
    text = markdown.write(args.out, lines) if args.out else "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
