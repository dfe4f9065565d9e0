"""Batched, jitted inference on photo-sized images, compiled once per shape bucket.

A :class:`Parser` holds one model and its variables. :meth:`Parser.parse_arrays` lays
each uint8 (h, w, 3) image out as in training (``data.input_pipeline.Layout``: the whole
image resized to the rough size, the original centred on a zero canvas), groups the
images by the smallest **canvas bucket** they fit (``canvas_sizes``, e.g. 256, 512, 768,
1024) and runs them in batches of exactly ``batch_size`` (the last batch is padded with
copies). The jitted ``model.parse`` therefore compiles once per bucket in use, never per
image size: a folder of photos of many sizes costs at most ``len(canvas_sizes)``
compilations. (With the model's theta in the image frame, the canvas size does not
change the labels: the sampler reads zeros outside the image either way.)
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stn_icnn_jax.data.input_pipeline import InputConfig, Layout
from stn_icnn_jax.model import stn_icnn

#: Default canvas buckets (pixels per side); images are framed to the training faces'
#: size first, so most photos land in one or two of them.
CANVAS_SIZES: tuple[int, ...] = (256, 512, 768, 1024)
FEATURES = ("rough_image", "canvas", "image_size", "image_origin")


class Parser:
    """One model ready to parse: ``Parser(weights).parse_arrays([img, ...])``.

    Args:
      weights: a loaded :class:`stn_icnn_jax.weights.Weights`.
      batch_size: images per compiled call (fixed; short batches are padded).
      max_side: if given, the buckets above it are dropped and ``max_side`` is the
        largest (photos and frames are shrunk to fit it: faster, coarser).
      canvas_sizes: canvas buckets. A model whose theta is relative to the canvas
        (``theta_frame="canvas"``) has one bucket, its own ``canvas_size``.
    """

    def __init__(self, weights, batch_size: int = 4,
                 canvas_sizes: Sequence[int] = CANVAS_SIZES, max_side: int | None = None):
        self.model = weights.model()
        self.config = self.model.config
        if self.config.theta_frame == "canvas":
            canvas_sizes = (self.config.canvas_size,)
        elif max_side is not None:
            canvas_sizes = [c for c in canvas_sizes if c < max_side] + [int(max_side)]
        self.canvas_sizes = tuple(sorted(int(c) for c in canvas_sizes))
        self.batch_size = int(batch_size)
        self.max_side_arg = max_side
        self.variables = jax.tree_util.tree_map(jnp.asarray, weights.variables)
        model = self.model
        self._parse = jax.jit(lambda variables, batch: stn_icnn.parse(model, variables, batch)["labels"])

    @property
    def max_side(self) -> int:
        """The largest image side that fits a bucket."""
        return self.canvas_sizes[-1]

    def compilations(self) -> int:
        """How many shapes the jitted parse has compiled so far."""
        return self._parse._cache_size()

    def bucket(self, shape: tuple[int, int]) -> int:
        """The smallest canvas that holds an image of ``shape`` (h, w)."""
        side = max(shape)
        for size in self.canvas_sizes:
            if side <= size:
                return size
        raise ValueError(f"image {shape[0]}x{shape[1]} is larger than the largest canvas "
                         f"({self.max_side}); resize it first")

    @functools.lru_cache(maxsize=None)
    def _layout(self, canvas_size: int) -> Layout:
        return Layout(InputConfig(rough_size=self.config.rough_size, canvas_size=canvas_size,
                                  augment=None), FEATURES)

    def parse_arrays(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 (h_i, w_i, 3) images -> their (h_i, w_i) int32 label maps (9 classes)."""
        out: list[np.ndarray | None] = [None] * len(images)
        by_bucket: dict[int, list[int]] = {}
        for i, image in enumerate(images):
            by_bucket.setdefault(self.bucket(image.shape[:2]), []).append(i)
        for size, indices in sorted(by_bucket.items()):
            layout = self._layout(size)
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                records = [layout.map({"image": images[i]}) for i in chunk]
                records += [records[-1]] * (self.batch_size - len(records))
                batch = {k: np.stack([r[k] for r in records]) for k in FEATURES}
                labels = np.asarray(self._parse(self.variables, batch))
                for j, i in enumerate(chunk):
                    (top, left), (h, w) = records[j]["image_origin"], records[j]["image_size"]
                    out[i] = labels[j, top : top + h, left : left + w]
        return out  # type: ignore[return-value]
