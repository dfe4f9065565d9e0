"""Subprocess worker for tests/test_distributed.py (fake CPU devices need a fresh jax).

The parent sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before starting
this script; the script prints / writes raw numbers and the parent asserts on them.

Modes:
  equivalence  (4 devices) 1-device vs 4-device steps, global vs per-device BN,
               a reference for per-device BN, and the errors for a bad batch size.
               Prints one JSON object.
  train        run ``--steps`` steps of ``--stage`` on a mesh of all devices and save
               the final params / batch_stats (this process's replica) to ``--out``.
               With ``--coordinator`` it joins a multi-process run and feeds only its own
               rows of the global batch (``distributed.to_global``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys

GLOBAL_BATCH = 8
CANVAS = 64
CROP = 15
ROUGH = 16


def tiny_config():
    from stn_icnn_jax.model import stn_icnn
    from stn_icnn_jax.model.icnn import ICNNConfig
    from stn_icnn_jax.model.localizer import LocalizerConfig

    small = dict(channels=(4, 8), num_interlink_layers=1)
    return stn_icnn.STNiCNNConfig(
        rough=dataclasses.replace(ICNNConfig.paper(9), **small),
        parts=dataclasses.replace(ICNNConfig.paper(2), **small),
        localizer=LocalizerConfig(input_size=ROUGH, channels=(4, 4, 8, 8), head_init_scale=1e-2),
        rough_size=ROUGH, crop_size=CROP, canvas_size=CANVAS,
    )


def make_batch(n: int = GLOBAL_BATCH, seed: int = 0) -> dict:
    """``n`` faces: a 9-class layout jittered per example on a 64 canvas, smooth shading."""
    import numpy as np

    from stn_icnn_jax import part_centers

    rng = np.random.default_rng(seed)
    h, w = 40, 50
    boxes = [(1, 5, 8, 8, 18), (2, 5, 8, 32, 42), (3, 11, 15, 10, 17), (4, 11, 15, 33, 40),
             (5, 16, 26, 22, 28), (6, 29, 31, 18, 32), (7, 31, 33, 19, 31), (8, 33, 36, 18, 32)]
    out = {k: [] for k in ("rough_image", "rough_label", "canvas", "canvas_label", "image_size",
                           "image_origin", "centers", "centers_present")}
    top, left = (CANVAS - h) // 2, (CANVAS - w) // 2
    for _ in range(n):
        dy, dx = rng.integers(-2, 3, 2)
        label = np.zeros((h, w), np.int32)
        for c, y0, y1, x0, x1 in boxes:
            label[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = c
        # Smooth random shading (low frequencies: bilinear crops of pixel noise make the
        # end-to-end loss so curved in theta that float-rounding differences grow
        # between steps), parts darker so the nets have something to learn.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        f = rng.uniform(0.05, 0.2, (3, 2))
        phase = rng.uniform(0, 2 * np.pi, (3, 2))
        image = np.stack([128 + 60 * np.sin(f[c, 0] * yy + phase[c, 0])
                          * np.cos(f[c, 1] * xx + phase[c, 1]) for c in range(3)], -1)
        image[label > 0] *= 0.5
        image = np.clip(image, 0, 255).astype(np.uint8)
        canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
        canvas[top : top + h, left : left + w] = image
        canvas_label = np.zeros((CANVAS, CANVAS), np.int32)
        canvas_label[top : top + h, left : left + w] = label
        ys = (np.arange(ROUGH) * h // ROUGH)
        xs = (np.arange(ROUGH) * w // ROUGH)
        centers, present = part_centers.part_centers(np.eye(9, dtype=np.float32)[label][None], "paper")
        out["rough_image"].append(image[ys][:, xs].astype(np.float32) / 255.0)
        out["rough_label"].append(label[ys][:, xs])
        out["canvas"].append(canvas)
        out["canvas_label"].append(canvas_label)
        out["image_size"].append(np.array([h, w], np.int32))
        out["image_origin"].append(np.array([top, left], np.int32))
        out["centers"].append(np.asarray(centers[0], np.float32))
        out["centers_present"].append(np.asarray(present[0]))
    return {k: np.stack(v) for k, v in out.items()}


def stage_batch(batch: dict, stage: str) -> dict:
    from stn_icnn_jax.train.stages import STAGES

    return {k: batch[k] for k in STAGES[stage].features}


def learning_rates(stage: str) -> dict:
    return {"rough": {"rough": 1e-3}, "localizer": {"localizer": 1e-3},
            "parts": {"parts": 1e-3},
            "end_to_end": {"rough": 1e-3, "localizer": 1e-3, "parts": 1e-3}}[stage]


class Runner:
    """Fresh state + compiled steps (cached per mesh and BN mode) for one stage of the
    tiny model. ``optimizer``: ``"sgd"`` (plain SGD, learning rate 0.05, for exact
    comparisons) or ``"adam"`` (the project's ``train.step.make_optimizer``)."""

    def __init__(self, stage: str, optimizer: str = "sgd", seed: int = 0):
        import jax
        import numpy as np
        import optax

        from stn_icnn_jax.model import stn_icnn
        from stn_icnn_jax.train import stages, step

        self.stage_name = stage
        self.model = stn_icnn.STNiCNN(tiny_config())
        # rbg keys: the threefry init of these nets is much slower to compile on CPU.
        # Kept as numpy so donating a state never deletes them.
        self.variables = jax.tree.map(
            np.asarray, stn_icnn.init_variables(self.model, jax.random.key(seed, impl="rbg")))
        self.stage = stages.StageConfig(learning_rates=learning_rates(stage), halve_every_epochs=100)
        if optimizer == "adam":
            self.tx = step.make_optimizer(self.stage, 1, self.variables["params"])
        elif optimizer == "sgd":
            self.tx = optax.sgd(0.05)
        else:
            raise ValueError(f"optimizer {optimizer!r}")
        self.make_step = functools.partial(step.make_train_step, self.model, stages.STAGES[stage], self.stage,
                                           self.tx)
        self._steps = {}

    def fresh_state(self, mesh):
        import jax
        import numpy as np

        from stn_icnn_jax.train import distributed, step

        state = step.init_state(self.variables["params"], self.variables["batch_stats"], self.tx)
        state = jax.tree.map(np.asarray, state)
        return jax.device_put(state, distributed.replicated(mesh))

    def step_fn(self, mesh, per_device: bool):
        from stn_icnn_jax.train import distributed

        key = (tuple(d.id for d in mesh.devices.flat), per_device)
        if key not in self._steps:
            self._steps[key] = distributed.compile_train_step(
                self.make_step, mesh, per_device_batch_stats=per_device)
        return self._steps[key]

    def run(self, mesh, per_device: bool, batches: list[dict]):
        """-> (final state, per-step metrics as floats, with each step's seconds)."""
        import time

        import jax

        from stn_icnn_jax.train import distributed

        step = self.step_fn(mesh, per_device)
        state = self.fresh_state(mesh)
        history = []
        for batch in batches:
            started = time.perf_counter()
            state, metrics = step(state, distributed.to_global(batch, mesh))
            history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
            history[-1]["seconds"] = time.perf_counter() - started
        return state, history


    def stepwise(self, mesh_a, mesh_b, batches: list[dict]) -> list[tuple[float, float]]:
        """Runs ``batches`` on ``mesh_a``; at each step also runs the step on ``mesh_b``
        from the same (copied) state; -> per step (params diff, batch_stats diff)."""
        import jax

        from stn_icnn_jax.train import distributed

        step_a, step_b = self.step_fn(mesh_a, False), self.step_fn(mesh_b, False)
        state = self.fresh_state(mesh_a)
        out = []
        for batch in batches:
            before = local_copy(state)
            state, _ = step_a(state, distributed.to_global(batch, mesh_a))
            other, _ = step_b(jax.device_put(before, distributed.replicated(mesh_b)),
                              distributed.to_global(batch, mesh_b))
            a, b = local_copy(state), local_copy(other)
            out.append((max_diff(a.params, b.params), max_diff(a.batch_stats, b.batch_stats)))
        return out


def leaf_diffs(a, b) -> dict[str, float]:
    """Per-leaf max |a - b|, keyed by the leaf's path."""
    import jax
    import numpy as np

    out = {}
    for (path, x), (_, y) in zip(jax.tree_util.tree_flatten_with_path(a)[0],
                                 jax.tree_util.tree_flatten_with_path(b)[0]):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out[jax.tree_util.keystr(path)] = float(np.max(np.abs(x - y))) if x.size else 0.0
    return out


def local_copy(tree):
    """This process's replica of a replicated tree as numpy (works multi-process)."""
    import jax
    import numpy as np

    return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data), tree)


def max_diff(a, b) -> float:
    import jax
    import numpy as np

    leaves = jax.tree.leaves(jax.tree.map(
        lambda x, y: float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        if np.size(x) else 0.0, a, b))
    return max(leaves) if leaves else 0.0


def equivalence(steps: int) -> dict:
    import jax
    import numpy as np

    from stn_icnn_jax.train import distributed

    if jax.device_count() != 4:
        raise RuntimeError(f"expected 4 fake devices (XLA_FLAGS), got {jax.device_count()}")
    mesh1, mesh4 = distributed.make_mesh(1), distributed.make_mesh(4)
    report: dict = {"devices": jax.device_count()}
    for stage in ("rough", "end_to_end"):
        runner = Runner(stage, "sgd")
        batches = [stage_batch(make_batch(GLOBAL_BATCH, seed=s), stage) for s in range(steps)]
        one, one_hist = runner.run(mesh1, False, batches)
        four, four_hist = runner.run(mesh4, False, batches)
        per, per_hist = runner.run(mesh4, True, batches)
        stepwise = runner.stepwise(mesh1, mesh4, batches)
        one_np, four_np, per_np = map(local_copy, (one, four, per))
        r = {
            "loss_1dev": [h["loss"] for h in one_hist],
            "loss_4dev": [h["loss"] for h in four_hist],
            "loss_4dev_per_device": [h["loss"] for h in per_hist],
            # Each step from the same state on 1 and on 4 devices (max over the steps).
            "stepwise_params_4dev_vs_1dev": max(d[0] for d in stepwise),
            "stepwise_stats_4dev_vs_1dev": max(d[1] for d in stepwise),
            # Free-running: each mesh continues from its own state.
            "params_4dev_vs_1dev": max_diff(four_np.params, one_np.params),
            "stats_4dev_vs_1dev": max_diff(four_np.batch_stats, one_np.batch_stats),
            "params_moved": max_diff(one_np.params, runner.variables["params"]),
            "stats_moved": max_diff(one_np.batch_stats, runner.variables["batch_stats"]),
            "per_device_params_vs_global": max_diff(per_np.params, one_np.params),
            "per_device_stats_vs_global": max_diff(per_np.batch_stats, one_np.batch_stats),
            "replica_divergence_4dev": distributed.replica_divergence(
                (four.params, four.batch_stats, four.opt_state)),
            "replica_divergence_per_device": distributed.replica_divergence(
                (per.params, per.batch_stats, per.opt_state)),
            "replica_copies": len(per.step.addressable_shards),
            "step_count_per_device": int(local_copy(per.step)),
        }
        # Reference for one per-device step, built without shard_map: each device's
        # quarter of the batch through the 1-device (global-BN) step. BN running stats are
        # linear in the batch statistics and the loss is a mean, so the per-device step's
        # new statistics and loss must be the means of these four.
        quarter = GLOBAL_BATCH // 4
        ref_stats, ref_losses = [], []
        for k in range(4):
            sl = {key: v[k * quarter : (k + 1) * quarter] for key, v in batches[0].items()}
            s, h = runner.run(mesh1, False, [sl])
            ref_stats.append(local_copy(s.batch_stats))
            ref_losses.append(h[0]["loss"])
        per_one, per_one_hist = runner.run(mesh4, True, batches[:1])
        mean_stats = jax.tree.map(lambda *xs: np.mean(np.stack(xs), 0), *ref_stats)
        r["per_device_step1_stats_vs_quarter_mean"] = max_diff(local_copy(per_one.batch_stats), mean_stats)
        r["global_step1_stats_vs_quarter_mean"] = max_diff(
            local_copy(runner.run(mesh1, False, batches[:1])[0].batch_stats), mean_stats)
        r["per_device_step1_loss"] = per_one_hist[0]["loss"]
        r["quarter_mean_loss"] = float(np.mean(ref_losses))
        if stage == "rough":
            # The switch on one device is the global step.
            per1, _ = runner.run(mesh1, True, batches)
            r["per_device_1dev_vs_global"] = max_diff(
                local_copy((per1.params, per1.batch_stats)), (one_np.params, one_np.batch_stats))
            # The project's Adam: per-leaf differences 4 vs 1 device, next to how far plain
            # SGD moved each leaf (a leaf SGD barely moves has a ~zero gradient).
            sgd_moved = leaf_diffs(one_np.params, runner.variables["params"])
            adam = Runner(stage, "adam")
            a1, _ = adam.run(mesh1, False, batches)
            a4, _ = adam.run(mesh4, False, batches)
            r["adam_param_leaf_diffs"] = leaf_diffs(local_copy(a4.params), local_copy(a1.params))
            r["adam_stats_4dev_vs_1dev"] = max_diff(local_copy(a4.batch_stats), local_copy(a1.batch_stats))
            r["sgd_param_leaf_moved"] = sgd_moved
            r["adam_params_moved"] = max_diff(local_copy(a1.params), adam.variables["params"])
        report[stage] = r

    # A batch that does not split over the devices.
    runner = Runner("rough")
    bad = {k: v[:6] for k, v in stage_batch(make_batch(GLOBAL_BATCH), "rough").items()}
    errors = {}
    for name, fn in {
        "check_batch_size": lambda: distributed.check_batch_size(6, mesh4),
        "to_global": lambda: distributed.to_global(bad, mesh4),
        "step_global": lambda: runner.step_fn(mesh4, False)(runner.fresh_state(mesh4), bad),
        "step_per_device": lambda: runner.step_fn(mesh4, True)(runner.fresh_state(mesh4), bad),
    }.items():
        try:
            fn()
            errors[name] = None
        except Exception as e:  # noqa: BLE001 - the parent checks type and message
            errors[name] = f"{type(e).__name__}: {e}"
    report["errors"] = errors
    return report


def train_mode(args) -> dict:
    import jax
    import numpy as np

    from stn_icnn_jax.train import distributed

    if args.coordinator:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    mesh = distributed.make_mesh()
    runner = Runner(args.stage, args.optimizer)
    local = distributed.check_batch_size(GLOBAL_BATCH, mesh)
    pid = jax.process_index()
    batches = []
    for s in range(args.steps):
        full = stage_batch(make_batch(GLOBAL_BATCH, seed=s), args.stage)
        batches.append({k: v[pid * local : (pid + 1) * local] for k, v in full.items()})
    state, history = runner.run(mesh, args.per_device, batches)
    out = local_copy({"params": state.params, "batch_stats": state.batch_stats})
    flat = {"/".join(str(getattr(p, "key", p)) for p in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(out)[0]}
    np.savez(args.out, **flat)
    info = {"process_index": pid, "process_count": jax.process_count(),
            "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
            "local_batch": local, "losses": [h["loss"] for h in history],
            "params_moved": max_diff(out["params"], runner.variables["params"]),
            "replica_divergence": distributed.replica_divergence(
                (state.params, state.batch_stats))}
    if args.coordinator:
        jax.distributed.shutdown()
    return info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["equivalence", "train"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--stage", default="end_to_end")
    parser.add_argument("--per-device", action="store_true")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    parser.add_argument("--out")
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args(argv)
    result = equivalence(args.steps) if args.mode == "equivalence" else train_mode(args)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
