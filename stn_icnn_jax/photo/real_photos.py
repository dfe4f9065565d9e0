"""A small real-photo test set: public-domain face photos shipped inside installed
packages, labelled by this project as polygons (JSON in ``real_photo_labels/``, pixel
coordinates only; the photos themselves are read from their packages).

    for name, image, label in real_photo_set():   # uint8 (H, W, 3), (H, W) 9-class
        ...

Each JSON file: ``photo`` (name), ``source``, ``size_hw``, ``notes`` and ``regions``, a
list of ``{"class": CLASS_NAME, "points": [[x, y], ...]}`` painted in order (a later
region covers an earlier one). A pixel belongs to a polygon when its centre
(x + 0.5, y + 0.5) lies inside it.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.path import Path as PolygonPath

from stn_icnn_jax import taxonomy
from stn_icnn_jax.photo import images


def _grace_hopper() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _astronaut() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / "astronaut.png"


#: Where each labelled photo comes from (a function returning its path in a package).
PHOTO_FILES = {"grace_hopper": _grace_hopper, "astronaut": _astronaut}


def label_files() -> list[Path]:
    """The polygon JSON files, sorted by name."""
    folder = resources.files("stn_icnn_jax.photo") / "real_photo_labels"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".json"))


def rasterise(regions: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """Polygons -> (H, W) uint8 9-class map: background 0, each region's class painted in
    order where the pixel centre lies inside its polygon."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    out = np.zeros(h * w, np.uint8)
    for region in regions:
        name = region["class"]
        if name not in taxonomy.CLASS_NAMES[1:]:
            raise ValueError(f"unknown class {name!r}; use one of {taxonomy.CLASS_NAMES[1:]}")
        inside = PolygonPath(np.asarray(region["points"], float)).contains_points(centres)
        out[inside] = taxonomy.CLASS_NAMES.index(name)
    return out.reshape(h, w)


def load_labels(path: Path) -> dict:
    document = json.loads(Path(path).read_text())
    for key in ("photo", "size_hw", "regions"):
        if key not in document:
            raise ValueError(f"{path}: missing {key!r}")
    return document


def real_photo_set() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, image uint8 (H, W, 3), label (H, W) uint8)`` for every labelled photo."""
    out = []
    for path in label_files():
        document = load_labels(path)
        image = images.to_rgb(PHOTO_FILES[document["photo"]]())
        if list(image.shape[:2]) != list(document["size_hw"]):
            raise ValueError(f"{path}: labels are for a {document['size_hw']} photo, "
                             f"the installed one is {image.shape[:2]}")
        out.append((document["photo"], image, rasterise(document["regions"], image.shape[:2])))
    return out


def face_zoom(image: np.ndarray, labels: np.ndarray, reference: np.ndarray,
              scale: int = 3, margin: int = 20) -> np.ndarray:
    """The overlay of ``labels`` on ``image`` cropped to the hand-labelled face region
    (bounding box of ``reference``'s facial classes plus ``margin``), enlarged ``scale``x
    (nearest): small pictures for the README."""
    from stn_icnn_jax.photo import outputs

    ys, xs = np.nonzero(reference)
    y0, x0 = max(0, ys.min() - margin), max(0, xs.min() - margin)
    y1, x1 = min(image.shape[0], ys.max() + margin), min(image.shape[1], xs.max() + margin)
    picture = outputs.overlay(image[y0:y1, x0:x1], labels[y0:y1, x0:x1], alpha=0.45)
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def score(weights=None, out_dir: Path | None = None, max_side: int | None = None) -> dict:
    """Parses every real test photo with ``weights`` (see ``parse_many``) and returns the
    paper's pooled F1 per set (:func:`stn_icnn_jax.metrics.f1_scores`) over all of them,
    plus ``"per_photo"`` scores. With ``out_dir``, writes ``NAME.parsed.png`` (the
    prediction over the face region, :func:`face_zoom`; the hand labels' picture is
    ``experiments/rasterise_real_labels.py``'s ``NAME.labels.png``)."""
    import warnings

    from PIL import Image

    from stn_icnn_jax import metrics
    from stn_icnn_jax.photo import api

    photos = real_photo_set()
    parser = api.get_parser(weights, batch_size=2, max_side=max_side)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.NoFaceWarning)
        maps, infos = api.parse_many([im for _, im, _ in photos], parser, return_info=True)
    total = np.zeros((taxonomy.NUM_CLASSES,) * 2, np.int64)
    per_photo = {}
    for (name, image, label), pred, info in zip(photos, maps, infos):
        confusion = np.asarray(metrics.confusion_matrix(pred, label))
        total += confusion
        per_photo[name] = {"faces_found": info.faces, **metrics.f1_scores(confusion)}
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            Image.fromarray(face_zoom(image, pred, label)).save(Path(out_dir) / f"{name}.parsed.png")
    return {**metrics.f1_scores(total), "per_photo": per_photo}


def framed_records(max_side: int) -> list[dict]:
    """Every face of every real photo framed as ``parse`` frames it (the detector's box
    grown to the training faces' proportions, :mod:`.framing`), as dataset records
    ``{"image": (h, w, 3) uint8, "soft_labels": (h, w, 11) uint8 one-hot, "name"}``, so
    that the datasets' evaluation path (``evaluation.score``) can score them. A photo in
    which no face is found is framed whole, shrunk to fit ``max_side``."""
    from stn_icnn_jax.data import labels as labels_lib
    from stn_icnn_jax.photo import framing

    out = []
    for name, image, label in real_photo_set():
        frames, _ = framing.find_frames(image, max_side)
        for i, frame in enumerate(frames):
            framed = framing.crop_labels(label, frame)
            out.append({"image": framing.crop(image, frame),
                        "soft_labels": labels_lib.one_hot_soft(labels_lib.label_to_smith(framed)),
                        "name": f"{name}#{i}"})
    return out


#: The rows of :func:`score_croppers`: the same part models fed by each cropper.
CROPPERS = {"predicted": "L's windows (STN-iCNN)",
            "centroid": "centroids of K's map (iCNN)",
            "ground_truth": "hand-label part centres (part models alone)"}


def score_croppers(weights=None, croppers: Sequence[str] = tuple(CROPPERS)) -> dict:
    """Which stage fails on the real photos: K's own F1 on its rough map, and the F1 of
    the same part models fed by each cropper (:data:`CROPPERS`), on the framed faces
    (:func:`framed_records`), through the datasets' evaluation path. Scores are pooled
    over the frames at the frames' resolution (not the photos' native one, unlike
    :func:`score`).

    Args:
      weights: None (the bundled default weights), a weights file, or a loaded
        :class:`~stn_icnn_jax.weights.Weights`.
      croppers: the rows to score (K's row is always scored).

    Returns ``{"rough_map": {set: F1}, "crops": {cropper: {set: F1}}, "frames": n}``.
    """
    from stn_icnn_jax import evaluation
    from stn_icnn_jax import weights as weights_lib
    from stn_icnn_jax.photo import api

    if isinstance(weights, weights_lib.Weights):
        path, loaded = "weights", weights
    else:
        path = api.default_weights_path() if weights is None else Path(weights)
        loaded = weights_lib.load(path)
    mesh = evaluation.mesh_for(loaded.config)
    loaded, model, variables = evaluation.load_weights(path, mesh, loaded)
    records = framed_records(loaded.config.data.canvas_size)
    crops = {name: evaluation.score(model, variables, loaded.config, records, name, mesh)["f1"]
             for name in croppers}
    rough = evaluation.score_rough_map(model, variables, loaded.config, records, mesh)
    return {"rough_map": rough, "crops": crops, "frames": len(records)}


def scores_document(scores: dict, weights_label: str) -> dict:
    """:func:`score`'s result as written to ``scores.json``: ``{"weights", "pooled",
    "per_photo"}``, strict JSON (an F1 of a class absent from every photo is null)."""
    from stn_icnn_jax.train.metric_log import json_safe

    pooled = {k: v for k, v in scores.items() if k != "per_photo"}
    return json_safe({"weights": weights_label, "pooled": pooled,
                      "per_photo": scores["per_photo"]})
