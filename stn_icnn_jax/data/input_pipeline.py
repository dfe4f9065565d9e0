"""The grain input pipeline: records -> numpy batches for each training stage.

A record (every builder's format) holds ``image (H, W, 3) uint8`` and
``soft_labels (H, W, 11) uint8`` in Smith order. Training copies are augmented on the
fly (``augment.py``: ``copies`` per record, an epoch is ``copies * len(source)``
examples). Each example is then laid out as the paper's "batch processing"
(section 2.5.1): the image resized to ``rough_size`` (bilinear) for stage 1, and the
original zero-padded (centred) onto a fixed ``canvas_size`` canvas for the STN crops.

Batch features (only those asked for: each training stage's record in
:mod:`stn_icnn_jax.train.stages` names the ones it reads):
  rough_image  (B, r, r, 3) float32 in [0, 1]   resized image, stage-1 input
  rough_label  (B, r, r) int32                  9-class map of the resized soft labels
  canvas       (B, C, C, 3) uint8               zero-padded original
  canvas_label (B, C, C) int32                  9-class map on the canvas (0 = padding)
  image_size   (B, 2) int32                     (h, w) of the original
  image_origin (B, 2) int32                     (top, left) of the original on the canvas
  centers      (B, 6, 2) float32                part centres, (y, x) image pixels (moved by
                                                ``InputConfig.center_jitter`` if set)
  centers_present (B, 6) bool                   False where a part is absent
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, Literal, Sequence

import cv2
import grain.python as grain
from absl import flags
import numpy as np

from stn_icnn_jax import part_centers
from stn_icnn_jax.data import augment, labels

#: Every feature a batch can hold (a stage's record names those it reads).
FEATURES: tuple[str, ...] = ("rough_image", "rough_label", "canvas", "canvas_label",
                             "image_size", "image_origin", "centers", "centers_present")


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """How records become batches.

    Attributes:
      rough_size: side of the stage-1 input (the model's ``rough_size``).
      canvas_size: side of the zero-padded canvas (the model's ``canvas_size``); every
        image must fit.
      batch_size: global batch size (per process when sharded across hosts).
      center_convention: ``"paper"`` or ``"authors"`` (see ``part_centers``).
      augment: augmentation of training copies, or None for none (validation / test).
      seed: seeds the shuffle and the augmentation.
      shuffle: shuffle the examples each epoch.
      worker_count: grain worker processes (0 = in the main process).
      center_jitter: training only: each part centre moves by a shift drawn uniformly in
        +-this many pixels along each axis, seeded by (seed, example index), so the
        ground-truth crops at the centres see parts off their middle (the parts stage's
        ``crop_jitter``). 0 = the labelled centres.
    """

    rough_size: int
    canvas_size: int
    batch_size: int = 32
    center_convention: Literal["paper", "authors"] = "paper"
    augment: augment.AugmentConfig | None = dataclasses.field(
        default_factory=augment.AugmentConfig
    )
    seed: int = 0
    shuffle: bool = True
    worker_count: int = 0
    drop_remainder: bool = True
    center_jitter: float = 0.0


#: Keeps the centre jitter's random stream apart from the augmentation's.
_JITTER_STREAM = 1


class AugmentedCopies(grain.RandomAccessDataSource):
    """``copies`` views of each record: index ``i`` is copy ``i % copies`` of record ``i // copies``."""

    def __init__(self, source: Any, copies: int):
        self._source = source
        self._copies = copies

    def __len__(self) -> int:
        return len(self._source) * self._copies

    def __getitem__(self, index: int) -> dict:
        record = dict(self._source[int(index) // self._copies])
        record["copy_index"] = int(index) % self._copies
        record["example_index"] = int(index)
        return record

    def __repr__(self) -> str:
        return f"AugmentedCopies({self._source!r}, copies={self._copies})"


def _record_name(record: dict) -> str:
    name = record.get("name", "?")
    if isinstance(name, (bytes, np.bytes_)):
        return name.decode("utf-8", "replace")
    if isinstance(name, np.ndarray) and name.dtype == np.uint8:
        return name.tobytes().decode("utf-8", "replace")
    return str(name)


class Augment(grain.MapTransform):
    """Applies copy ``copy_index`` of the augmentation, seeded by (seed, example index)."""

    def __init__(self, config: augment.AugmentConfig, seed: int):
        self._config = config
        self._seed = seed

    def map(self, record: dict) -> dict:
        seed = np.random.SeedSequence([self._seed, record["example_index"]])
        image, soft = augment.augment(
            np.asarray(record["image"]), np.asarray(record["soft_labels"]),
            record["copy_index"], self._config, seed,
        )
        return {**record, "image": image, "soft_labels": soft}


class Layout(grain.MapTransform):
    """Resize for stage 1, pad onto the canvas, part centres; keeps ``features`` only."""

    def __init__(self, config: InputConfig, features: Sequence[str]):
        self._config = config
        self._features = tuple(features)

    def map(self, record: dict) -> dict:
        cfg = self._config
        image = np.asarray(record["image"])
        want = set(self._features)
        # A photo without labels (inference) needs no soft_labels.
        soft = (np.asarray(record["soft_labels"])
                if want & {"rough_label", "canvas_label", "centers"} else None)
        h, w = image.shape[:2]
        size = cfg.canvas_size
        if h > size or w > size:
            raise ValueError(
                f"record {_record_name(record)!r}: image {h}x{w} does not fit the "
                f"{size}x{size} canvas; raise canvas_size"
            )
        out: dict[str, np.ndarray] = {}
        if want & {"rough_image", "rough_label"}:
            r = cfg.rough_size
            rough = cv2.resize(image, (r, r), interpolation=cv2.INTER_LINEAR)
            out["rough_image"] = rough.astype(np.float32) / 255.0
            if "rough_label" in want:
                rough_soft = cv2.resize(soft, (r, r), interpolation=cv2.INTER_LINEAR)
                out["rough_label"] = labels.hard_label(rough_soft.reshape(r, r, -1)).astype(np.int32)
        top, left = (size - h) // 2, (size - w) // 2
        out["image_size"] = np.array([h, w], np.int32)
        out["image_origin"] = np.array([top, left], np.int32)
        if "canvas" in want:
            canvas = np.zeros((size, size, 3), np.uint8)
            canvas[top : top + h, left : left + w] = image
            out["canvas"] = canvas
        if "canvas_label" in want:
            canvas_label = np.zeros((size, size), np.int32)
            canvas_label[top : top + h, left : left + w] = labels.hard_label(soft)
            out["canvas_label"] = canvas_label
        if "centers" in want:
            probs = labels.class_probs(soft)[None]
            centers, present = part_centers.part_centers(probs, cfg.center_convention)
            if cfg.center_jitter > 0:
                rng = np.random.default_rng([cfg.seed, record["example_index"], _JITTER_STREAM])
                centers = centers + rng.uniform(-cfg.center_jitter, cfg.center_jitter,
                                                centers.shape)
            out["centers"] = centers[0].astype(np.float32)
            out["centers_present"] = present[0]
        return {k: out[k] for k in self._features}


def batches_per_epoch(examples: int, batch_size: int, worker_count: int = 0,
                      drop_remainder: bool = True) -> int:
    """Batches :func:`make_loader` yields in one epoch of ``examples`` records.

    With ``worker_count = w > 0`` grain hands worker ``i`` the records ``i, i + w, ...``
    and each worker batches its own share, so each share drops (or keeps short) its own
    remainder: 1,000 records in batches of 8 make 125 batches in the main process, 124
    with 2 workers (500 + 500 records: 62 + 62) and 123 with 3 (334 + 333 + 333: 41 each).
    """
    shares = [examples // worker_count + (i < examples % worker_count)
              for i in range(worker_count)] if worker_count > 0 else [examples]
    if drop_remainder:
        return sum(n // batch_size for n in shares)
    return sum(-(-n // batch_size) for n in shares)


def make_loader(
    source: Any,
    features: Sequence[str],
    config: InputConfig,
    num_epochs: int | None = 1,
    shard_options: grain.ShardOptions | None = None,
) -> grain.DataLoader:
    """A grain DataLoader yielding dicts of numpy batches for ``stage``.

    Args:
      source: random-access records (``tfds.data_source(...)`` or any sequence of dicts).
      features: which features to produce (a subset of ``FEATURES``; a stage's
        ``features`` or ``eval_features``).
      config: sizes, batch, augmentation, seed, workers.
      num_epochs: epochs to iterate (None = forever).
      shard_options: per-host sharding (e.g. ``grain.ShardByJaxProcess()``) for multi-host.
    """
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown batch features {unknown}; use some of {FEATURES}")
    if config.worker_count > 0 and not flags.FLAGS.is_parsed():
        raise RuntimeError(
            f"worker_count={config.worker_count}: grain's worker processes read absl flags, "
            "which this program has not parsed. Parse them once at start-up (run under "
            "absl.app.run, or call absl.flags.FLAGS.mark_as_parsed(); the stn-icnn command "
            "does), or use worker_count=0."
        )
    copies = config.augment.copies if config.augment is not None else 1
    data = AugmentedCopies(source, copies)
    shard_options = shard_options or grain.NoSharding()
    sampler = grain.IndexSampler(
        num_records=len(data), shard_options=shard_options, shuffle=config.shuffle,
        num_epochs=num_epochs, seed=config.seed,
    )
    operations: list = []
    if config.augment is not None:
        operations.append(Augment(config.augment, config.seed))
    operations.append(Layout(config, features))
    operations.append(grain.Batch(config.batch_size, drop_remainder=config.drop_remainder))
    return grain.DataLoader(
        data_source=data, sampler=sampler, operations=operations,
        worker_count=config.worker_count,
    )


@contextlib.contextmanager
def iterate(loader: grain.DataLoader) -> Iterator[Any]:
    """``iter(loader)``, closed when the block ends, however it ends: grain's worker
    processes (``worker_count > 0``) stop and free their shared memory then, not at
    interpreter exit, where grain's own clean-up after a failed read prints a traceback
    and Python warns of leaked shared memory (after the one-line error of the CLI)."""
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        # grain's DataLoaderIterator has no close() of its own; its dataset iterator has
        close = getattr(getattr(iterator, "_iterator", None), "close", None)
        if close is not None:
            close()
