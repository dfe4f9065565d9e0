"""Procedural synthetic face photos with exact HELEN-style soft labels.

No real face data set can be downloaded everywhere this package runs, so the default
data is generated: ``generate_face(seed)`` draws one portrait photo and its 11 soft
label maps in the order of Smith et al. (CVPR 2013), the storage order of every record
in :mod:`stn_icnn_jax.data`::

    0 background  1 face skin  2 left eyebrow  3 right eyebrow  4 left eye  5 right eye
    6 nose        7 upper lip  8 inner mouth   9 lower lip     10 hair

**"Left" means the IMAGE's left**: the left eyebrow / left eye (channels 2 and 4) are the
ones with the smaller x coordinate in the image (the person's own right). The in-plane
rotation is bounded (``max_rotation_deg`` < 90), so this never flips.

How it works
------------
Everything is drawn in a face frame whose unit is the half width of the face at the
cheekbones (``a``), origin at the midpoint between the eyes, x to the image's right, y
down. A point of the face (x, y) has a depth z on a head ellipsoid (plus bumps for nose
and lips); mild yaw rotates that 3-D point about the vertical axis and projects it
orthographically, so features shift towards the turn and foreshorten on the far side;
a similarity transform (scale, in-plane rotation, translation) then puts it into the
image. Regions are polygons rasterised with 4x4 supersampling into exact coverage
(0..1) inside their bounding box only. A region is *painted* over the picture and the
label stack with its coverage (``label = label * (1 - cov) + onehot * cov``), so every
later, nearer thing (hair over brows, glasses frames, hands, blocks, a hat) removes the
label of what it covers: the labels describe what is visible, as in HELEN. Borders are
soft (anti-aliased coverage, like HELEN's probability maps). Shading, textures,
make-up, lashes etc. change only the picture. Blur, noise and JPEG are applied to the
picture only at the end; the labels stay exact.

Label conventions (document of what is drawn where):

* face skin: the face outline (forehead to chin, cheek to cheek), not ears, not neck;
  beards and stubble on the face stay face skin, glasses frames on the face become face
  skin (they hide brows/eyes under them);
* a closed eye is a thin sliver along the lash line (so it still has a centroid); a
  closed mouth has NO inner-mouth pixels (``meta["mouth_open"]`` is False);
* hair: head hair, including a fringe over the forehead that may hide the brows;
* background: everything else: ears, neck, body, clothes, background, hats, hands and
  other occluders.

Determinism: all randomness comes from ``numpy.random.SeedSequence(seed)`` children (no
global state); OpenCV is used only for deterministic operations. The same seed and
config give bit-identical outputs. The picture components (pose, identity, hair,
background, accessories, occluder, camera) use separate random streams, so e.g. turning
occluders off leaves the rest of the face of a seed unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from stn_icnn_jax.data.synthetic.channels import CLASS_NAMES, NUM_CLASSES
from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.noise import blur as _blur
from stn_icnn_jax.data.synthetic.noise import streak_noise as _aniso_noise
from stn_icnn_jax.data.synthetic.noise import uniform as _u
from stn_icnn_jax.data.synthetic.noise import value_noise as _noise
from stn_icnn_jax.data.synthetic.palette import HAIR_COLOUR_PROBABILITIES as _HAIR_P
from stn_icnn_jax.data.synthetic.palette import HAIR_COLOURS as _HAIR_COLOURS
from stn_icnn_jax.data.synthetic.palette import IRIS_COLOURS as _IRIS
from stn_icnn_jax.data.synthetic.palette import IRIS_PROBABILITIES as _IRIS_P
from stn_icnn_jax.data.synthetic.palette import sample_skin_colour as _skin_colour
from stn_icnn_jax.data.synthetic.raster import crop_to_box
from stn_icnn_jax.data.synthetic.raster import quantise_labels as _quantise
from stn_icnn_jax.data.synthetic.shapes import ellipse_points
from stn_icnn_jax.data.synthetic.shapes import mix as _mix
from stn_icnn_jax.data.synthetic.shapes import smoothstep as _smoothstep
from stn_icnn_jax.data.synthetic.shapes import stroke_polygon as _stroke

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "SyntheticFaceConfig",
    "generate_face",
    "generate_faces",
]

BG, SKIN, LBROW, RBROW, LEYE, REYE, NOSE, ULIP, IMOUTH, LLIP, HAIR = range(11)

HAIR_STYLES = ("short", "bob", "long", "curly", "updo", "buzz")


def _ellipse_pts(cx, cy, rx, ry, n=48, rot=0.0, p=2.0):
    return ellipse_points(cx, cy, rx, ry, n, rotation=rot, power=p)


# --------------------------------------------------------------------------------------
# canvas: picture + label stack, everything bbox-local


class _Canvas:
    def __init__(self, h, w, ss):
        self.h, self.w, self.ss = h, w, ss
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.zeros((NUM_CLASSES, h, w), np.float32)
        self.lab[BG] = 1.0
        self.used = [BG]

    def bbox(self, pts, pad=1.0):
        p = np.concatenate([np.asarray(q).reshape(-1, 2) for q in pts])
        x0 = max(int(math.floor(p[:, 0].min() - pad)), 0)
        y0 = max(int(math.floor(p[:, 1].min() - pad)), 0)
        x1 = min(int(math.ceil(p[:, 0].max() + pad)) + 1, self.w)
        y1 = min(int(math.ceil(p[:, 1].max() + pad)) + 1, self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        return (x0, y0, x1, y1)

    def cover(self, polys, pad=1.0, bb=None):
        """Exact-ish area coverage (float32, bbox) of the union of polygons (pixels)."""
        if isinstance(polys, np.ndarray):
            polys = [polys]
        polys = [p for p in polys if len(p) >= 3]
        if not polys:
            return None, None
        if bb is None:
            bb = self.bbox(polys, pad)
            if bb is None:
                return None, None
        x0, y0, x1, y1 = bb
        s = self.ss
        area = (x1 - x0) * (y1 - y0)
        while s > 2 and area * s * s > 1_500_000:
            s -= 1  # very large shapes: coarser (still >= 2x2) supersampling
        m = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
        off = np.array([x0, y0], np.float64)
        for p in polys:
            q = ((np.asarray(p, np.float64) - off + 0.5) * s - 0.5) * 16.0
            q = np.clip(q, -1e6, 1e6)
            cv2.fillPoly(m, [np.round(q).astype(np.int32)], 255, cv2.LINE_8, 4)
        if s > 1:
            m = cv2.resize(m, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        return m.astype(np.float32) * (1.0 / 255.0), bb

    @staticmethod
    def sl(bb):
        x0, y0, x1, y1 = bb
        return slice(y0, y1), slice(x0, x1)

    def paint(self, cov, bb, color=None, alpha=None, label=None):
        """Blend `color` with alpha cov*alpha; paint `label` with the geometric cov."""
        if cov is None:
            return
        ys, xs = self.sl(bb)
        if color is not None:
            a = cov if alpha is None else cov * alpha
            a3 = a[..., None]
            col = np.asarray(color, np.float32)
            region = self.img[ys, xs]
            region += (col - region) * a3
        if label is not None:
            keep = 1.0 - cov
            for c in self.used:
                self.lab[c, ys, xs] *= keep
            self.lab[label, ys, xs] += cov
            if label not in self.used:
                self.used.append(label)

    def move(self, cov, bb, src, dst):
        """Move label mass of classes `src` to `dst` with weight cov (sub-regions)."""
        if cov is None:
            return
        ys, xs = self.sl(bb)
        for c in src:
            if c not in self.used:
                continue
            m = self.lab[c, ys, xs] * cov
            self.lab[c, ys, xs] -= m
            self.lab[dst, ys, xs] += m
        if dst not in self.used:
            self.used.append(dst)

    def shade(self, bb, mult):
        ys, xs = self.sl(bb)
        m = np.asarray(mult, np.float32)
        if m.ndim == 2:
            m = m[..., None]
        self.img[ys, xs] *= m

    def soft(self, polys, sigma, pad=None):
        """Blurred coverage of polygons (for shading blobs), bbox padded by 3 sigma."""
        sigma = max(float(sigma), 0.3)
        pad = 3.0 * sigma + 2 if pad is None else pad
        cov, bb = self.cover(polys, pad=pad)
        if cov is None:
            return None, None
        return cv2.GaussianBlur(cov, (0, 0), sigma), bb


# --------------------------------------------------------------------------------------
# geometry of one face


class _Geom:
    """Projection face frame -> view (after yaw) -> image, and the face's proportions."""

    def __init__(self, cx, cy, scale, rot, yaw, body_rot):
        self.cx, self.cy, self.s = cx, cy, scale
        self.cr, self.sr = math.cos(rot), math.sin(rot)
        self.cyaw, self.syaw = math.cos(yaw), math.sin(yaw)
        self.yaw = yaw
        self.bcr, self.bsr = math.cos(body_rot), math.sin(body_rot)
        # pivot of the body transform: the image point of face point (0, 1.6)
        self.pivot = self._sim(np.array([[0.0, 1.6]]))[0]
        # head ellipsoid used for depth and shading (view space)
        self.hy, self.hb, self.hc = -0.15, 1.75, 1.0

    def _sim(self, v):
        v = np.asarray(v, np.float64)
        x = self.cx + self.s * (self.cr * v[:, 0] - self.sr * v[:, 1])
        y = self.cy + self.s * (self.sr * v[:, 0] + self.cr * v[:, 1])
        return np.stack([x, y], 1)

    def depth(self, x, y):
        q = 1.0 - x**2 - ((y - self.hy) / self.hb) ** 2
        return self.hc * np.sqrt(np.clip(q, 0.0, 1.0))

    def view(self, pts, dz=0.0):
        """Frontal face points (N, 2) (+ extra depth dz) -> view coordinates (N, 2)."""
        pts = np.asarray(pts, np.float64)
        x, y = pts[:, 0], pts[:, 1]
        z = self.depth(x, y) + dz
        return np.stack([x * self.cyaw + z * self.syaw, y], 1)

    def P(self, pts, dz=0.0):
        return self._sim(self.view(pts, dz))

    def P_outline(self, pts, zo):
        """Outline points: near side rotates away, far side stays the silhouette."""
        pts = np.asarray(pts, np.float64)
        x = pts[:, 0]
        far = x * self.syaw > 0
        xx = np.where(far, x, x * self.cyaw) + zo * self.syaw
        return self._sim(np.stack([xx, pts[:, 1]], 1))

    def P_flat(self, pts):
        """No yaw (things centred on the head axis: neck, hair silhouette)."""
        return self._sim(np.asarray(pts, np.float64))

    def P_body(self, pts):
        pts = np.asarray(pts, np.float64)
        dx, dy = pts[:, 0], pts[:, 1] - 1.6
        x = self.pivot[0] + self.s * (self.bcr * dx - self.bsr * dy)
        y = self.pivot[1] + self.s * (self.bsr * dx + self.bcr * dy)
        return np.stack([x, y], 1)

    def grid(self, bb):
        """View coordinates (X, Y) of the pixel centres of a bbox."""
        x0, y0, x1, y1 = bb
        px = np.arange(x0, x1, dtype=np.float32) - self.cx
        py = np.arange(y0, y1, dtype=np.float32) - self.cy
        inv = 1.0 / self.s
        X = (self.cr * px[None, :] + self.sr * py[:, None]) * inv
        Y = (-self.sr * px[None, :] + self.cr * py[:, None]) * inv
        return X.astype(np.float32), Y.astype(np.float32)

    def to_img_vec(self, vx, vy):
        """A direction in view space -> image space (unit-less)."""
        return self.cr * vx - self.sr * vy, self.sr * vx + self.cr * vy


# --------------------------------------------------------------------------------------
# the generator


class _Face:
    def __init__(self, seed: int, cfg: SyntheticFaceConfig):
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)
        self.cfg = cfg
        kids = np.random.SeedSequence(self.seed).spawn(9)
        (
            self.r_pose,
            self.r_id,
            self.r_hair,
            self.r_bg,
            self.r_acc,
            self.r_occ,
            self.r_cam,
            self.r_expr,
            self.r_tex,
        ) = [np.random.default_rng(k) for k in kids]
        self.meta: dict[str, Any] = {"seed": self.seed}

    # ---------------------------------------------------------------- layout & identity
    def _layout(self):
        cfg, r = self.cfg, self.r_pose
        lo, hi = cfg.min_size, cfg.max_size
        if r.random() < cfg.square_prob:
            h = w = int(r.integers(lo, hi + 1))
        else:
            big = int(r.integers(lo, hi + 1))
            asp = math.exp(r.uniform(0.0, math.log(cfg.max_aspect)))
            small = int(np.clip(round(big / asp), lo, hi))
            h, w = (big, small) if r.random() < 0.65 else (small, big)
        self.h, self.w = h, w
        head = _u(r, *cfg.head_frac) * min(h, w)
        self.scale = head / 3.25  # crown (-1.7) to chin (~1.5)
        maxr = math.radians(cfg.max_rotation_deg)
        roll = float(np.clip(r.normal(0, 0.45 * maxr), -maxr, maxr))
        tilt = float(np.clip(r.normal(0, 0.35 * maxr), -maxr, maxr))
        rot = float(np.clip(roll + tilt, -maxr, maxr))
        maxy = math.radians(cfg.max_yaw_deg)
        yaw = float(np.clip(r.normal(0, 0.5 * maxy), -maxy, maxy))
        sh = cfg.max_center_shift
        cx = w * (0.5 + _u(r, -sh, sh))
        cy = h * (0.5 + _u(r, -sh, sh)) - 0.05 * self.scale
        self.g = _Geom(cx, cy, self.scale, rot, yaw, rot - tilt if abs(rot - tilt) < maxr else 0)
        self.meta.update(
            height=h,
            width=w,
            face_center_x=float(cx),
            face_center_y=float(cy),
            face_scale=float(self.scale),
            rotation_deg=float(math.degrees(rot)),
            yaw_deg=float(math.degrees(yaw)),
        )

    def _identity(self):
        r = self.r_id
        self.masc = bool(r.random() < 0.5)
        m = self.masc
        self.skin, tone = _skin_colour(r)
        self.age = _u(r, 0, 1)  # 0 young .. 1 old
        self.fw = _u(r, 0.94, 1.04)
        self.chin_y = _u(r, 1.36, 1.58) + (0.04 if m else 0)
        self.jaw_n = _u(r, 2.2, 3.6) if m else _u(r, 1.8, 2.8)
        self.taper = _u(r, 0.06, 0.22)
        # eyes
        self.ex = _u(r, 0.40, 0.47)
        self.ew = _u(r, 0.185, 0.225)
        self.eh = _u(r, 0.068, 0.095) * (0.93 if m else 1.0)
        self.e_low = _u(r, 0.55, 0.8)
        self.tilt = _u(r, -0.01, 0.035)
        self.iris_r = _u(r, 0.074, 0.088)
        self.iris_c = _IRIS[r.choice(len(_IRIS), p=_IRIS_P)] * _u(r, 0.85, 1.15)
        self.gaze = (_u(r, -0.35, 0.35), _u(r, -0.15, 0.1))
        # brows
        self.b_gap = _u(r, 0.2, 0.3) - (0.02 if m else 0)
        self.b_th = _u(r, 0.075, 0.12) if m else _u(r, 0.05, 0.09)
        self.b_tail = _u(r, 0.3, 0.6)
        self.b_arch = _u(r, 0.02, 0.07) * (0.6 if m else 1.0)
        self.b_in = _u(r, 0.11, 0.19)
        self.b_out = self.ex + self.ew + _u(r, 0.03, 0.13)
        # nose
        self.n_top = _u(r, -0.04, 0.06)
        self.n_base = _u(r, 0.52, 0.63)
        self.n_bridge = _u(r, 0.055, 0.09)
        self.n_ala = _u(r, 0.18, 0.25) + (0.02 if m else 0)
        # mouth
        self.m_y = self.n_base + _u(r, 0.25, 0.34)
        self.mw = _u(r, 0.33, 0.42)
        self.uh = _u(r, 0.065, 0.1) * (0.85 if m else 1.0)
        self.lh = self.uh * _u(r, 1.2, 1.7)
        self.bow = _u(r, 0.15, 0.4)
        lip_base = _mix(self.skin, (0.72, 0.30, 0.32), _u(r, 0.35, 0.6))
        self.lip_c = (lip_base * _u(r, 0.75, 0.95)).astype(np.float32)
        self.makeup = (not m) and r.random() < self.cfg.makeup_prob
        self.lipstick = None
        if self.makeup and r.random() < 0.6:
            self.lipstick = np.array(
                [(0.62, 0.06, 0.10), (0.75, 0.28, 0.35), (0.45, 0.12, 0.20), (0.70, 0.38, 0.36)][
                    int(r.integers(4))
                ],
                np.float32,
            )
        self.shadow_c = np.array(
            [(0.35, 0.25, 0.3), (0.3, 0.22, 0.18), (0.25, 0.3, 0.45), (0.45, 0.3, 0.25)][int(r.integers(4))],
            np.float32,
        )
        # light (view space; z towards the camera)
        la = r.uniform(0, 2 * np.pi)
        el = _u(r, 0.35, 1.2)
        self.light = np.array(
            [math.cos(la) * math.cos(el), math.sin(la) * math.cos(el) - 0.25, math.sin(el)], np.float32
        )
        self.light /= np.linalg.norm(self.light)
        self.ambient = _u(r, 0.22, 0.6)
        self.spec = _u(r, 0.0, 0.12)
        # neck / body
        self.neck_w = _u(r, 0.62, 0.74) + (0.16 if m else 0)
        self.meta.update(skin_tone=float(tone), masculine=self.masc, age=float(self.age))

    def _expression(self):
        cfg, r = self.cfg, self.r_expr
        self.mouth_open = bool(r.random() < cfg.mouth_open_prob)
        self.gap = 0.0
        if self.mouth_open:
            self.gap = _u(r, 0.03, 0.1) if r.random() < 0.6 else _u(r, 0.1, 0.28)
        self.smile = _u(r, -0.01, 0.05) + (0.02 if self.mouth_open and self.gap < 0.1 else 0)
        self.chin_y += 0.45 * self.gap
        self.open_l = self.open_r = _u(r, 0.75, 1.1)
        if r.random() < cfg.eyes_closed_prob:
            self.open_l = self.open_r = 0.0
        elif r.random() < cfg.wink_prob:
            if r.random() < 0.5:
                self.open_l = 0.0
            else:
                self.open_r = 0.0
        if self.mouth_open and self.gap < 0.1:
            self.open_l *= 0.85
            self.open_r *= 0.85
        self.meta.update(
            mouth_open=self.mouth_open,
            mouth_gap=float(self.gap),
            left_eye_closed=self.open_l == 0.0,
            right_eye_closed=self.open_r == 0.0,
            eyes_closed=self.open_l == 0.0 and self.open_r == 0.0,
        )

    # ---------------------------------------------------------------- face outline
    def _halfwidth(self, y):
        """Half width of the face outline at height y (frontal, face units)."""
        y = np.asarray(y, np.float64)
        top, mid, cheek = -1.72, -0.3, 0.2
        w = np.empty_like(y)
        up = y < mid
        t = (y[up] - mid) / (mid - top)
        w[up] = self.fw * 0.97 * np.sqrt(np.clip(1 - t**2, 0, 1)) ** 0.9
        midm = (y >= mid) & (y < cheek)
        w[midm] = self.fw * (0.97 + 0.03 * _smoothstep(mid, cheek, y[midm]))
        lo = y >= cheek
        t = np.clip((y[lo] - cheek) / (self.chin_y - cheek), 0, 1)
        w[lo] = self.fw * (1 - self.taper * t) * np.clip(1 - t**self.jaw_n, 0, 1) ** 0.55
        return w

    def _outline_zo(self, y):
        t = np.clip((np.asarray(y) - 0.2) / (self.chin_y - 0.2), 0, 1)
        return 0.12 + 0.7 * t**1.5

    def _outline(self, n=160):
        a = np.linspace(0, np.pi, n // 2)
        y = -1.72 + (self.chin_y + 1.72) * (1 - np.cos(a)) / 2
        w = self._halfwidth(y)
        right = np.stack([w, y], 1)
        left = np.stack([-w, y], 1)[::-1]
        pts = np.concatenate([right, left[1:-1]])
        return self.g.P_outline(pts, self._outline_zo(pts[:, 1]))

    # ---------------------------------------------------------------- skin shading
    def _skin_field(self, bb, base, kind="face"):
        g = self.g
        X, Y = g.grid(bb)
        if kind == "face":
            ax = self.fw
            q = 1.0 - (X / ax) ** 2 - ((Y - g.hy) / g.hb) ** 2
            q = np.clip(q, 0.02, 1.0)
            nz = np.sqrt(q) / g.hc
            nx = X / ax**2
            ny = (Y - g.hy) / g.hb**2
        else:  # neck cylinder (body frame approximately)
            q = np.clip(1.0 - (X / (self.neck_w * 1.05)) ** 2, 0.03, 1.0)
            nz = np.sqrt(q)
            nx = X / (self.neck_w * 1.05)
            ny = np.zeros_like(X)
        inv = 1.0 / np.sqrt(nx * nx + ny * ny + nz * nz)
        L = self.light
        d = np.clip((nx * L[0] + ny * L[1] + nz * L[2]) * inv * 0.8 + 0.2, 0, 1)
        amb = self.ambient
        sh = (amb + (1 - amb) * d) * (0.72 + 0.28 * np.sqrt(np.clip(nz * inv, 0, 1)))
        h, w = X.shape
        r = self.r_tex
        blot = _noise(r, h, w, max(2.0, 0.3 * self.scale)) * 0.018 + _noise(r, h, w, max(1.5, 0.06 * self.scale)) * 0.01
        pore = _noise(r, h, w, max(1.0, 0.006 * self.scale)) * (0.005 + 0.012 * self.age)
        col = base[None, None, :] * (sh * (1 + blot + pore))[..., None]
        # a reddish tinge in the mid face, subsurface-looking warm shadows
        warm = np.float32(0.04) * (1 - d)[..., None] * np.array([0.3, -0.2, -0.4], np.float32)
        col = col + warm * base[None, None, :]
        if self.spec > 0 and kind == "face":
            hv = np.array([L[0], L[1], L[2] + 1.0], np.float32)
            hv /= np.linalg.norm(hv)
            sp = np.clip((nx * hv[0] + ny * hv[1] + nz * hv[2]) * inv, 0, 1) ** 24
            col = col + (self.spec * sp)[..., None]
        return col

    # ---------------------------------------------------------------- background
    def _background(self):
        r, h, w = self.r_bg, self.h, self.w
        kind = str(r.choice(["studio", "indoor", "outdoor", "pattern", "noise"], p=[0.3, 0.28, 0.2, 0.1, 0.12]))
        self.meta["background"] = kind

        def col(lo=0.05, hi=0.95):
            c = r.uniform(lo, hi, 3)
            sat = _u(r, 0.1, 0.8)
            return (c.mean() + (c - c.mean()) * sat).astype(np.float32)

        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
        ang = r.uniform(0, 2 * np.pi)
        grad = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5
        if kind == "studio":
            c1, c2 = col(0.2, 0.95), col(0.1, 0.9)
            img = c1 * (1 - grad[..., None]) + c2 * grad[..., None]
            img = img + _noise(r, h, w, w / 3)[..., None] * 0.03
            vig = 1 - _u(r, 0, 0.35) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)[..., None] * 2
            img = img * vig
        elif kind == "outdoor":
            hor = _u(r, 0.25, 0.75)
            sky = _mix((0.45, 0.62, 0.88), (0.85, 0.88, 0.92), _u(r, 0, 1))
            ground = _mix((0.2, 0.35, 0.12), (0.45, 0.38, 0.25), _u(r, 0, 1))
            t = _smoothstep(hor - 0.05, hor + 0.05, yy)[..., None]
            img = sky * (1 - t) * (0.8 + 0.3 * (1 - yy[..., None])) + ground * t
            img = np.broadcast_to(img, (h, w, 3)).copy()
            for _ in range(int(r.integers(8, 30))):
                c = _mix(ground, col(0.1, 0.7), _u(r, 0, 0.6)) * _u(r, 0.5, 1.3)
                cx, cy = _u(r, 0, w), _u(r, hor * h - 0.3 * h, h)
                cv2.ellipse(
                    img,
                    (int(cx), int(cy)),
                    (int(_u(r, 0.03, 0.25) * w), int(_u(r, 0.03, 0.2) * h)),
                    _u(r, 0, 180), 0, 360, tuple(float(v) for v in c), -1, cv2.LINE_AA,
                )
            img = img + _noise(r, h, w, w / 20)[..., None] * 0.06
        elif kind == "indoor":
            wall = col(0.3, 0.9)
            img = np.broadcast_to(wall * (0.85 + 0.3 * grad[..., None]), (h, w, 3)).copy()
            for _ in range(int(r.integers(3, 12))):
                c = col(0.02, 1.0)
                x0, y0 = int(_u(r, -0.2, 1) * w), int(_u(r, -0.2, 1) * h)
                x1, y1 = x0 + int(_u(r, 0.05, 0.6) * w), y0 + int(_u(r, 0.05, 0.8) * h)
                cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) for v in c), -1)
                if r.random() < 0.4:
                    cv2.rectangle(img, (x0, y0), (x1, y1), tuple(float(v) * 0.6 for v in c), max(1, w // 150))
            for _ in range(int(r.integers(0, 6))):
                c = col(0.0, 1.0)
                if r.random() < 0.5:
                    x = int(_u(r, 0, w))
                    cv2.line(img, (x, 0), (x + int(_u(r, -0.1, 0.1) * w), h), tuple(float(v) for v in c), int(r.integers(1, max(2, w // 60))))
                else:
                    y = int(_u(r, 0, h))
                    cv2.line(img, (0, y), (w, y + int(_u(r, -0.1, 0.1) * h)), tuple(float(v) for v in c), int(r.integers(1, max(2, w // 60))))
        elif kind == "pattern":
            c1, c2 = col(), col()
            period = _u(r, 0.03, 0.2) * w
            a2 = r.uniform(0, np.pi)
            u = (np.cos(a2) * xx * w + np.sin(a2) * yy * h) / period
            if r.random() < 0.5:
                v = (np.sin(2 * np.pi * u) > 0).astype(np.float32)
            else:
                u2 = (-np.sin(a2) * xx * w + np.cos(a2) * yy * h) / period
                v = ((np.floor(u) + np.floor(u2)) % 2).astype(np.float32)
            img = c1 * (1 - v[..., None]) + c2 * v[..., None]
            img = img * (0.8 + 0.35 * grad[..., None])
        else:  # noise
            hs, ws = max(2, h // 4), max(2, w // 4)
            small = np.zeros((hs, ws, 3), np.float32)
            base = col(0.2, 0.8)
            for k in range(4):
                cell = ws / (3 * 2**k)
                small += np.stack([_noise(r, hs, ws, cell) for _ in range(3)], -1) * (0.18 / (k + 1))
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) + base
        img = np.ascontiguousarray(img, np.float32)
        if r.random() < self.cfg.distractor_prob:
            for _ in range(int(r.integers(1, 4))):
                sc, _t = _skin_colour(r)
                cx, cy = _u(r, 0, w), _u(r, 0, h)
                rx = _u(r, 0.04, 0.15) * min(h, w)
                cv2.ellipse(img, (int(cx), int(cy)), (int(rx), int(rx * _u(r, 1.1, 1.5))), _u(r, -20, 20), 0, 360,
                            tuple(float(v) for v in sc * _u(r, 0.6, 1.0)), -1, cv2.LINE_AA)
                if r.random() < 0.6:
                    hc = np.array(list(_HAIR_COLOURS.values())[int(r.integers(8))], np.float32)
                    cv2.ellipse(img, (int(cx), int(cy - rx * 0.6)), (int(rx * 1.1), int(rx * 0.8)), 0, 180, 360,
                                tuple(float(v) for v in hc), -1, cv2.LINE_AA)
        sig = _u(r, 0.3, 6.0) * min(h, w) / 400
        if kind in ("outdoor", "indoor") or r.random() < 0.5:
            img = _blur(img, sig)
        self.cv.img[:] = np.clip(img, 0, 1)

    # ---------------------------------------------------------------- hair geometry
    def _hair_setup(self):
        r, cfg = self.r_hair, self.cfg
        p = [0.26, 0.16, 0.26, 0.1, 0.12, 0.1] if not self.masc else [0.62, 0.06, 0.06, 0.08, 0.02, 0.16]
        self.hair_style = str(r.choice(HAIR_STYLES, p=p))
        names = list(_HAIR_COLOURS)
        hp = np.array([_HAIR_P[n] for n in names])
        if self.age > 0.8:
            hp[names.index("grey")] += 0.4
            hp[names.index("white")] += 0.2
        hp /= hp.sum()
        self.hair_name = str(r.choice(names, p=hp))
        self.hair_c = np.array(_HAIR_COLOURS[self.hair_name], np.float32) * _u(r, 0.85, 1.15)
        self.brow_c = self.hair_c * 0.7 if self.hair_name not in ("grey", "white", "blonde") else _mix(self.hair_c, (0.3, 0.22, 0.15), 0.5)
        if self.hair_name == "blonde":
            self.brow_c = self.hair_c * 0.6
        self.hairline = _u(r, -1.25, -0.95) if self.hair_style != "buzz" else _u(r, -1.3, -1.05)
        self.recede = 0.0
        if self.masc and r.random() < 0.3 * (0.5 + self.age):
            self.hairline -= _u(r, 0.0, 0.2)  # receding, M-shaped
            self.recede = _u(r, 0.05, 0.25)
        self.vol = {"short": _u(r, 0.07, 0.22), "bob": _u(r, 0.1, 0.2), "long": _u(r, 0.08, 0.2),
                    "curly": _u(r, 0.25, 0.5), "updo": _u(r, 0.03, 0.08), "buzz": _u(r, 0.01, 0.03)}[self.hair_style]
        self.hair_len = {"short": -0.1, "bob": _u(r, 0.9, 1.5), "long": _u(r, 2.2, 4.0), "curly": _u(r, 0.6, 2.2),
                         "updo": -0.2, "buzz": -0.15}[self.hair_style]
        self.part = _u(r, -0.5, 0.5) if r.random() < 0.7 else 0.0
        self.cover_cheek = _u(r, 0.0, 0.15) if self.hair_style in ("long", "bob", "curly") else 0.0
        fringe_ok = self.hair_style in ("short", "bob", "long", "curly")
        fp = cfg.fringe_prob * (0.4 if self.masc and self.hair_style == "short" else 1.0)
        self.fringe = fringe_ok and r.random() < fp
        # drawn whether used or not: the fringe flag does not change the rest
        brow_y = -self.b_gap
        self.fringe_y = brow_y + _u(r, -0.25, 0.12)
        self.fringe_slope = _u(r, -0.25, 0.25) * (r.random() < 0.5)
        self.fringe_jag = _u(r, 0.0, 0.08)
        self.meta.update(hair_style=self.hair_style, hair_color=self.hair_name, fringe=bool(self.fringe))

    def _hair_texture(self, bb, base, crown=(0.0, -2.3), curly=False, amount=1.0):
        """Hair colour field: strands radiating from the crown, clumps and sheen."""
        g, r = self.g, self.r_tex
        X, Y = g.grid(bb)
        h, w = X.shape
        dx, dy = X - crown[0], Y - crown[1]
        rad = np.sqrt(dx * dx + dy * dy)
        if curly:
            # contour bands of smooth noise look like curls / coils
            n1 = _noise(r, h, w, max(2.0, 0.07 * self.scale))
            t = np.sin(n1 * 7.0) * 0.45 + 0.45 * _noise(r, h, w, max(1.0, 0.02 * self.scale))
        else:
            ang = np.arctan2(dx, dy + 1e-3)  # 0 = straight down
            n_str = int(2 * np.pi * self.scale * 1.1 / 2.2) + 8
            tab = r.standard_normal(n_str + 1).astype(np.float32)
            tab = np.convolve(tab, np.ones(2, np.float32) / 2, mode="same")
            tab[-1] = tab[0]
            wob = _noise(r, h, w, max(2.0, 0.3 * self.scale)) * 0.04
            u = ((ang + wob) / (2 * np.pi) + 0.5) * n_str
            u = np.mod(u, n_str)
            i0 = u.astype(np.int32)
            f = u - i0
            t = tab[i0] * (1 - f) + tab[i0 + 1] * f
            t = 0.8 * t + 0.4 * _noise(r, h, w, max(1.5, 0.12 * self.scale))
        # sheen: a soft band at ~0.75 of the head radius, stronger towards the light
        L = self.light
        band = np.exp(-(((rad - _u(r, 1.2, 1.6)) / 0.2) ** 2))
        lit = 0.6 + 0.4 * np.clip((dx * L[0] + dy * L[1]) / (rad + 0.3), -1, 1)
        lum = 1 + 0.3 * amount * t
        shade = np.clip(0.7 + 0.3 * self.ambient + 0.25 * np.clip((dx * L[0] + dy * L[1]) / (rad + 0.5), -1, 1), 0.35, 1.1)
        col = base[None, None, :] * (lum * shade)[..., None]
        hl = _mix(base, (1.0, 0.97, 0.92), 0.45) * _u(r, 0.25, 0.45)
        col = col + hl[None, None, :] * (band * lit * np.clip(0.8 + 0.6 * t, 0, 2))[..., None]
        return col

    def _hair_outer(self):
        """Outer hair silhouette (face units, flat projection) + its 'window' (face)."""
        r = self.r_hair
        st, v = self.hair_style, self.vol
        cy0 = -0.25
        n = 90
        if st in ("short", "buzz", "updo"):
            a = np.linspace(-0.62 * np.pi, 0.62 * np.pi, n)  # angle from top
        else:
            a = np.linspace(-0.5 * np.pi, 0.5 * np.pi, n)
        # skull ellipse around (0, cy0)
        ry = 1.45 + v * 1.1
        if st in ("short", "buzz", "updo"):
            # volume on top, close-cropped above the ears
            rx = self.fw * 1.02 + v * (0.25 + 0.75 * np.cos(np.clip(a, -np.pi / 2, np.pi / 2)) ** 2)
        else:
            rx = self.fw * 1.02 + v
        x = rx * np.sin(a)
        y = cy0 - ry * np.cos(a)
        if st == "curly":
            bump = _noise(r, 1, n, 6)[0] * 0.06 + 0.04 * np.sin(a * 17)
            x = x + np.sin(a) * bump
            y = y - np.cos(a) * bump
        pts = list(np.stack([x, y], 1))
        if st in ("short", "buzz", "updo"):
            # close along the sides just above the ears
            side_y = _u(r, -0.05, 0.2)
            pts.append(np.array([self.fw * 1.0, side_y]))
            pts.append(np.array([self.fw * 0.9, side_y + 0.05]))
            pts.insert(0, np.array([-self.fw * 1.0, side_y]))
            pts.insert(0, np.array([-self.fw * 0.9, side_y + 0.05]))
            outer = np.array(pts)
        else:
            L = self.hair_len
            flare = _u(r, 0.0, 0.35) if st != "bob" else _u(r, -0.05, 0.1)
            k = 12
            yy = np.linspace(cy0 + 0.05, L, k)
            xr = rx + flare * ((yy - cy0) / (L - cy0)) ** 1.5
            if st == "bob":
                xr = xr - 0.2 * _smoothstep(L - 0.5, L, yy)
            right = np.stack([xr, yy], 1)
            # wavy / jagged bottom
            nb = 14
            bx = np.linspace(xr[-1], -xr[-1], nb)
            by = L + 0.05 * np.abs(r.standard_normal(nb)) + (-0.15 if st == "bob" else 0.1) * np.cos(bx / xr[-1] * np.pi / 2)
            if st == "curly":
                right[:, 0] += r.standard_normal(k) * 0.04
            # over the top (left -> right), down the right, along the bottom, up the left
            left = (right * np.array([-1, 1]))[::-1]
            outer = np.concatenate([np.array(pts), right, np.stack([bx, by], 1), left])
        return outer

    def _outer_px(self):
        """The hair silhouette in the image (projected like the face outline)."""
        return self.g.P_outline(self._outer_h, 0.12)

    def _hair_window(self):
        """The part of the head the hair does not cover (forehead and face), face units."""
        hl = self.hairline
        xs = np.linspace(-0.92, 0.92, 40) * self.fw
        # hairline: rounded, dips at the temples, optional widow's peak
        ax_ = np.abs(xs) / self.fw
        y = hl + 0.1 * ax_**2 + 0.42 * _smoothstep(0.5, 1.0, ax_) ** 1.5 + self.recede * np.exp(-(((ax_ - 0.5) / 0.16) ** 2))
        top = np.stack([xs, y], 1)
        side_y = -0.15
        if self.hair_style in ("long", "bob", "curly"):
            c = self.cover_cheek
            yy = np.linspace(y[-1] + 0.05, 6.0, 24)
            wr = self._halfwidth(np.minimum(yy, self.chin_y - 0.3)) * 0.97 - c
            wr = np.maximum(wr, self.neck_w + 0.02)
            right = np.stack([wr, yy], 1)
            left = (right * np.array([-1, 1]))[::-1]
            return left, top, right
        right = np.array([[self.fw * 0.92, side_y], [self.fw * 3, side_y], [self.fw * 3, 8.0]])
        left = (right * np.array([-1, 1]))[::-1]
        return left, top, right

    # ---------------------------------------------------------------- drawing steps
    def _draw_back_hair(self):
        if self.hair_style not in ("long", "bob", "curly"):
            return
        cv, g = self.cv, self.g
        outer = self._outer_px()
        cov, bb = cv.cover(outer)
        if cov is None:
            return
        col = self._hair_texture(bb, self.hair_c * 0.7)
        cv.paint(cov, bb, col, label=HAIR)

    def _draw_body(self):
        cv, g, r = self.cv, self.g, self.r_bg
        nw = self.neck_w
        # neck: top part follows the head, lower part the body
        ys = np.linspace(0.5, 3.4, 12)
        wr = nw * (1 + 0.08 * _smoothstep(1.6, 2.4, ys) + 0.9 * _smoothstep(2.2, 3.4, ys))
        right = np.stack([wr, ys], 1)
        left = (right * np.array([-1, 1]))[::-1]
        pts = np.concatenate([right, left])
        img_pts = np.where((pts[:, 1] < 1.6)[:, None], g.P_flat(pts), g.P_body(pts))
        cov, bb = cv.cover(img_pts)
        if cov is not None:
            col = self._skin_field(bb, self.skin * 0.93, kind="neck")
            X, Y = g.grid(bb)
            yj = self.chin_y - 0.25
            dark = 1 - _u(r, 0.25, 0.5) * np.exp(-np.clip(Y - yj, 0, None) / 0.25) * (Y > yj - 0.5)
            col *= dark[..., None]
            cv.paint(cov, bb, col, label=BG)
        # torso / clothes
        sw = _u(r, 2.0, 2.8) + (0.3 if self.masc else 0)
        top = 2.15 + _u(r, -0.1, 0.2)
        neck_kind = str(r.choice(["v", "round", "high", "collar"], p=[0.3, 0.35, 0.15, 0.2]))
        depth = {"v": _u(r, 0.5, 1.2), "round": _u(r, 0.2, 0.7), "high": -0.4, "collar": _u(r, 0.4, 0.9)}[neck_kind]
        xs = np.linspace(-1, 1, 21)
        if neck_kind == "v" or neck_kind == "collar":
            ny = top + depth * (1 - np.abs(xs))
        else:
            ny = top + depth * np.sqrt(np.clip(1 - xs**2, 0, 1))
        neckline = np.stack([xs * nw * 1.25, ny], 1)
        shoulder = np.array([[nw * 1.3, top - 0.05], [sw * 0.6, top + 0.25], [sw * 0.9, top + 0.55], [sw, top + 1.1], [sw * 1.05, 12.0]])
        lefts = (shoulder * np.array([-1, 1]))[::-1]
        body = np.concatenate([lefts, neckline, shoulder, [[sw * 1.05, 12.0]]])
        body = body[:-1]
        cov, bb = cv.cover(g.P_body(body))
        if cov is not None:
            c = np.array([(0.05, 0.05, 0.07), (0.12, 0.14, 0.25), (0.85, 0.85, 0.83), (0.3, 0.3, 0.32)][int(r.integers(4))], np.float32)
            if r.random() < 0.5:
                c = r.uniform(0.05, 0.9, 3).astype(np.float32)
            X, Y = g.grid(bb)
            hh, ww = X.shape
            tex = 1 + _noise(self.r_tex, hh, ww, max(2.0, 0.3 * self.scale)) * 0.08
            if r.random() < 0.25:
                tex = tex * (1 - 0.35 * (np.sin(Y * _u(r, 8, 25)) > 0.3))
            sh = 0.75 + 0.25 * np.clip(1 - (X / (sw * 1.1)) ** 2, 0, 1) + 0.1 * self.light[0] * X / sw
            cv.paint(cov, bb, c * (tex * sh)[..., None], label=BG)
            if neck_kind == "collar":
                cc = np.array((0.92, 0.92, 0.9), np.float32) * _u(r, 0.8, 1.05) if r.random() < 0.7 else r.uniform(0.1, 0.9, 3).astype(np.float32)
                for s in (-1, 1):
                    flap = np.array([[0.0, top + depth], [s * nw * 1.35, top - 0.15], [s * nw * 1.55, top + 0.35], [s * 0.2, top + depth + 0.15]])
                    c2, b2 = cv.cover(g.P_body(flap))
                    if c2 is not None:
                        cv.paint(c2, b2, cc * _u(r, 0.85, 1.0), label=BG)

    def _draw_ears(self):
        cv, g = self.cv, self.g
        for s in (-1, 1):
            far = s * g.syaw > 0.05
            if far and abs(g.yaw) > math.radians(12):
                continue
            t = np.linspace(0, 1, 24)
            ytop, ybot = _u(self.r_id, -0.22, -0.08), _u(self.r_id, 0.45, 0.62)
            y = ytop + (ybot - ytop) * t
            ext = 0.2 * np.sin(np.pi * np.clip(t * 1.05, 0, 1)) ** 0.6 * (1 - 0.35 * t) + 0.02
            base = self._halfwidth(y) * 0.96
            outer = np.stack([s * (base + ext), y], 1)
            inner = np.stack([s * (base - 0.12), y], 1)[::-1]
            pts = np.concatenate([outer, inner])
            zo = -0.12 - 0.35 * np.concatenate([ext, np.zeros_like(ext)])
            ipts = g._sim(np.stack([pts[:, 0] * g.cyaw + zo * g.syaw, pts[:, 1]], 1))
            cov, bb = cv.cover(ipts)
            if cov is None:
                continue
            col = self._skin_field(bb, self.skin * 0.95)
            cv.paint(cov, bb, col, label=BG)
            # concha shadow
            cc = np.stack([s * (base + 0.5 * ext), y], 1)[4:-6]
            cpts = g._sim(np.stack([cc[:, 0] * g.cyaw - 0.25 * g.syaw, cc[:, 1]], 1))
            c2, b2 = cv.soft(_stroke(cpts, 0.035 * self.scale), 0.02 * self.scale)
            if c2 is not None:
                cv.paint(c2 * crop_to_box(b2, bb, cov), b2, self.skin * 0.55, alpha=0.6)

    def _draw_face(self):
        cv = self.cv
        self._outline_px = self._outline()
        cov, bb = cv.cover(self._outline_px)
        self._face_bb = bb
        col = self._skin_field(bb, self.skin)
        cv.paint(cov, bb, col, label=SKIN)

    def _face_soft(self, pts, sigma, colour=None, mult=None, strength=1.0, dz=0.0, mask_face=True):
        """A soft shading blob on the face (picture only). pts in face units."""
        cv, g = self.cv, self.g
        c, bb = cv.soft(g.P(pts, dz), sigma * self.scale)
        if c is None:
            return
        a = c * strength
        if mask_face:
            ys, xs = cv.sl(bb)
            a = a * np.clip(cv.lab[SKIN, ys, xs] + cv.lab[NOSE, ys, xs], 0, 1)
        if mult is not None:
            cv.shade(bb, 1 + (mult - 1) * a)
        else:
            cv.paint(a, bb, colour)

    def _face_details(self):
        """Picture-only modelling of the face: sockets, nose sides, cheeks, chin."""
        L = self.light
        lx = float(L[0])
        for s in (-1, 1):
            # eye sockets (darker towards the nose bridge and under the brow)
            self._face_soft(_ellipse_pts(s * (self.ex - 0.05), -0.04, self.ew * 1.3, self.eh * 2.4), 0.07, mult=0.72 - 0.12 * (1 - self.ambient))
            # under-eye
            self._face_soft(_ellipse_pts(s * self.ex, 0.12, self.ew * 0.9, 0.04), 0.04, mult=0.93 - 0.05 * self.age)
            # nose side shadows, stronger on the side away from the light
            side = 0.7 + 0.25 * (1 - self.ambient) - 0.12 * s * lx * (-1)
            yy = np.linspace(self.n_top + 0.05, self.n_base - 0.12, 8)
            xx = s * (self.n_bridge + 0.02 + 0.08 * ((yy - yy[0]) / (yy[-1] - yy[0])) ** 2)
            self._face_soft(_stroke(np.stack([xx, yy], 1), 0.035), 0.035, mult=side, dz=0.05)
            # cheek: blush / cheekbone
            if self.makeup:
                self._face_soft(_ellipse_pts(s * 0.55, 0.35, 0.2, 0.12), 0.1, colour=(0.85, 0.4, 0.4), strength=0.18)
            else:
                self._face_soft(_ellipse_pts(s * 0.5, 0.4, 0.2, 0.13), 0.1, colour=self.skin * np.array([1.05, 0.85, 0.85]), strength=0.12)
            # nasolabial folds
            if self.age > 0.35 or (self.mouth_open and self.gap < 0.12):
                t = np.linspace(0, 1, 8)
                fx = s * (self.n_ala + 0.04 + (self.mw - self.n_ala + 0.05) * t)
                fy = self.n_base - 0.08 + (self.m_y - self.n_base + 0.12) * t**0.8
                self._face_soft(_stroke(np.stack([fx, fy], 1), 0.012), 0.02, mult=0.82, strength=0.6 + 0.4 * self.age)
        # under the nose / philtrum and under the lower lip
        self._face_soft(_ellipse_pts(0, self.n_base + 0.05, 0.14, 0.04), 0.03, mult=0.85)
        lo = self.m_y + self.gap + self.lh + 0.06
        self._face_soft(_ellipse_pts(0, lo, self.mw * 0.55, 0.04), 0.04, mult=0.85)
        # forehead wrinkles for older people
        if self.age > 0.75:
            for k in range(3):
                yy = self.hairline + 0.3 + k * 0.09
                xs = np.linspace(-0.45, 0.45, 10)
                pts = np.stack([xs, yy + 0.03 * np.cos(xs * 3)], 1)
                self._face_soft(_stroke(pts, 0.006), 0.012, mult=0.88)

    def _draw_side_hair(self):
        cv, g = self.cv, self.g
        outer = self._outer_px()
        # the window: the hairline lies on the face surface (follows the yaw like the
        # features), its sides follow the outline
        left, top, right = self._hair_window()
        sides = [g.P_outline(q, self._outline_zo(q[:, 1])) for q in (left, right)]
        wp = np.concatenate([sides[0], g.P(top, 0.02), sides[1]])
        cov_o, bb = cv.cover(outer)
        if cov_o is None:
            return
        cov_w, _ = cv.cover(wp, bb=bb)
        cov = cov_o * (1 - cov_w)
        if self.hair_style == "buzz":
            # close-cropped: dark dotted stubble over the scalp, skin shows through
            col = self._hair_texture(bb, self.hair_c * 0.8, curly=True, amount=1.5)
            h, w = cov.shape
            dots = np.clip(_noise(self.r_tex, h, w, max(1.0, 0.008 * self.scale)) + 0.6, 0.2, 1)
            cv.paint(cov, bb, col, alpha=_u(self.r_hair, 0.7, 0.9) * dots)
            cv.paint(cov, bb, None, label=HAIR)
            return
        col = self._hair_texture(bb, self.hair_c, curly=self.hair_style == "curly")
        cv.paint(cov, bb, col, label=HAIR)
        if self.hair_style == "updo":
            r = self.r_hair
            bun = _ellipse_pts(_u(r, -0.3, 0.3), -1.75 - self.vol, _u(r, 0.3, 0.45), _u(r, 0.22, 0.32))
            c2, b2 = cv.cover(g.P_flat(bun))
            if c2 is not None:
                cv.paint(c2, b2, self._hair_texture(b2, self.hair_c * 0.9), label=HAIR)

    def _brow_pts(self, s):
        u = np.linspace(0, 1, 20)
        x = s * (self.b_in + (self.b_out - self.b_in) * u)
        y_in = -self.b_gap + 0.02
        y_out = -self.b_gap + 0.0 + _u(self.r_id, -0.03, 0.04)
        y = y_in + (y_out - y_in) * u - self.b_arch * np.sin(np.pi * u**1.45) - 0.03 * u
        hw = self.b_th * 0.5 * ((1 - u) + self.b_tail * u) * (1 - 0.35 * (u < 0.08) * (1 - u / 0.08))
        hw = np.maximum(hw, 0.006)
        return _stroke(np.stack([x, y], 1), hw)

    def _draw_brows(self):
        cv, g = self.cv, self.g
        self._brow_cov = {}
        for s, lab in ((-1, LBROW), (1, RBROW)):
            poly = self._brow_pts(s)
            pp = g.P(poly, 0.02)
            cov, bb = cv.cover(pp, pad=2)
            if cov is None:
                continue
            h, w = cov.shape
            ang = math.atan2(g.sr, g.cr) + s * 0.25
            tex = _aniso_noise(self.r_tex, h, w, max(2.0, 0.08 * self.scale), max(1.0, 0.012 * self.scale), ang)
            dens = _u(self.r_id, 0.55, 0.9) if not self.masc else _u(self.r_id, 0.7, 0.95)
            soft = cv2.GaussianBlur(cov, (0, 0), max(0.4, 0.008 * self.scale))
            alpha = np.clip(soft * dens * (0.85 + 0.5 * tex), 0, 1)
            cv.paint(np.ones_like(cov), bb, self.brow_c, alpha=alpha)
            cv.paint(cov, bb, None, label=lab)
            self._brow_cov[lab] = (cov, bb)

    def _eye_curves(self, s, openness, n=28):
        u = np.linspace(-1, 1, n)
        x = s * (self.ex + u * self.ew)
        tilt = -self.tilt * u  # outer corner higher
        up = -self.eh * openness * (1 - u**2) ** 0.65 * (1 - 0.22 * u)
        lo = self.eh * self.e_low * openness * (1 - u**2) ** 0.85 * (1 + 0.18 * u)
        return u, x, up + tilt, lo + tilt

    def _draw_eyes(self):
        cv, g = self.cv, self.g
        for s, lab, op in ((-1, LEYE, self.open_l), (1, REYE, self.open_r)):
            u, x, yu, yl = self._eye_curves(s, op)
            if op == 0.0:
                # closed: lash line sliver; lid over the eye
                yc = 0.35 * self.eh * self.e_low * (1 - u**2) ** 0.85 - self.tilt * u
                th = max(0.6 / self.scale, 0.006)
                line = _stroke(np.stack([x, yc], 1), th * (1 - 0.7 * u**4))
                pl = g.P(line, -0.03)
                cov, bb = cv.cover(pl, pad=2)
                if cov is None:
                    continue
                cv.paint(cov, bb, None, label=lab)
                lash = _stroke(np.stack([x, yc + 0.004], 1), 0.016 * (1 - 0.6 * u**2))
                c2, b2 = cv.soft(g.P(lash, -0.03), 0.008 * self.scale)
                if c2 is not None:
                    cv.paint(c2, b2, (0.05, 0.04, 0.04), alpha=0.85)
                crease = _stroke(np.stack([x * 0.98, -0.35 * self.eh + 0.0 * u - self.tilt * u], 1), 0.01)
                self._face_soft(crease, 0.015, mult=0.85)
                continue
            poly = np.concatenate([np.stack([x, yu], 1), np.stack([x, yl], 1)[::-1][1:-1]])
            pp = g.P(poly, -0.04)
            cov, bb = cv.cover(pp, pad=3)
            if cov is None:
                continue
            X, Y = g.grid(bb)
            ctr = g.view(np.array([[s * self.ex, 0.0]]), -0.04)[0]
            ewv = self.ew * (g.cyaw if s * g.syaw <= 0 else g.cyaw * 0.9)
            uu = (X - ctr[0]) / max(ewv, 1e-3) * s
            vv = (Y - ctr[1]) / (self.eh * max(op, 0.2))
            scl = np.array([0.88, 0.85, 0.83], np.float32) * (0.6 + 0.4 * self.ambient)
            shade = (1 - 0.35 * np.clip(np.abs(uu), 0, 1) ** 3) * (1 - 0.35 * np.exp(-np.clip(vv + 1.0, 0, None) * 2.5))
            col = scl[None, None, :] * shade[..., None]
            # pinkish caruncle at the inner corner
            car = np.exp(-(((uu + 0.92) / 0.1) ** 2) - (vv / 0.5) ** 2)
            col = col * (1 - car[..., None]) + (np.array([0.75, 0.45, 0.45], np.float32) * car[..., None])
            cv.paint(cov, bb, col, label=lab)
            # iris
            gx, gy = self.gaze
            ic = np.array([[s * self.ex + gx * self.ew * 0.35, gy * self.eh - 0.1 * self.eh]])
            ipoly = _ellipse_pts(ic[0, 0], ic[0, 1], self.iris_r, self.iris_r, 40)
            ci, bi = cv.cover(g.P(ipoly, -0.02), bb=bb)
            icv = g.view(ic, -0.02)[0]
            dx, dy = X - icv[0], Y - icv[1]
            rr = np.sqrt(dx * dx + dy * dy) / self.iris_r
            an = np.arctan2(dy, dx)
            streak = np.sin(an * 23 + 3 * np.sin(an * 7)) * 0.08 + np.sin(an * 41) * 0.05
            ring = np.clip((rr - 0.8) / 0.2, 0, 1)
            iris = self.iris_c[None, None, :] * (1 + streak + 0.25 * (0.6 - rr).clip(0))[..., None]
            iris = iris * (1 - 0.6 * ring)[..., None]
            pup = _smoothstep(0.42, 0.32, rr)
            iris = iris * (1 - pup[..., None]) + np.float32(0.03) * pup[..., None]
            # top of the iris in the lid's shadow
            iris *= (1 - 0.4 * np.exp(-np.clip(vv + 1.0, 0, None) * 2.0))[..., None]
            a = ci * cov
            cv.paint(a, bb, iris)
            # catch light
            hlx, hly = icv[0] - 0.35 * self.iris_r * (0.5 + self.light[0]), icv[1] - 0.35 * self.iris_r
            hl = np.exp(-(((X - hlx) ** 2 + (Y - hly) ** 2) / (0.18 * self.iris_r) ** 2))
            cv.paint(hl * cov, bb, (1, 1, 1), alpha=0.85)
            # upper lid: lashes / liner (inside and above the lid margin)
            liner = 0.016 + (0.012 if self.makeup else 0.0)
            wing = 0.03 if self.makeup else 0.0
            ul = np.stack([x, yu - liner * 0.3], 1)
            ul = np.concatenate([ul, [[s * (self.ex + self.ew + wing), yu[-1] - 0.012 - wing * 0.5]]])
            hw = liner * (0.3 + 0.7 * np.sin(np.pi * np.linspace(0.05, 1, len(ul))) ** 0.5)
            c2, b2 = cv.soft(g.P(_stroke(ul, hw), -0.03), 0.004 * self.scale)
            if c2 is not None:
                cv.paint(c2, b2, (0.04, 0.03, 0.03), alpha=0.9)
            # lower lid margin
            ll = np.stack([x, yl + 0.004], 1)
            c3, b3 = cv.soft(g.P(_stroke(ll, 0.006), -0.03), 0.006 * self.scale)
            if c3 is not None:
                cv.paint(c3, b3, self.skin * 0.55, alpha=0.5)
            # eyelid crease and make-up
            cr = np.stack([x * 1.0, yu - self.eh * _u(self.r_id, 0.45, 0.8) - 0.015 * (1 - u**2)], 1)[3:]
            self._face_soft(_stroke(cr, 0.008), 0.012, mult=0.8)
            if self.makeup:
                lid = np.concatenate([np.stack([x, yu], 1), np.stack([x, yu - self.eh * 1.3 * (1 - u**2) ** 0.5 - 0.02], 1)[::-1]])
                self._face_soft(lid, 0.02, colour=self.shadow_c, strength=0.3)

    def _nose_poly(self):
        top, base, nb, ab = self.n_top, self.n_base, self.n_bridge, self.n_ala
        ya = base - 0.1  # widest (alae)
        ys = np.linspace(top, ya, 14)
        w = nb + (ab - nb) * _smoothstep(top + 0.45 * (ya - top), ya, ys) ** 1.3
        right = np.stack([w, ys], 1)
        t = np.linspace(0, np.pi / 2, 10)[1:]
        c, s_ = np.cos(t), np.sin(t)
        arc = np.stack([ab * np.sign(c) * np.abs(c) ** 0.8, ya + (base - ya) * np.abs(s_) ** 0.7], 1)
        half = np.concatenate([right, arc])
        left = (half * np.array([-1, 1]))[::-1]
        poly = np.concatenate([half, left[1:]])
        # depth bump: protrudes towards the tip
        yy = poly[:, 1]
        tip = 0.22 * _smoothstep(top, ya, yy) * (1 - 0.5 * (np.abs(poly[:, 0]) / ab) ** 2)
        return poly, tip

    def _draw_nose(self):
        cv, g = self.cv, self.g
        poly, dz = self._nose_poly()
        pv = g.view(poly, 0.0)
        pv[:, 0] += dz * g.syaw
        pp = g._sim(pv)
        cov, bb = cv.cover(pp, pad=2)
        if cov is None:
            return
        cv.paint(cov, bb, None, label=NOSE)
        base, ab = self.n_base, self.n_ala
        L = self.light
        self._nose_shading(pp, poly)
        # tip highlight, bridge highlight
        self._face_soft(_ellipse_pts(0, base - 0.1, 0.07, 0.06), 0.04, colour=(1, 1, 1), strength=0.08 + 0.2 * self.spec, dz=0.2, mask_face=False)
        self._face_soft(_stroke(np.array([[0, self.n_top + 0.1], [0, base - 0.18]]), 0.015), 0.02, colour=(1, 1, 1), strength=0.06, dz=0.12)
        for s in (-1, 1):
            # alar crease
            t = np.linspace(-0.4, 1.4, 12)
            ax_ = s * (ab - 0.07 + 0.06 * np.cos(t))
            ay = base - 0.1 - 0.07 * np.sin(t)
            self._face_soft(_stroke(np.stack([ax_, ay], 1), 0.01), 0.015, mult=0.72 - 0.05 * s * L[0] * -1, dz=0.06)
            # nostril
            nos = _ellipse_pts(s * 0.075, base - 0.035, 0.05, 0.022, 24, rot=s * 0.35)
            c2, b2 = cv.soft(g.P(nos, 0.1), 0.008 * self.scale)
            if c2 is not None:
                cv.paint(c2, b2, self.skin * 0.22, alpha=0.85)

    def _nose_shading(self, pp, poly):
        """Shade the nose as a ridge with a ball tip and a downward-facing underside."""
        cv, g, L = self.cv, self.g, self.light
        top, base, ab = self.n_top, self.n_base, self.n_ala
        cov, bb = cv.cover(pp, pad=0.12 * self.scale)
        if cov is None:
            return
        X, Y = g.grid(bb)
        yc = np.linspace(top - 0.1, base + 0.1, 24)
        tipz = 0.22 * _smoothstep(top, base - 0.1, yc)
        axis = g.view(np.stack([np.zeros_like(yc), yc], 1), tipz)
        half = poly[: len(poly) // 2]
        wprof = np.interp(yc, half[:, 1], np.abs(half[:, 0]), left=self.n_bridge, right=ab * 0.5)
        ax = np.interp(Y, axis[:, 1], axis[:, 0])
        wn = np.interp(Y, yc, wprof) * g.cyaw + 1e-3
        xn = (X - ax) / wn
        nx = np.clip(xn, -1.3, 1.3) * 0.62
        ny = np.full_like(X, -0.12)
        tipy, rt = base - 0.11, ab * 0.55
        bx, by = (X - ax) / rt, (Y - tipy) / (rt * 0.85)
        ball = np.clip(1 - bx * bx - by * by, 0, 1)
        wb = _smoothstep(0.0, 0.35, ball)
        nx = nx * (1 - wb) + bx * 0.75 * wb
        ny = ny * (1 - wb) + by * 0.75 * wb
        under = _smoothstep(base - 0.06, base + 0.0, Y) * (np.abs(xn) < 1.1)
        ny = ny * (1 - under) + 0.85 * under
        nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0.04, 1))
        lam = np.clip((nx * L[0] + ny * L[1] + nz * L[2]) * 0.8 + 0.2, 0, 1)
        amb = self.ambient
        ref = amb + (1 - amb) * (L[2] * 0.8 + 0.2)
        shade = (amb + (1 - amb) * lam) / ref
        m = cv2.GaussianBlur(cov, (0, 0), max(0.6, 0.035 * self.scale))
        m = np.clip(m * 1.6, 0, 1) * (Y > axis[0, 1] + 0.05)
        cv.shade(bb, 1 + (np.clip(shade, 0.35, 1.35) - 1) * m)

    def _lip_curves(self, n=41):
        u = np.linspace(-1, 1, n)
        x = u * self.mw
        ys = self.m_y - self.smile * u**2 + 0.012 * np.exp(-((u / 0.25) ** 2))
        prof = (1 - np.abs(u) ** 2.2) ** 0.6
        hu = self.uh * prof * (1 + 0.15 * np.exp(-(((np.abs(u) - 0.24) / 0.12) ** 2)) - self.bow * np.exp(-((u / 0.1) ** 2)))
        o = self.gap * (1 - u**2) ** 0.75
        y_ut = ys - 0.3 * o - hu
        y_ui = ys - 0.3 * o
        y_li = ys + 0.7 * o
        y_lb = y_li + self.lh * (1 - u**2) ** 0.6
        return u, x, y_ut, y_ui, y_li, y_lb

    def _draw_mouth(self):
        cv, g = self.cv, self.g
        u, x, y_ut, y_ui, y_li, y_lb = self._lip_curves()
        dz = 0.05 * (1 - u**2)

        def proj(xs, ys, d):
            return g.P(np.stack([xs, ys], 1), d)

        outer = np.concatenate([proj(x, y_ut, dz), proj(x, y_lb, dz)[::-1][1:-1]])
        cov, bb = cv.cover(outer, pad=3)
        if cov is None:
            return
        X, Y = g.grid(bb)
        lip = self.lip_c if self.lipstick is None else self.lipstick
        # colour field: lower lip lighter (faces up), upper darker, vertical fine lines
        yl = g.view(np.array([[0.0, self.m_y]]), 0.05)[0, 1]
        below = _smoothstep(yl - 0.01, yl + 0.02, Y)
        shade = (0.78 + 0.3 * below) * (0.65 + 0.35 * self.ambient + 0.2)
        lines = 1 + 0.05 * np.sin(X * 180.0) * (self.lipstick is None)
        col = lip[None, None, :] * (shade * lines)[..., None]
        # highlight on the lower lip
        hly = g.view(np.array([[0.0, self.m_y + self.gap * 0.7 + self.lh * 0.4]]), 0.05)[0]
        hl = np.exp(-(((X - hly[0]) / (self.mw * 0.35)) ** 2) - ((Y - hly[1]) / (self.lh * 0.25)) ** 2)
        col = col + (0.12 + 0.25 * (self.lipstick is not None)) * hl[..., None]
        soft = cv2.GaussianBlur(cov, (0, 0), max(0.5, 0.006 * self.scale))
        cv.paint(soft, bb, col, alpha=0.93)
        cv.paint(cov, bb, None, label=LLIP)
        ext = 0.15  # extend sub-regions upwards (they only move lip mass)
        if self.mouth_open:
            im = np.concatenate([proj(x, y_ut - ext, dz), proj(x, y_li, dz)[::-1][1:-1]])
            cim, _ = cv.cover(im, bb=bb)
            cv.move(cim, bb, [LLIP], IMOUTH)
            # inner mouth picture: dark cavity, teeth, tongue
            opening = np.concatenate([proj(x, y_ui, dz), proj(x, y_li, dz)[::-1][1:-1]])
            co, _ = cv.cover(opening, bb=bb)
            yu_v = np.interp(X, g.view(np.stack([x, y_ui], 1), dz)[:, 0], g.view(np.stack([x, y_ui], 1), dz)[:, 1])
            yl_v = np.interp(X, g.view(np.stack([x, y_li], 1), dz)[:, 0], g.view(np.stack([x, y_li], 1), dz)[:, 1])
            depth = np.clip((Y - yu_v) / np.maximum(yl_v - yu_v, 1e-3), 0, 1)
            cav = np.array([0.18, 0.05, 0.06], np.float32) * (0.5 + 0.5 * np.abs(depth - 0.5))[..., None]
            cv.paint(co, bb, cav)
            tooth_h = min(0.065, self.gap * _u(self.r_expr, 0.4, 0.8)) * (self.r_expr.random() > 0.15)
            teeth_w = self.mw * _u(self.r_expr, 0.7, 0.9) * g.cyaw
            mcx = g.view(np.array([[0.0, self.m_y]]), 0.05)[0, 0]
            tw = np.abs(X - mcx) / teeth_w
            inner_t = (Y - yu_v < tooth_h * (1 - 0.4 * tw**2)) & (tw < 1)
            gaps = np.abs(np.sin(np.pi * ((X - mcx) / (0.085 * g.cyaw) + 0.5)))
            tc = np.array([0.86, 0.82, 0.72], np.float32) * (0.6 + 0.25 * self.ambient) * (1 - 0.45 * tw.clip(0, 1) ** 2)[..., None]
            tc = tc * (0.75 + 0.25 * np.clip(gaps * 3, 0, 1))[..., None] * (0.85 + 0.15 * (Y - yu_v < tooth_h * 0.6))[..., None]
            cv.paint(co * inner_t.astype(np.float32), bb, tc)
            if self.gap > 0.1 and self.r_expr.random() < 0.6:
                tongue = (depth > _u(self.r_expr, 0.55, 0.75)) & (tw < 0.85)
                cv.paint(co * tongue * 0.9, bb, np.array([0.7, 0.3, 0.32], np.float32) * (0.6 + 0.3 * self.ambient))
            elif self.gap > 0.05 and self.r_expr.random() < 0.5:
                low_t = (yl_v - Y < tooth_h * 0.6) & (tw < 0.8)
                cv.paint(co * low_t, bb, tc * 0.9)
        else:
            # lip line
            line = np.stack([x * 0.98, (y_ui + y_li) / 2], 1)
            c2, b2 = cv.soft(g.P(_stroke(line, 0.007 * (1 - 0.5 * u**2)), 0.05), 0.006 * self.scale)
            if c2 is not None:
                cv.paint(c2, b2, lip * 0.3, alpha=0.8)
        upper = np.concatenate([proj(x, y_ut - ext, dz), proj(x, y_ui, dz)[::-1][1:-1]])
        cu, _ = cv.cover(upper, bb=bb)
        cv.move(cu, bb, [LLIP, IMOUTH], ULIP)
        # upper lip darker (faces down)
        cv.shade(bb, 1 - 0.12 * cu * cov)

    def _draw_facial_hair(self):
        if not self.masc:
            self.meta["facial_hair"] = "none"
            return
        r = self.r_id
        if r.random() >= self.cfg.facial_hair_prob:
            self.meta["facial_hair"] = "none"
            return
        kind = str(r.choice(["stubble", "moustache", "beard", "goatee"], p=[0.35, 0.15, 0.35, 0.15]))
        self.meta["facial_hair"] = kind
        cv, g = self.cv, self.g
        c = self.hair_c if self.hair_name not in ("blonde",) else self.hair_c * 0.7
        dens = {"stubble": _u(r, 0.15, 0.35), "moustache": _u(r, 0.7, 0.95), "beard": _u(r, 0.65, 0.95), "goatee": _u(r, 0.7, 0.95)}[kind]
        u, x, y_ut, y_ui, y_li, y_lb = self._lip_curves()
        polys = []
        if kind in ("stubble", "beard"):
            y0 = _u(r, 0.0, 0.2)
            ys = np.linspace(y0, self.chin_y, 20)
            w = self._halfwidth(ys) * 1.03
            right = np.stack([w, ys], 1)
            below = np.stack([np.linspace(w[-1], -w[-1], 5), np.full(5, self.chin_y + _u(r, 0.02, 0.12))], 1)
            cheek = _u(r, 0.4, 0.6)
            inner_r = np.array([[self.fw * 0.8, y0 + 0.05], [0.72, cheek], [self.mw + 0.12, self.m_y - 0.15], [self.n_ala * 1.05, self.n_base + 0.03], [0.0, self.n_base + 0.05]])
            inner_l = (inner_r * np.array([-1, 1]))[::-1]
            poly = np.concatenate([right, below, (right * np.array([-1, 1]))[::-1], inner_l[1:], inner_r[::-1][1:-1]])
            polys.append(poly)
        if kind in ("moustache", "goatee"):
            mx = np.linspace(-self.mw * 1.05, self.mw * 1.05, 15)
            my = np.interp(mx, x, y_ut) - 0.035 - 0.02 * (1 - (mx / self.mw) ** 2)
            polys.append(_stroke(np.stack([mx, my], 1), 0.045 * (1 - 0.5 * (mx / self.mw) ** 2)))
        if kind == "goatee":
            polys.append(_ellipse_pts(0, self.chin_y - 0.12, self.mw * 0.6, 0.18))
        for poly in polys:
            pp = g.P_outline(poly, self._outline_zo(poly[:, 1]) * 0.0 + g.depth(poly[:, 0], poly[:, 1]) * 0.9)
            cov, bb = cv.cover(pp, pad=3)
            if cov is None:
                continue
            h, w = cov.shape
            soft = cv2.GaussianBlur(cov, (0, 0), max(0.6, 0.03 * self.scale))
            # keep the lips clear (labels stay exact: facial hair is face skin)
            lipmask = np.zeros_like(cov)
            ys_, xs_ = cv.sl(bb)
            for cl in (ULIP, LLIP, IMOUTH, NOSE):
                if cl in cv.used:
                    lipmask += cv.lab[cl, ys_, xs_]
            if kind == "stubble":
                tex = np.clip(_noise(self.r_tex, h, w, max(1.0, 0.006 * self.scale)) * 1.5 + 0.5, 0, 1)
            else:
                ang = math.atan2(g.cr, -g.sr)  # image direction of the face's "down"
                tex = _aniso_noise(self.r_tex, h, w, max(2.0, 0.06 * self.scale), max(1.0, 0.01 * self.scale), ang)
                tex = np.clip(tex * 1.3 + 0.55, 0, 1)
            a = np.clip(soft * dens * (0.45 + 0.7 * tex), 0, 1) * np.clip(1 - 3 * lipmask, 0, 1)
            cv.paint(np.ones_like(cov), bb, c * (0.6 + 0.6 * tex[..., None]), alpha=a)

    def _draw_fringe(self):
        if not self.fringe:
            self.meta["brows_covered"] = False
            return
        cv, g, r = self.cv, self.g, self.r_hair
        xs = np.linspace(-self.fw * 1.05, self.fw * 1.05, 48)
        yb = self.fringe_y + self.fringe_slope * xs + 0.05 * (np.abs(xs) / self.fw) ** 2
        if self.fringe_jag > 0:
            jag = np.abs(np.sin(xs * _u(r, 10, 25))) * self.fringe_jag
            yb = yb + jag
        # the fringe hangs from the crown to yb, within the skull
        top = np.stack([xs[::-1], np.full(48, -1.6)], 1)
        pts = np.concatenate([np.stack([xs, yb], 1), top])
        # clip to the outer hair width
        pts[:, 0] = np.clip(pts[:, 0], -self.fw * 1.0, self.fw * 1.0)
        pp = g.P(pts, 0.05)
        cov, bb = cv.cover(pp, pad=2)
        if cov is None:
            return
        cov_o, _ = cv.cover(self._outer_px(), bb=bb)
        cov = cov * cov_o
        before = {}
        for lab in (LBROW, RBROW):
            if lab in self._brow_cov:
                c0, b0 = self._brow_cov[lab]
                before[lab] = float(cv.lab[lab][cv.sl(b0)].sum())
        col = self._hair_texture(bb, self.hair_c, crown=(self.part * 0.5, -2.0), curly=self.hair_style == "curly")
        # fringe shadow on the forehead below
        sh, sb = cv.soft(pp + np.array([0, 0.03 * self.scale]), 0.03 * self.scale)
        if sh is not None:
            cv.shade(sb, 1 - 0.35 * sh)
        soft = cv2.GaussianBlur(cov, (0, 0), max(0.4, 0.004 * self.scale))
        cv.paint(soft, bb, col)
        cv.paint(cov, bb, None, label=HAIR)
        covered = False
        for lab, v in before.items():
            c0, b0 = self._brow_cov[lab]
            after = float(cv.lab[lab][cv.sl(b0)].sum())
            if v > 0 and after < 0.9 * v:
                covered = True
        self.meta["brows_covered"] = covered

    def _draw_glasses(self):
        cv, g, r = self.cv, self.g, self.r_acc
        self.meta["glasses"] = False
        if r.random() >= self.cfg.glasses_prob:
            return
        self.meta["glasses"] = True
        gw, gh = _u(r, 0.26, 0.33), _u(r, 0.15, 0.23)
        pw = _u(r, 2.2, 6.0)
        th = _u(r, 0.012, 0.05)
        gy = _u(r, -0.04, 0.03)
        frame_c = np.array([(0.05, 0.05, 0.05), (0.35, 0.2, 0.1), (0.7, 0.65, 0.55), (0.55, 0.1, 0.1), (0.2, 0.2, 0.4)][int(r.integers(5))], np.float32)
        tint = r.uniform(0.85, 1.0, 3).astype(np.float32)
        gcx = self.ex + _u(r, -0.02, 0.03)
        rings, lenses = [], []
        for s in (-1, 1):
            outer = _ellipse_pts(s * gcx, gy, gw + th, gh + th, 56, p=pw)
            inner = _ellipse_pts(s * gcx, gy, gw, gh, 56, p=pw)
            rings.append((g.P(outer, 0.12), g.P(inner, 0.12)))
            lenses.append(g.P(inner, 0.12))
        bridge = _stroke(np.array([[-gcx + gw * 0.9, gy - gh * 0.3], [0, gy - gh * 0.45], [gcx - gw * 0.9, gy - gh * 0.3]]), th * 0.6)
        temples = []
        for s in (-1, 1):
            tp = np.array([[s * (gcx + gw), gy - gh * 0.4], [s * self.fw * 1.0, gy - gh * 0.3]])
            temples.append(g.P_outline(_stroke(tp, th * 0.5), 0.1 + 0.0 * np.arange(4)))
        all_pts = [p for pair in rings for p in pair] + [g.P(bridge, 0.14)] + temples
        bb = cv.bbox(all_pts, pad=3)
        if bb is None:
            return
        frame = np.zeros((bb[3] - bb[1], bb[2] - bb[0]), np.float32)
        for o, i in rings:
            co, _ = cv.cover(o, bb=bb)
            ci, _ = cv.cover(i, bb=bb)
            frame = np.maximum(frame, co * (1 - ci))
        for p in [g.P(bridge, 0.14)] + temples:
            cp, _ = cv.cover(p, bb=bb)
            frame = np.maximum(frame, cp)
        # lenses: tint and a reflection (eyes stay visible: labels unchanged)
        X, Y = g.grid(bb)
        refl = np.clip(np.sin((X + Y * _u(r, 0.5, 1.5)) * _u(r, 3, 8) + _u(r, 0, 6)), 0, 1) ** 3 * _u(r, 0.05, 0.25)
        for lp in lenses:
            cl, _ = cv.cover(lp, bb=bb)
            ys, xs = cv.sl(bb)
            cv.img[ys, xs] = cv.img[ys, xs] * (1 - cl[..., None] * (1 - tint)) + (cl * refl)[..., None] * 0.9
        cv.paint(frame, bb, frame_c * (0.8 + 0.4 * np.clip(refl * 4, 0, 1))[..., None])
        # frames on the face read as face skin (they hide the brows / eyes / nose)
        cv.move(frame, bb, [LBROW, RBROW, LEYE, REYE, NOSE], SKIN)

    def _draw_hat(self):
        cv, g, r = self.cv, self.g, self.r_acc
        self.meta["hat"] = False
        if r.random() >= self.cfg.hat_prob:
            return
        self.meta["hat"] = True
        low = self.hairline + _u(r, -0.15, 0.25)
        rx = self.fw * 1.08 + self.vol * 0.5
        a = np.linspace(-np.pi / 2, np.pi / 2, 40)
        crown = np.stack([rx * np.sin(a), low - (low + 1.75 + _u(r, 0.1, 0.4)) * np.cos(a) ** 0.8], 1)
        poly = np.concatenate([crown, [[rx, low + 0.05], [-rx, low + 0.05]]])
        polys = [g.P_flat(poly)]
        if r.random() < 0.5:  # brim
            polys.append(g.P_flat(_ellipse_pts(0, low, rx * _u(r, 1.1, 1.6), _u(r, 0.08, 0.2))))
        col = r.uniform(0.03, 0.9, 3).astype(np.float32)
        cov, bb = cv.cover(polys, pad=2)
        if cov is None:
            return
        X, Y = g.grid(bb)
        sh = 0.7 + 0.3 * np.clip(1 - (X / rx) ** 2, 0, 1) + 0.05 * _noise(self.r_tex, *cov.shape, max(1.0, 0.05 * self.scale))
        cv.paint(cov, bb, col * sh[..., None], label=BG)

    def _draw_occluder(self):
        cv, g, r = self.cv, self.g, self.r_occ
        self.meta.update(occluder="none", occluder_target="none", occluder_x0=-1, occluder_y0=-1, occluder_x1=-1, occluder_y1=-1)
        if r.random() >= self.cfg.occluder_prob:
            return
        kind = "hand" if r.random() < self.cfg.hand_fraction else "block"
        targets = {
            "mouth": (0.0, self.m_y),
            "chin": (0.0, self.chin_y - 0.2),
            "left_cheek": (-0.6, 0.45),
            "right_cheek": (0.6, 0.45),
            "left_eye": (-self.ex, 0.0),
            "right_eye": (self.ex, 0.0),
            "nose": (0.0, self.n_base - 0.1),
            "forehead": (0.0, -0.7),
        }
        name = str(r.choice(list(targets)))
        tx, ty = targets[name]
        tx += _u(r, -0.15, 0.15)
        ty += _u(r, -0.1, 0.1)
        ang = r.uniform(0, 2 * np.pi)
        polys = []
        if kind == "hand":
            # fingers point towards `ang`; palm lies behind the fingertips
            sc = _u(r, 0.85, 1.15)
            ca, sa = math.cos(ang), math.sin(ang)
            px, py = tx - ca * 0.9 * sc, ty - sa * 0.9 * sc

            def rot(p):
                p = np.asarray(p)
                return np.stack([px + ca * p[:, 0] - sa * p[:, 1], py + sa * p[:, 0] + ca * p[:, 1]], 1)

            polys.append(rot(_ellipse_pts(0, 0, 0.55 * sc, 0.5 * sc, 40, p=2.6)))
            lens = [0.75, 0.85, 0.8, 0.62]
            fingers = []
            curl = _u(r, -0.15, 0.15)
            for k, fl in enumerate(lens):
                off = (-0.33 + 0.22 * k) * sc
                spread = off * _u(r, 1.0, 1.3)
                f = _stroke(np.array([[0.3 * sc, off], [(0.3 + fl) * sc, spread + curl * fl]]), 0.092 * sc)
                fingers.append(rot(np.concatenate([f, _ellipse_pts((0.3 + fl) * sc, spread + curl * fl, 0.092 * sc, 0.092 * sc, 20)[5:15]])))
                polys.append(rot(f))
                polys.append(rot(_ellipse_pts((0.3 + fl) * sc, spread + curl * fl, 0.092 * sc, 0.092 * sc, 20)))
            th = _stroke(np.array([[0.0, 0.45 * sc], [0.35 * sc, 0.62 * sc], [0.6 * sc, 0.6 * sc]]), 0.11 * sc)
            polys.append(rot(th))
            polys.append(rot(np.array([[-3.5, -0.5 * sc], [0, -0.5 * sc], [0, 0.5 * sc], [-3.5, 0.45 * sc]])))  # forearm
            fingers.append(rot(th))
            col_base = self.skin * _u(r, 0.9, 1.05)
        else:
            w_, h_ = _u(r, 0.35, 1.0), _u(r, 0.25, 0.9)
            shape = str(r.choice(["rect", "ellipse", "bar"]))
            if shape == "rect":
                polys.append(_ellipse_pts(tx, ty, w_, h_, 64, rot=ang, p=_u(r, 6, 16)))
            elif shape == "ellipse":
                polys.append(_ellipse_pts(tx, ty, w_, h_, 64, rot=ang))
            else:
                d = np.array([math.cos(ang), math.sin(ang)])
                polys.append(_stroke(np.array([[tx, ty] - d * 3, [tx, ty] + d * 0.2]), _u(r, 0.08, 0.25)))
                polys.append(_ellipse_pts(tx + d[0] * 0.2, ty + d[1] * 0.2, 0.22, 0.22, 32))
            col_base = r.uniform(0.02, 0.95, 3).astype(np.float32)
        pp = [g.P_flat(p) for p in polys]
        # place it in front of the face: shift with yaw like the face surface
        shift = np.array(g.to_img_vec(0.9 * g.syaw, 0.0)) * self.scale
        pp = [p + shift for p in pp]
        cov, bb = cv.cover(pp, pad=2)
        if cov is None or cov.max() <= 0:
            return
        # drop shadow
        sh, sb = cv.soft([p + np.array([0.04, 0.06]) * self.scale for p in pp], 0.06 * self.scale)
        if sh is not None:
            cv.shade(sb, 1 - 0.35 * sh)
        X, Y = g.grid(bb)
        hh, ww = cov.shape
        if kind == "hand":
            edge = cv2.GaussianBlur(cov, (0, 0), max(0.8, 0.05 * self.scale))
            sh = 0.55 + 0.45 * edge
            # each finger is a rounded cylinder: darker along its sides
            sig = max(0.7, 0.03 * self.scale)
            for fp in fingers:
                fp = [fp + shift]
                cf, _ = cv.cover(fp, bb=bb)
                inner = cv2.GaussianBlur(cf, (0, 0), sig)
                sh = sh * (1 - 0.45 * cf * np.clip(1 - 1.6 * inner, 0, 1))
            col = col_base * sh[..., None] * (0.6 + 0.4 * self.ambient + 0.15)
            col = col * (1 + 0.012 * _noise(self.r_tex, hh, ww, max(1.0, 0.006 * self.scale)))[..., None]
        else:
            tex = 1 + 0.12 * _noise(self.r_tex, hh, ww, max(2.0, 0.15 * self.scale))
            grad = 0.8 + 0.25 * np.clip(X * self.light[0] + Y * self.light[1], -1, 1)
            col = col_base * (tex * grad)[..., None]
        cv.paint(cov, bb, col, label=BG)
        ys, xs = np.nonzero(cov > 0.01)
        self.meta.update(occluder=kind, occluder_target=name,
                         occluder_x0=int(bb[0] + xs.min()), occluder_y0=int(bb[1] + ys.min()),
                         occluder_x1=int(bb[0] + xs.max() + 1), occluder_y1=int(bb[1] + ys.max() + 1))

    # ---------------------------------------------------------------- camera
    def _camera(self):
        cfg, r = self.cfg, self.r_cam
        img = self.cv.img
        h, w = self.h, self.w
        # global light gradient and colour balance
        yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
        xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
        a = r.uniform(0, 2 * np.pi)
        gr = 1 + _u(r, 0, 0.35) * (np.cos(a) * xx + np.sin(a) * yy)
        wb = np.array([_u(r, 0.9, 1.1), 1.0, _u(r, 0.88, 1.1)], np.float32)
        expo = _u(r, 0.75, 1.2)
        img *= (gr * expo)[..., None] * wb
        gamma = _u(r, 0.8, 1.2)
        con = _u(r, 0.85, 1.15)
        # lens softness + optional blur
        sigma = _u(r, 0.25, 0.7) * max(1.0, min(h, w) / 400)
        if r.random() < cfg.blur_prob:
            sigma = max(sigma, _u(r, 0.5, cfg.max_blur_sigma))
        img = cv2.GaussianBlur(img, (0, 0), sigma)
        if r.random() < cfg.motion_blur_prob:
            k = int(r.integers(3, 9))
            ker = np.zeros((k, k), np.float32)
            ang = r.uniform(0, np.pi)
            c = (k - 1) / 2
            for t in np.linspace(-c, c, 4 * k):
                ker[int(round(c + t * math.sin(ang))), int(round(c + t * math.cos(ang)))] = 1
            img = cv2.filter2D(img, -1, ker / ker.sum())
        self.meta["blur_sigma"] = float(sigma)
        if r.random() < 0.1:  # low resolution source
            f = _u(r, 1.5, 3.0)
            small = cv2.resize(img, (max(8, int(w / f)), max(8, int(h / f))), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        ns = 0.0
        if r.random() < cfg.noise_prob:
            ns = _u(r, 0.003, cfg.max_noise_sigma)
            n = r.standard_normal((h, w), dtype=np.float32) * ns
            img += n[..., None]
            if r.random() < 0.5:
                cn = r.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32) * (ns * 0.6)
                img += cv2.resize(cn, (w, h), interpolation=cv2.INTER_LINEAR)
        self.meta["noise_sigma"] = float(ns)
        img *= 255.0
        img += 0.5
        np.clip(img, 0, 255, out=img)
        out = img.astype(np.uint8)
        # tone curve (gamma, contrast) as a lookup table
        x = np.arange(256, dtype=np.float64) / 255.0
        lut = np.clip(((x**gamma - 0.5) * con + 0.5) * 255 + 0.5, 0, 255).astype(np.uint8)
        out = cv2.LUT(out, lut)
        q = 0
        if r.random() < cfg.jpeg_prob:
            q = int(r.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
            ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        self.meta["jpeg_quality"] = q
        return np.ascontiguousarray(out)

    # ---------------------------------------------------------------- landmarks meta
    def _landmarks(self):
        g = self.g
        pts = np.array(
            [[-self.ex, 0.0], [self.ex, 0.0], [0.0, self.n_base - 0.08], [0.0, self.m_y]]
        )
        dz = np.array([-0.04, -0.04, 0.22, 0.05])
        p = g.P(pts, dz)
        for name, q in zip(("left_eye", "right_eye", "nose_tip", "mouth"), p):
            self.meta[f"{name}_x"] = float(q[0])
            self.meta[f"{name}_y"] = float(q[1])
        self.meta["interocular_px"] = float(np.hypot(*(p[1] - p[0])))

    # ---------------------------------------------------------------- run
    def render(self):
        self._layout()
        self._identity()
        self._expression()
        self._hair_setup()
        self.cv = _Canvas(self.h, self.w, self.cfg.supersample)
        self._outer_h = self._hair_outer()
        self._background()
        self._draw_back_hair()
        self._draw_body()
        self._draw_ears()
        self._draw_face()
        self._face_details()
        self._draw_side_hair()
        self._draw_brows()
        self._draw_eyes()
        self._draw_nose()
        self._draw_mouth()
        self._draw_facial_hair()
        self._draw_fringe()
        self._draw_glasses()
        self._draw_hat()
        self._draw_occluder()
        self._landmarks()
        image = self._camera()
        labels = _quantise(self.cv.lab)
        return {"image": image, "soft_labels": labels, "meta": self.meta}


def generate_face(seed: int, config: SyntheticFaceConfig = SyntheticFaceConfig()) -> dict:
    """One synthetic face photo with exact soft labels.

    Returns a dict with ``image`` (uint8 H x W x 3, RGB), ``soft_labels`` (uint8
    H x W x 11, Smith order, 0..255 summing to 255 at every pixel; "left" = the image's
    left) and ``meta`` (plain scalars describing what was drawn: pose, sizes, expression
    flags, hair, glasses, hat, occluder and its bbox, landmark positions, camera
    effects). Deterministic in (seed, config).
    """
    return _Face(seed, config).render()


def generate_faces(seeds: Iterable[int], config: SyntheticFaceConfig = SyntheticFaceConfig()) -> Iterator[dict]:
    """``generate_face`` for each seed, lazily."""
    for s in seeds:
        yield generate_face(int(s), config)
