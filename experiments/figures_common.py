"""Shared by the figure scripts (fig_*.py): the test faces of a run and drawing helpers."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np

from stn_icnn_jax import markdown, theta_geometry
from stn_icnn_jax.config import build
from stn_icnn_jax.data import input_pipeline, labels as labels_lib
from stn_icnn_jax.taxonomy import PALETTE

RESULTS = Path(__file__).resolve().parent / "results"
FEATURES = ("rough_image", "canvas", "canvas_label", "image_size", "image_origin", "centers",
            "centers_present")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workdir", required=True, help="a `stn-icnn train` work directory")
    p.add_argument("--split", default="test")
    p.add_argument("--out_dir", default=str(RESULTS), help="where the PNG and table go")
    p.add_argument("--name", help="file name stem (default: the script's)")
    return p


def command(script_file: str, argv: list[str] | None) -> str:
    """The command line that remakes a figure: ``python experiments/<script> <args>``."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"experiments/{Path(script_file).name}",
                     *map(shlex.quote, args)])


def batch_of(records, config) -> dict:
    """The records laid out as the evaluation does (no augmentation), one batch."""
    layout = input_pipeline.Layout(build.input_config(config, 1, training=False), FEATURES)
    rows = [layout.map(dict(r)) for r in records]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def hard_label(record) -> np.ndarray:
    return labels_lib.hard_label(np.asarray(record["soft_labels"]))


def colour(label: np.ndarray) -> np.ndarray:
    return PALETTE[np.clip(label, 0, len(PALETTE) - 1)]


def fit(image: np.ndarray, side: int) -> np.ndarray:
    """Resize to ``side`` x ``side`` (nearest for label colours, area otherwise)."""
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_NEAREST)


def window_boxes(theta_canvas: np.ndarray, canvas: int, origin: np.ndarray) -> np.ndarray:
    """(P, 4) pixel boxes (x0, y0, x1, y1) in the image of each part's crop window
    (paper convention: the window spans sx * W pixels around the centre)."""
    sx, sy = theta_canvas[:, 0, 0], theta_canvas[:, 1, 1]
    cx = (theta_canvas[:, 0, 2] + 1) * canvas / 2 - origin[1]
    cy = (theta_canvas[:, 1, 2] + 1) * canvas / 2 - origin[0]
    hw, hh = sx * canvas / 2, sy * canvas / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], -1)


def window_centres(theta_canvas: np.ndarray, canvas: int, origins: np.ndarray,
                   convention: str) -> np.ndarray:
    """(N, P, 2) (y, x) pixel-index centres in each image of the crop windows of (N, P, 2,
    3) canvas theta (``convention``: the model's ``theta_convention``); ``origins`` (N, 2)
    are the images' offsets on the canvas. Comparable with the labelled ``centers``."""
    centres = theta_geometry.centers_from_theta(np.asarray(theta_canvas), (canvas, canvas),
                                                convention)
    return np.asarray(centres) - np.asarray(origins, np.float32)[:, None, :]


def draw_boxes(image: np.ndarray, boxes: np.ndarray, bgr=(255, 255, 0), thickness=1):
    out = image.copy()
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))),
                      bgr, thickness)
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    """:func:`stn_icnn_jax.markdown.table` with floats at 3 decimals, as one string."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else v for v in row] for row in rows]
    return "\n".join(markdown.table(header, cells)) + "\n"
