"""The files ``stn-icnn parse`` writes: label PNGs, overlays, the legend, and the folder loop.

For each photo ``NAME.EXT``: ``NAME.labels.png`` (a palette PNG of the photo's size whose
pixel values are the class ids, coloured with :data:`~stn_icnn_jax.taxonomy.PALETTE`),
``NAME.overlay.png`` (the photo with the classes blended in) and, once per output
folder, ``legend.json`` (ids, names, RGB colours).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from stn_icnn_jax import taxonomy
from stn_icnn_jax.photo import api, images

#: Photo file endings collected from folders.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def legend() -> dict:
    """The legend: ``{"classes": [{"id", "name", "rgb"}, ...], "left": ...}``."""
    return {
        "classes": [{"id": i, "name": n, "rgb": [int(v) for v in taxonomy.PALETTE[i]]}
                    for i, n in enumerate(taxonomy.CLASS_NAMES)],
        "left": "left = the image's left (smaller x), the person's own right",
    }


def label_image(labels: np.ndarray) -> Image.Image:
    """(H, W) class ids -> a palette ("P") PIL image whose pixel values are the ids."""
    im = Image.fromarray(np.asarray(labels, np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(taxonomy.PALETTE)] = taxonomy.PALETTE
    im.putpalette(palette.reshape(-1).tolist())
    return im


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """uint8 (H, W, 3) photo with each facial class blended in its colour."""
    colours = taxonomy.PALETTE[labels].astype(np.float32)
    out = image.astype(np.float32)
    mask = (labels > 0)[..., None]
    out = np.where(mask, (1 - alpha) * out + alpha * colours, out)
    return np.rint(out).astype(np.uint8)


def collect_photos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files given, plus the photos (by ending) of folders given, sorted per folder."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        else:
            found.append(path)
    return found


def write_outputs(out_dir: Path, name: str, image: np.ndarray, labels: np.ndarray,
                  with_overlay: bool) -> None:
    """``NAME.labels.png`` (and ``NAME.overlay.png``) in ``out_dir``."""
    label_image(labels).save(out_dir / f"{name}.labels.png")
    if with_overlay:
        Image.fromarray(overlay(image, labels)).save(out_dir / f"{name}.overlay.png")


def parse_files(paths: Sequence[Path], out_dir: Path, weights=None, *, with_overlay: bool = True,
                face_fallback: bool = True, batch_size: int = 4,
                report: Callable[[str], None] = print, progress: bool = True) -> list[str]:
    """Parses the photos in groups of ``batch_size`` and writes their files; an
    unreadable photo is reported (``report("PATH: problem")``) and skipped. Returns the
    messages of the photos that failed."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "legend.json").write_text(json.dumps(legend(), indent=2) + "\n")
    parser = api.get_parser(weights, batch_size)
    failures: list[str] = []
    names = _unique_names(paths)
    bar = tqdm(total=len(paths), desc="parse", unit="photo", disable=not progress)
    for start in range(0, len(paths), batch_size):
        group = []
        for path in paths[start : start + batch_size]:
            try:
                group.append((path, images.to_rgb(path)))
            except images.PhotoError as e:
                failures.append(str(e))
                report(f"error: {e}")
                bar.update(1)
        if not group:
            continue
        with warnings.catch_warnings():  # reported below by file name
            warnings.simplefilter("ignore", api.NoFaceWarning)
            maps, infos = api.parse_many([rgb for _, rgb in group], parser,
                                         face_fallback=face_fallback, batch_size=batch_size,
                                         return_info=True)
        for (path, _), info in zip(group, infos):
            if not info.faces:
                what = "parsed the whole image" if face_fallback else "skipped (all background)"
                report(f"warning: {path}: no face found; {what}")
        for (path, rgb), labels in zip(group, maps):
            write_outputs(out_dir, names[path], rgb, labels, with_overlay)
            bar.update(1)
    bar.close()
    return failures


def _unique_names(paths: Sequence[Path]) -> dict[Path, str]:
    """Output stem of each photo: its file name without ending (made unique with -2, -3...)."""
    names, used = {}, set()
    for path in paths:
        stem, k = path.stem, 2
        name = stem
        while name in used:
            name, k = f"{stem}-{k}", k + 1
        used.add(name)
        names[path] = name
    return names
