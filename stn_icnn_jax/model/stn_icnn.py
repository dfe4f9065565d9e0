"""The composed STN-iCNN forward pass (paper eqs. 1-6) as pure functions.

    rough_image (N,r,r,3) --K--> rough logits (N,r,r,9) --softmax--> L --> theta (N,6,2,3)
    canvas (N,C,C,3) --crop(theta)--> patches (N,6,h,w,3) --K_i--> part logits
    part softmax --paste_window(theta)--> fused (N,C,C,9) --argmax--> labels (N,C,C)

``STNiCNN`` is one flax module holding the three networks under the parameter names
``rough`` (stage-1 iCNN K), ``localizer`` (L) and ``parts`` (the part iCNNs K_i); the
functions below (``forward``, ``parse``) are pure and jit-able.

Frames and conventions (where the paper and the authors' code disagree, docs/authors-code.md §2.3, §2.6):

- ``theta_frame="image"`` (default, the paper's eq. 21 with W the image width): L
  predicts theta relative to the unpadded image, and the pipeline converts it to the
  canvas (``theta_geometry.theta_to_frame``) with each example's size and offset; L
  never needs to know how much padding there was. ``"canvas"`` (authors): L predicts canvas theta.
- ``theta_convention="paper"`` (eq. 21: s = w̄/W, align_corners=False) or ``"authors"``
  (s = (w̄-1)/(W-1), align_corners=True). Both put an odd crop at an integer centre on
  the integer pixel grid.
- Paste-back fuses the part softmax maps as the authors do (docs/authors-code.md §2.5): background =
  product over parts of their background probability (1 outside a patch), each
  foreground class from its own part, then argmax with ties to the lower index.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from stn_icnn_jax import part_centers, sampler, theta_geometry
from stn_icnn_jax.taxonomy import NUM_CLASSES, PART_CLASSES
from stn_icnn_jax.model.icnn import ICNN, ICNNConfig, PartModels
from stn_icnn_jax.model.localizer import Localizer, LocalizerConfig, theta_from_params


@dataclasses.dataclass(frozen=True)
class STNiCNNConfig:
    """Everything that shapes the model (hashable: a flax module field).

    Attributes:
      rough: stage-1 iCNN (9 labels).
      parts: part iCNN template (its num_labels is replaced per part).
      share_left_right: right brow/eye use the left model through a flip.
      mirrored_pass: ``"joint"`` (left and mirrored right in one batch) or
        ``"separate"`` (two calls, as the authors' code; see ``PartModels``).
      localizer: the STN localisation net.
      rough_size: side of the stage-1 input (128).
      crop_size: side of the part patches (81 HELEN, 127 CelebAMask-HQ; odd).
      theta_convention: ``"paper"`` or ``"authors"`` (see the module docstring).
      theta_frame: ``"image"`` (paper) or ``"canvas"`` (authors).
      localizer_scale: ``"predicted"`` (paper eq. 15: L predicts each window's sx, sy)
        or ``"native"`` (L predicts only the window centres; the scale is eq. 21's 1:1
        one, so the part models see crops at the image's own resolution, as in their
        pre-training). See :func:`localizer_theta`.
      rough_background_logit: added to K's background logit wherever K's map is read
        (L's input, the centroid cropper, K's own score), never in K's loss. 0 (default)
        is the paper. A K trained with its parts' pixels weighted W times
        (``stages.rough.foreground_weight``) over-predicts the parts by about that prior
        factor; ``log(W')`` here takes it back at read time (logit adjustment).
      paste_margin: extra pixels around each patch in the paste-back window (covers
        predicted scales a little above 1:1; pixels beyond the window are dropped).
      canvas_size: side of the zero-padded canvas the crops are taken from; part of the
        model because canvas-frame theta (``theta_frame="canvas"``) is relative to it.
    """

    rough: ICNNConfig = ICNNConfig.paper(NUM_CLASSES)
    parts: ICNNConfig = ICNNConfig.paper(2)
    share_left_right: bool = True
    mirrored_pass: Literal["joint", "separate"] = "joint"
    localizer: LocalizerConfig = LocalizerConfig()
    rough_size: int = 128
    crop_size: int = 81
    theta_convention: Literal["paper", "authors"] = "paper"
    theta_frame: Literal["image", "canvas"] = "image"
    localizer_scale: Literal["predicted", "native"] = "predicted"
    rough_background_logit: float = 0.0
    paste_margin: int = 8
    canvas_size: int = 1024

    def __post_init__(self):
        if self.crop_size % 2 == 0:
            raise ValueError(
                f"crop_size must be odd so a crop at an integer centre samples whole pixels "
                f"(paper section 3.3), got {self.crop_size}"
            )
        if self.theta_convention not in ("paper", "authors"):
            raise ValueError(f"theta_convention must be 'paper' or 'authors', got {self.theta_convention!r}")
        if self.theta_frame not in ("image", "canvas"):
            raise ValueError(f"theta_frame must be 'image' or 'canvas', got {self.theta_frame!r}")
        if self.localizer_scale not in ("predicted", "native"):
            raise ValueError(f"localizer_scale must be 'predicted' or 'native', got "
                             f"{self.localizer_scale!r}")
        if self.rough.num_labels != NUM_CLASSES:
            raise ValueError(f"the rough iCNN must have {NUM_CLASSES} labels, got {self.rough.num_labels}")

    @property
    def align_corners(self) -> bool:
        return theta_geometry.align_corners_for(self.theta_convention)

    @classmethod
    def authors(cls, **overrides) -> "STNiCNNConfig":
        """The authors' code: their iCNN layers, ResNet-18 L, canvas theta, align_corners,
        PyTorch's BatchNorm running-variance update, the mirrored patches in separate calls."""
        def torch_bn(config):
            return dataclasses.replace(config, bn_running_var="unbiased")

        base = dict(
            rough=torch_bn(ICNNConfig.authors(NUM_CLASSES)),
            parts=torch_bn(ICNNConfig.authors(2)),
            localizer=torch_bn(LocalizerConfig(backbone="resnet18")),
            mirrored_pass="separate",
            theta_convention="authors",
            theta_frame="canvas",
        )
        base.update(overrides)
        return cls(**base)


class STNiCNN(nn.Module):
    """The three networks; call methods through ``model.apply(..., method=...)``."""

    config: STNiCNNConfig = STNiCNNConfig()

    def setup(self):
        cfg = self.config
        self.rough = ICNN(cfg.rough)
        self.localizer = Localizer(cfg.localizer)
        self.parts = PartModels(cfg.parts, cfg.share_left_right, cfg.mirrored_pass)

    def rough_logits(self, rough_image: jax.Array, train: bool) -> jax.Array:
        """(N, r, r, 3) in [0, 1] -> (N, r, r, 9) logits (eq. 1)."""
        return self.rough(rough_image, train)

    def localize(self, rough_logits: jax.Array, train: bool) -> jax.Array:
        """(N, r, r, 9) logits -> theta (N, 6, 2, 3) in the configured frame (eq. 2)."""
        return self.localizer(
            jax.nn.softmax(read_rough_map(rough_logits, self.config), axis=-1), train)

    def part_logits(self, patches: jax.Array, train: bool) -> tuple[jax.Array, ...]:
        """(N, 6, h, w, 3) -> six (N, h, w, C_i) logits (eq. 4)."""
        return self.parts(patches, train)

    def __call__(self, rough_image: jax.Array, patches: jax.Array, train: bool = False):
        """Touches every sub-network once (for ``init``)."""
        logits = self.rough_logits(rough_image, train)
        return logits, self.localize(logits, train), self.part_logits(patches, train)


def read_rough_map(rough_logits: jax.Array, config: STNiCNNConfig) -> jax.Array:
    """K's (N, r, r, 9) logits as its map is read downstream: the background logit plus
    ``config.rough_background_logit`` (the same logits when it is 0)."""
    if not config.rough_background_logit:
        return rough_logits
    return rough_logits.at[..., 0].add(config.rough_background_logit)


# --------------------------------------------------------------------------- theta


def canvas_shape(batch: dict, config: STNiCNNConfig) -> tuple[int, int]:
    """The canvas (H, W): the batch's ``canvas`` if it has one, else ``config.canvas_size``."""
    for key in ("canvas", "canvas_label"):
        if key in batch:
            shape = tuple(batch[key].shape[1:3])
            if config.theta_frame == "canvas" and shape != (config.canvas_size,) * 2:
                raise ValueError(
                    f"batch {key} is {shape[0]}x{shape[1]} but the model's canvas-frame theta "
                    f"is relative to a {config.canvas_size} canvas (model canvas_size)"
                )
            return shape
    return (config.canvas_size, config.canvas_size)


def to_canvas_theta(theta: jax.Array, batch: dict, config: STNiCNNConfig) -> jax.Array:
    """theta in the configured frame -> theta on the canvas, (N, 6, 2, 3)."""
    if config.theta_frame == "canvas":
        return theta
    return theta_geometry.theta_to_frame(
        theta, batch["image_origin"], batch["image_size"], canvas_shape(batch, config),
        config.align_corners,
    )


def theta_at_centers(centers: jax.Array, batch: dict, config: STNiCNNConfig) -> jax.Array:
    """theta of eq. 21 for crops centred on ``centers (N, 6, 2)`` (y, x) image pixels, in
    the configured frame, (N, 6, 2, 3); float32, or float64 for float64 centres."""
    centers = jnp.asarray(centers)
    dt = jnp.promote_types(centers.dtype, jnp.float32)
    centers = centers.astype(dt)
    crop = (config.crop_size, config.crop_size)
    if config.theta_frame == "image":
        size = jnp.asarray(batch["image_size"], dt)[:, None, :]
        return theta_geometry.theta_from_centers(centers, crop, size, config.theta_convention)
    origin = jnp.asarray(batch["image_origin"], dt)[:, None, :]
    return theta_geometry.theta_from_centers(centers + origin, crop,
                                             canvas_shape(batch, config), config.theta_convention)


def localizer_theta(theta: jax.Array, batch: dict, config: STNiCNNConfig) -> jax.Array:
    """L's output as the pipeline uses it, (N, 6, 2, 3) in the configured frame.

    ``localizer_scale="predicted"`` (paper eq. 15): as L predicted it. ``"native"``: sx
    and sy replaced by eq. 21's 1:1 scale (crop size over the image size in the image
    frame, over the canvas size in the canvas frame), so only L's centres (tx, ty) are
    used and trained. In the image frame the 1:1 scale depends on the image's size,
    which L never sees (its input is K's map of the image resized to r x r): on data
    whose image sizes vary, a predicted scale can only be the training set's typical
    one, and the crops of larger or smaller images come out zoomed. Needs
    ``image_size`` (image frame) in ``batch``."""
    if config.localizer_scale == "predicted":
        return theta
    native = theta_at_centers(jnp.zeros(theta.shape[:2] + (2,), theta.dtype), batch, config)
    diagonal = (jnp.eye(2, 3) == 1)
    return jnp.where(diagonal, native.astype(theta.dtype), theta)


def ground_truth_theta(batch: dict, config: STNiCNNConfig) -> jax.Array:
    """theta of eq. 21 from the batch's part centres, in the configured frame, (N, 6, 2, 3)."""
    return theta_at_centers(batch["centers"], batch, config)


def mean_part_centers(batch: dict, config: STNiCNNConfig) -> jax.Array:
    """Centres of the localiser's initial boxes (``config.localizer.init_params``) in each
    image's pixels, rounded: (N, 6, 2) (y, x).

    A model built for training (``train.run.initial_variables``) or loaded from a weights
    file made by ``weights.from_workdir`` holds the training set's mean eq.-21 theta
    there, so these are the training set's mean part centres relative to the image.
    """
    theta = theta_from_params(jnp.asarray(config.localizer.init_params, jnp.float32))[None]
    if config.theta_frame == "image":
        size = jnp.asarray(batch["image_size"], jnp.float32)[:, None, :]
        centers = theta_geometry.centers_from_theta(theta, size, config.theta_convention)
    else:
        origin = jnp.asarray(batch["image_origin"], jnp.float32)[:, None, :]
        centers = theta_geometry.centers_from_theta(
            theta, jnp.asarray(canvas_shape(batch, config), jnp.float32),
            config.theta_convention) - origin
    return jnp.floor(centers + 0.5)


def centroid_theta(rough_logits: jax.Array, batch: dict,
                   config: STNiCNNConfig) -> tuple[jax.Array, jax.Array]:
    """The original iCNN's crops (paper sections 2.5, 3.2; the "iCNN" row of Table 2):
    each part's window centred on the centroid of K's own rough mask.

    K's (N, r, r, 9) logits -> argmax label map -> the centroid of each part's pixels
    (the mouth: union of upper lip, inner mouth and lower lip), mapped from the r x r
    map to the image's pixels as the resize made it (pixel centres: ``y_image = (y_r +
    0.5) h / r - 0.5``), rounded to the nearest pixel, and cropped at the configured
    crop size through eq. 21, exactly as ground-truth centres are.

    A part with no pixel in K's map has no centroid (the failure of the centroid cropper
    the paper's Fig. 5 shows): its window falls back to :func:`mean_part_centers`, the
    training set's mean centre of that part relative to the image.

    Returns:
      ``theta (N, 6, 2, 3)`` in the configured frame and ``present (N, 6)`` bool (False
      where the fallback was used).
    """
    rough_h, rough_w = rough_logits.shape[1:3]
    labels = jnp.argmax(read_rough_map(rough_logits, config), axis=-1)
    onehot = jax.nn.one_hot(labels, NUM_CLASSES, dtype=jnp.float32)
    centroids, mass = part_centers.part_centroids(onehot)
    present = mass >= 1.0
    size = jnp.asarray(batch["image_size"], jnp.float32)[:, None, :]
    scale = size / jnp.asarray([rough_h, rough_w], jnp.float32)
    mapped = (centroids + 0.5) * scale - 0.5
    centers = jnp.floor(mapped + 0.5)
    centers = jnp.where(present[..., None], centers, mean_part_centers(batch, config))
    return theta_at_centers(centers, batch, config), present


# --------------------------------------------------------------------------- crop / paste


def crop_patches(canvas: jax.Array, theta_canvas: jax.Array, config: STNiCNNConfig) -> jax.Array:
    """Bilinear crops of the (uint8 or [0, 1] float) canvas: (N, 6, h, w, 3) float32 (eq. 3)."""
    if canvas.dtype == jnp.uint8:
        canvas = canvas.astype(jnp.float32) / 255.0
    size = (config.crop_size, config.crop_size)
    return sampler.crop(canvas, theta_canvas, size, mode="bilinear",
                        align_corners=config.align_corners)


def crop_label_maps(canvas_label: jax.Array, theta_canvas: jax.Array,
                    config: STNiCNNConfig) -> tuple[jax.Array, ...]:
    """Nearest crops of the 9-class canvas map -> six per-part class maps (N, h, w) int32."""
    size = (config.crop_size, config.crop_size)
    crops = sampler.crop(
        canvas_label.astype(jnp.float32)[..., None], jax.lax.stop_gradient(theta_canvas), size,
        mode="nearest", align_corners=config.align_corners,
    )
    return part_centers.part_label_maps(jnp.rint(crops[..., 0]).astype(jnp.int32))


def _pasted_windows(part_probs: tuple[jax.Array, ...], theta_canvas: jax.Array,
                    canvas_size: tuple[int, int], config: STNiCNNConfig):
    """Each part's pasted window: ``values`` (N, 6, wh, ww, 4) = [1 - p_bg, p_fg...]
    (0 outside the patch, padded to 4 channels), ``starts`` (N, 6, 2) its top-left in the
    canvas padded by ``pad`` on every side (clipped so a window lies inside it: a window
    clipped there is wholly off the canvas, its values all 0), ``window``, ``pad``."""
    hc, wc = canvas_size
    window = (config.crop_size + 2 * config.paste_margin,) * 2
    pad = max(window)
    stacked = jnp.stack(
        [jnp.pad(jnp.concatenate([1.0 - p[..., :1], p[..., 1:]], axis=-1),
                 ((0, 0), (0, 0), (0, 0), (0, 4 - p.shape[-1])))
         for p in part_probs], axis=1)
    values, origin = sampler.paste_window(
        stacked, theta_canvas, canvas_size, window, mode="nearest",
        align_corners=config.align_corners,
    )
    high = jnp.asarray([hc + 2 * pad - window[0], wc + 2 * pad - window[1]], jnp.int32)
    starts = jnp.clip(origin.astype(jnp.int32) + pad, 0, high)
    return values, starts, window, pad


def _fuse(bg: jax.Array, fg: jax.Array, value: jax.Array, classes) -> tuple[jax.Array, jax.Array]:
    """Eq. 5 for one more part: ``bg`` (..., ) times 1 - its foreground, its classes'
    probabilities added to ``fg`` (..., 8); ``value`` (..., 4) = [1 - p_bg, p_fg...]."""
    # the classes as one zero-padded run of channels (a pad, not a scatter: XLA's CPU
    # runs scatters element by element)
    first, k = classes[0] - 1, len(classes)
    if tuple(classes) != tuple(range(classes[0], classes[0] + k)):
        raise ValueError(f"a part's classes must be consecutive, got {classes}")
    add = jnp.pad(value[..., 1 : 1 + k],
                  [(0, 0)] * (value.ndim - 1) + [(first, fg.shape[-1] - first - k)])
    return bg * (1.0 - value[..., 0]), fg + add


def fuse_parts(part_probs: tuple[jax.Array, ...], theta_canvas: jax.Array,
               canvas_size: tuple[int, int], config: STNiCNNConfig) -> jax.Array:
    """Paste the six part softmax maps back and fuse them: (N, C, C, 9) probabilities (eq. 5).

    Only a window of (crop_size + 2 * paste_margin)^2 canvas pixels per part is touched.
    """
    n = part_probs[0].shape[0]
    hc, wc = canvas_size
    values, starts, window, pad = _pasted_windows(part_probs, theta_canvas, canvas_size, config)
    background = jnp.ones((n, hc + 2 * pad, wc + 2 * pad), jnp.float32)
    foreground = jnp.zeros((n, hc + 2 * pad, wc + 2 * pad, NUM_CLASSES - 1), jnp.float32)

    def place(bg, fg, value, start, classes):
        # value (wh, ww, 4); start (2,) top-left in the padded canvas
        fg_start = (start[0], start[1], 0)
        region_bg, region_fg = _fuse(
            jax.lax.dynamic_slice(bg, start, window),
            jax.lax.dynamic_slice(fg, fg_start, window + (NUM_CLASSES - 1,)), value, classes)
        return (jax.lax.dynamic_update_slice(bg, region_bg, start),
                jax.lax.dynamic_update_slice(fg, region_fg, fg_start))

    for p, classes in enumerate(PART_CLASSES):
        background, foreground = jax.vmap(
            lambda bg, fg, v, s, c=classes: place(bg, fg, v, s, c)
        )(background, foreground, values[:, p], starts[:, p])
    fused = jnp.concatenate([background[..., None], foreground], axis=-1)
    return fused[:, pad : pad + hc, pad : pad + wc]


def fuse_labels(part_probs: tuple[jax.Array, ...], theta_canvas: jax.Array,
                canvas_size: tuple[int, int], config: STNiCNNConfig) -> jax.Array:
    """``argmax(fuse_parts(...), -1)`` (N, C, C) int32, the same values bit for bit,
    without the (N, C, C, 9) probabilities: outside the six paste windows the fused map
    is background (1, 0, ..., 0), so only the windows are fused (each pixel from every
    part's window over it, in the order and arithmetic of :func:`fuse_parts`) and their
    labels written into a canvas of zeros."""
    hc, wc = canvas_size
    values, starts, window, pad = _pasted_windows(part_probs, theta_canvas, canvas_size, config)
    wh, ww = window
    # where a window's labels are written: inside the canvas (enlarged if it is smaller
    # than a window), so a window over the edge is fused and written shifted inside
    extent = (max(hc, wh), max(wc, ww))
    last = jnp.asarray([extent[0] - wh, extent[1] - ww], jnp.int32)
    limit = jnp.asarray(window, jnp.int32)

    def one_face(v, s):
        # v (6, wh, ww, 4), s (6, 2) in the canvas padded by `pad`. Part j's values on
        # the pixels of window i (at `at[i]`): a slice of v[j] padded by a window on each
        # side, at offset s[j] - at[i] (clipped to one window: beyond, they do not
        # overlap and the slice is all padding).
        padded = jnp.pad(v, ((0, 0), (wh, wh), (ww, ww), (0, 0)))
        at = jnp.clip(s - pad, 0, last)                                   # (6, 2)
        offsets = limit - jnp.clip(s[None, :] - (at[:, None] + pad), -limit, limit)  # (i, j, 2)

        def window_of(part, offset):
            return jax.lax.dynamic_slice(part, (offset[0], offset[1], 0), window + (4,))

        seen = jax.vmap(jax.vmap(window_of), in_axes=(None, 0))(padded, offsets)  # (i, j, wh, ww, 4)
        bg = jnp.ones((len(PART_CLASSES),) + window, jnp.float32)
        fg = jnp.zeros((len(PART_CLASSES),) + window + (NUM_CLASSES - 1,), jnp.float32)
        for j, classes in enumerate(PART_CLASSES):
            bg, fg = _fuse(bg, fg, seen[:, j], classes)
        window_labels = jnp.argmax(jnp.concatenate([bg[..., None], fg], -1), -1).astype(jnp.int32)
        labels = jnp.zeros(extent, jnp.int32)
        for i in range(len(PART_CLASSES)):
            labels = jax.lax.dynamic_update_slice(labels, window_labels[i], at[i])
        return labels[:hc, :wc]

    # a loop over the faces, not vmap: batched window positions would turn the slices
    # into gathers and the window writes into scatters, which XLA's CPU runs slowly
    return jax.lax.map(lambda face: one_face(*face), (values, starts))


# --------------------------------------------------------------------------- passes


ModuleModes = dict[str, bool]
MODULES = ("rough", "localizer", "parts")
#: Where the part crops come from: L's theta, the labelled part centres (eq. 21), or the
#: centroids of K's rough mask (the original iCNN).
ThetaSource = Literal["predicted", "ground_truth", "centroid"]
THETA_SOURCES: tuple[str, ...] = ("predicted", "ground_truth", "centroid")


def module_modes(train: bool | ModuleModes) -> ModuleModes:
    """``train`` as one flag for all networks or per network (``rough``, ``localizer``, ``parts``)."""
    if isinstance(train, bool):
        return {name: train for name in MODULES}
    unknown = set(train) - set(MODULES)
    if unknown:
        raise ValueError(f"unknown module names {sorted(unknown)}; use {MODULES}")
    return {name: bool(train.get(name, False)) for name in MODULES}


def apply_module(model: "STNiCNN", variables: dict, method, *args, train: bool):
    """Runs one method; returns ``(result, batch_stats)`` (updated only when ``train``)."""
    stats = variables.get("batch_stats", {})
    inputs = {"params": variables["params"], "batch_stats": stats}
    if not train:
        return model.apply(inputs, *args, False, method=method), stats
    result, updates = model.apply(inputs, *args, True, method=method, mutable=["batch_stats"])
    return result, updates["batch_stats"]


def forward(
    model: STNiCNN,
    variables: dict,
    batch: dict,
    train: bool | ModuleModes,
    theta_source: ThetaSource = "predicted",
) -> tuple[dict[str, Any], dict]:
    """The training-time pass: stops at the part logits (paper section 2.1).

    Args:
      model: the module (its config decides frames and conventions).
      variables: ``{"params": ..., "batch_stats": ...}``.
      batch: ``rough_image``, ``canvas``, ``image_size``, ``image_origin``; plus
        ``canvas_label`` for label crops and ``centers`` for ground-truth theta.
      train: BatchNorm in training mode (batch statistics, updated running stats), for
        all networks or per network (e.g. ``{"parts": True}``: K and L in eval mode).
      theta_source: crop with L's theta (end to end), the ground truth (part
        pre-training), or the centroids of K's rough mask (the original iCNN's cropper,
        :func:`centroid_theta`; the paper's iCNN baseline).

    Returns:
      ``(out, batch_stats)``: ``out`` has ``rough_logits`` (if predicted), ``theta``
      (configured frame), ``theta_canvas``, ``patches``, ``part_logits`` (6 arrays) and,
      when the batch has ``canvas_label``, ``part_labels`` (6 int maps made with the same
      theta, nearest); ``batch_stats`` holds the updated statistics of the networks run
      in training mode.
    """
    cfg = model.config
    modes = module_modes(train)
    out: dict[str, Any] = {}
    variables = dict(variables)

    def run(method, name, *args):
        result, variables["batch_stats"] = apply_module(
            model, variables, method, *args, train=modes[name]
        )
        return result

    if theta_source == "predicted":
        out["rough_logits"] = run(STNiCNN.rough_logits, "rough", batch["rough_image"])
        out["theta"] = localizer_theta(run(STNiCNN.localize, "localizer", out["rough_logits"]),
                                       batch, cfg)
    elif theta_source == "ground_truth":
        out["theta"] = ground_truth_theta(batch, cfg)
    elif theta_source == "centroid":
        out["rough_logits"] = run(STNiCNN.rough_logits, "rough", batch["rough_image"])
        out["theta"], out["centroid_present"] = centroid_theta(out["rough_logits"], batch, cfg)
    else:
        raise ValueError(f"theta_source must be one of {THETA_SOURCES}, got {theta_source!r}")
    out["theta_canvas"] = to_canvas_theta(out["theta"], batch, cfg)
    out["patches"] = crop_patches(batch["canvas"], out["theta_canvas"], cfg)
    out["part_logits"] = run(STNiCNN.part_logits, "parts", out["patches"])
    if "canvas_label" in batch:
        out["part_labels"] = crop_label_maps(batch["canvas_label"], out["theta_canvas"], cfg)
    return out, variables.get("batch_stats", {})


def parse(model: STNiCNN, variables: dict, batch: dict,
          theta_source: ThetaSource = "predicted") -> dict[str, jax.Array]:
    """Inference (eqs. 1-6): ``labels (N, C, C)`` int32 on the canvas, plus ``probs``
    (N, C, C, 9), ``theta_canvas``, (predicted or centroid theta) ``rough_logits`` and
    (centroid) ``centroid_present (N, 6)``.

    ``theta_source="ground_truth"`` crops at the labelled part centres instead (to score
    the part models alone, as the paper's STN-iCNN* ablations need); ``"centroid"`` at
    the centroids of K's rough mask (the paper's iCNN baseline, :func:`centroid_theta`)."""
    out, _ = forward(model, variables, {k: v for k, v in batch.items() if k != "canvas_label"},
                     train=False, theta_source=theta_source)
    probs = tuple(jax.nn.softmax(z, axis=-1) for z in out["part_logits"])
    size = canvas_shape(batch, model.config)
    return {
        # the same as argmax(probs, -1), computed on the paste windows alone (what
        # evaluation and the photo parser read: XLA then never makes ``probs``)
        "labels": fuse_labels(probs, out["theta_canvas"], size, model.config),
        "probs": fuse_parts(probs, out["theta_canvas"], size, model.config),
        "theta_canvas": out["theta_canvas"],
        **({"rough_logits": out["rough_logits"]} if "rough_logits" in out else {}),
        **({"centroid_present": out["centroid_present"]} if "centroid_present" in out else {}),
    }


def init_variables(model: STNiCNN, key: jax.Array) -> dict:
    """Fresh ``{"params", "batch_stats"}`` for the model's configured sizes.

    The initialisers draw from an ``rbg`` key derived from ``key``: XLA on CPU takes
    about a minute to compile threefry draws of these networks' sizes, rbg ~10 s.
    Deterministic in ``key``.
    """
    cfg = model.config
    if jax.random.key_impl(key) != jax.random.key_impl(jax.random.key(0, impl="rbg")):
        key = jax.random.key(jax.random.bits(key, dtype=jnp.uint32), impl="rbg")
    rough = jnp.zeros((1, cfg.rough_size, cfg.rough_size, 3), jnp.float32)
    patches = jnp.zeros((1, 6, cfg.crop_size, cfg.crop_size, 3), jnp.float32)
    return dict(model.init(key, rough, patches, False))
