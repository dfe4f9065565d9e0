"""Face finding and framing: crop each face the way the training faces fill their frame.

The model was trained on synthetic portraits in which the face fills a fixed share of
the picture. A photo where the face is much smaller (a group photo) or larger (a tight
crop) is first *framed* like them: OpenCV's LBP frontal-face cascade
(shipped inside scikit-image) finds each face, and its box is grown into a crop in which the
box has the training images' proportions (:data:`TRAINING_FRAME`). Each crop is resized
to the training images' typical side, parsed, and its labels pasted back
(:func:`paste_frames`).
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

#: How faces sit in the synthetic training images, measured with
#: ``python experiments/measure_face_framing.py --faces 200`` on ``generate_face(seed)``,
#: seeds 0..199 (medians). From the exact labels of all 200 faces (face box = face skin
#: and the eight facial classes): ``face_over_width`` / ``face_over_height`` (face box
#: side / image side), ``centre_dx`` / ``centre_dy`` ((face box centre - image centre) /
#: face box side), ``side`` (the image's longer side, pixels). From the faces the
#: detector found (only 11 of 200: the synthetic faces are less face-like to it
#: than photos): ``face_over_det_w`` / ``face_over_det_h`` (face box
#: width / height over the detector box side) and ``face_dx_det`` / ``face_dy_det``
#: ((face box centre - detector box centre) / detector box side).
TRAINING_FRAME = dict(
    face_over_width=0.381, face_over_height=0.437, centre_dx=0.022, centre_dy=0.067, side=420,
    face_over_det_w=1.096, face_over_det_h=1.491, face_dx_det=-0.032, face_dy_det=-0.058,
)


@dataclasses.dataclass(frozen=True)
class Frame:
    """A crop of a photo: ``box`` (x0, y0, x1, y1) in photo pixels (may reach outside
    the photo: the outside is filled by replicating the border), parsed at ``size``
    (h, w); ``face`` is the detector's (x, y, w, h) box, or None for the whole image."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]
    face: tuple[int, int, int, int] | None = None


@functools.lru_cache(maxsize=1)
def _cascade():
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def _iou(a: tuple, b: tuple) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = max(0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)


def group_boxes(boxes: list[tuple[int, int, int, int]], min_neighbors: int,
                overlap: float = 0.3) -> list[tuple[int, int, int, int]]:
    """Merges raw detections (x, y, w, h) that overlap (IoU >= ``overlap``) into their
    mean box, keeps groups of at least ``min_neighbors`` detections (as OpenCV's
    ``groupRectangles``), drops groups inside a larger kept one; largest first."""
    groups: list[list[tuple]] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        for group in groups:
            if any(_iou(box, other) >= overlap for other in group):
                group.append(box)
                break
        else:
            groups.append([box])
    merged = [tuple(int(round(v)) for v in np.mean(g, axis=0)) for g in groups
              if len(g) >= min_neighbors]
    merged.sort(key=lambda b: -b[2] * b[3])
    kept: list[tuple[int, int, int, int]] = []
    for box in merged:
        x, y, w, h = box
        cx, cy = x + w / 2, y + h / 2
        if not any(k[0] <= cx <= k[0] + k[2] and k[1] <= cy <= k[1] + k[3] for k in kept):
            kept.append(box)
    return kept


def detect_faces(image: np.ndarray, min_face_fraction: float = 0.08,
                 min_neighbors: int = 1) -> list[tuple[int, int, int, int]]:
    """Frontal faces in a uint8 (H, W, 3) RGB image: (x, y, w, h) boxes, largest first.

    OpenCV's LBP frontal-face cascade (the copy scikit-image ships; OpenCV 5 dropped
    its cascade classifier), run with scikit-image's multi-scale detector; raw
    detections are grouped (:func:`group_boxes`). Scale steps of 1.15 with single
    detections kept found the one face of each real test photo and nothing else (1.1
    found false faces on the astronaut's suit; 1.2 with two neighbours missed Grace Hopper). Faces narrower than
    ``min_face_fraction`` of the shorter image side are ignored.
    """
    h, w = image.shape[:2]
    side = max(24, int(min_face_fraction * min(h, w)))
    raw = _cascade().detect_multi_scale(img=image, scale_factor=1.15, step_ratio=1,
                                        min_size=(side, side), max_size=(min(h, w),) * 2)
    boxes = [(int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])) for d in raw]
    return group_boxes(boxes, min_neighbors)


def face_frame(face: tuple[int, int, int, int], max_side: int,
               frame: dict = TRAINING_FRAME) -> Frame:
    """The crop around a detected face (x, y, w, h) in which the face has the training
    images' proportions and position, parsed at the training images' typical side."""
    x, y, w, h = face
    face_w, face_h = frame["face_over_det_w"] * w, frame["face_over_det_h"] * h
    face_cx = x + w / 2 + frame["face_dx_det"] * w
    face_cy = y + h / 2 + frame["face_dy_det"] * h
    crop_w, crop_h = face_w / frame["face_over_width"], face_h / frame["face_over_height"]
    cx, cy = face_cx - frame["centre_dx"] * face_w, face_cy - frame["centre_dy"] * face_h
    x0, y0 = int(round(cx - crop_w / 2)), int(round(cy - crop_h / 2))
    box = (x0, y0, x0 + int(round(crop_w)), y0 + int(round(crop_h)))
    scale = min(frame["side"], max_side) / max(crop_w, crop_h)
    size = (max(1, int(round(crop_h * scale))), max(1, int(round(crop_w * scale))))
    return Frame(box=box, size=size, face=tuple(face))


def whole_frame(shape: tuple[int, int], max_side: int) -> Frame:
    """The whole image as one frame, shrunk (never enlarged) to fit ``max_side``."""
    h, w = shape
    scale = min(1.0, max_side / max(h, w))
    return Frame(box=(0, 0, w, h), size=(max(1, int(round(h * scale))), max(1, int(round(w * scale)))))


def find_frames(image: np.ndarray, max_side: int, face_fallback: bool = True) -> tuple[list[Frame], int]:
    """Frames to parse in a uint8 (H, W, 3) image and the number of faces found: one per
    detected face; none found -> the whole image (``face_fallback``) or nothing."""
    faces = detect_faces(image)
    frames = [face_frame(f, max_side) for f in faces]
    if not frames and face_fallback:
        frames = [whole_frame(image.shape[:2], max_side)]
    return frames, len(faces)


def crop(image: np.ndarray, frame: Frame) -> np.ndarray:
    """The frame's pixels of a uint8 (H, W, 3) image at ``frame.size``: (h, w, 3) uint8.
    Parts of the box outside the image repeat the nearest border pixel."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = frame.box
    pad = [max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w)]
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE)
        x0, x1, y0, y1 = x0 + pad[2], x1 + pad[2], y0 + pad[0], y1 + pad[0]
    window = image[y0:y1, x0:x1]
    size_h, size_w = frame.size
    if (size_h, size_w) == window.shape[:2]:
        return np.ascontiguousarray(window)
    shrink = size_h * size_w < window.shape[0] * window.shape[1]
    return cv2.resize(window, (size_w, size_h),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def crop_labels(labels: np.ndarray, frame: Frame) -> np.ndarray:
    """The frame's pixels of an (H, W) label map at ``frame.size`` (nearest, as
    :func:`crop` does with the image); parts of the box outside the photo are background."""
    h, w = labels.shape
    x0, y0, x1, y1 = frame.box
    window = np.zeros((y1 - y0, x1 - x0), labels.dtype)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix0 < ix1 and iy0 < iy1:
        window[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = labels[iy0:iy1, ix0:ix1]
    return resize_nearest(window, frame.size)


def resize_nearest(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) map to ``shape`` (pixel centres matched)."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def paste_frames(shape: tuple[int, int], frames: list[Frame],
                 frame_labels: list[np.ndarray]) -> np.ndarray:
    """Each frame's (size) label map pasted back into an (H, W) map of the photo.

    Where frames overlap, a facial class beats background, and between two facial
    classes the frame whose face centre is nearer the pixel wins. Pixels no frame
    covers are background.
    """
    h, w = shape
    out = np.zeros((h, w), np.int32)
    best = np.full((h, w), -np.inf)
    for frame, labels in zip(frames, frame_labels):
        x0, y0, x1, y1 = frame.box
        full = resize_nearest(np.asarray(labels), (y1 - y0, x1 - x0))
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        part = full[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        fx, fy, fw, fh = frame.face or (x0, y0, x1 - x0, y1 - y0)
        yy, xx = np.mgrid[iy0:iy1, ix0:ix1]
        dist = np.hypot(xx + 0.5 - (fx + fw / 2), yy + 0.5 - (fy + fh / 2))
        key = np.where(part > 0, 1e9, 0.0) - dist
        region = best[iy0:iy1, ix0:ix1]
        wins = key > region
        region[wins] = key[wins]
        out[iy0:iy1, ix0:ix1][wins] = part[wins]
    return out
