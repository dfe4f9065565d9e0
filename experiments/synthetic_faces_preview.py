"""Preview grid of synthetic faces: each picture next to its argmax label overlay.

    python experiments/synthetic_faces_preview.py [--seeds 0-15] [--cols 4] [--tile 220]
        [--out experiments/results/synthetic_faces_preview.png]

Writes a PNG (default ``experiments/results/synthetic_faces_preview.png``). Each cell is
the generated picture (left) and the picture with the hard label (argmax of the 11 soft
maps) blended on top, with the label borders drawn in black (right). The caption gives
the seed, size and what was drawn (o = mouth open, c = eyes closed, g = glasses,
h/b = hand/block occluder, f = fringe).
"""

from __future__ import annotations

import argparse
import pathlib

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic import generate_face
from stn_icnn_jax.taxonomy import SMITH_CLASS_NAMES as CLASS_NAMES
from stn_icnn_jax.taxonomy import SMITH_PALETTE as PALETTE



def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def overlay(image: np.ndarray, soft: np.ndarray) -> np.ndarray:
    lab = soft.argmax(-1)
    col = PALETTE[lab]
    out = (0.45 * image + 0.55 * col).astype(np.uint8)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    out[edge] = 0
    return out


def cell(seed: int, tile: int) -> np.ndarray:
    f = generate_face(seed)
    img, soft, m = f["image"], f["soft_labels"], f["meta"]
    h, w = img.shape[:2]
    sc = tile / max(h, w)
    size = (max(1, round(w * sc)), max(1, round(h * sc)))
    a = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(overlay(img, soft), size, interpolation=cv2.INTER_NEAREST)
    pane = np.full((tile + 16, 2 * tile + 4, 3), 255, np.uint8)
    pane[: size[1], : size[0]] = a
    pane[: size[1], tile + 4 : tile + 4 + size[0]] = b
    flags = "".join(
        c
        for c, on in (
            ("o", m["mouth_open"]),
            ("c", m["eyes_closed"]),
            ("g", m["glasses"]),
            ("h", m["occluder"] == "hand"),
            ("b", m["occluder"] == "block"),
            ("f", m["fringe"]),
        )
        if on
    )
    text = f"{seed} {w}x{h} {m['hair_style']} yaw{m['yaw_deg']:+.0f} {flags}"
    cv2.putText(pane, text, (2, tile + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return pane


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-15")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--tile", type=int, default=220)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "synthetic_faces_preview.png"))
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    cells = [cell(s, args.tile) for s in seeds]
    rows = []
    for i in range(0, len(cells), args.cols):
        row = cells[i : i + args.cols]
        row += [np.full_like(cells[0], 255)] * (args.cols - len(row))
        rows.append(np.concatenate([np.pad(c, ((0, 4), (0, 8), (0, 0)), constant_values=255) for c in row], 1))
    grid = np.concatenate(rows, 0)
    legend = np.full((22, grid.shape[1], 3), 255, np.uint8)
    x = 4
    for k, name in enumerate(CLASS_NAMES):
        cv2.rectangle(legend, (x, 5), (x + 12, 17), tuple(int(v) for v in PALETTE[k]), -1)
        cv2.putText(legend, name, (x + 15, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        x += 20 + 8 * len(name)
    grid = np.concatenate([legend, grid], 0)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]}, {out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
