"""Training runs: exact resume after SIGKILL, no retraining of a finished work directory,
NaN stop, refusal of a foreign work directory, end-to-end gradients into K and L,
frozen networks, ``--stage``, and the files a run leaves (results, metrics, events).

Everything runs on a tiny configuration (8 faces of 64-96 px on a 96 canvas, rough
size 32, 4-8 channel iCNNs). The CLI tests share one persistent XLA compilation cache,
so only the first subprocess compiles.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import training_helpers
from stn_icnn_jax import cli
from stn_icnn_jax.config import build, load_config
from stn_icnn_jax.data.sources import load_sources
from stn_icnn_jax.train import checkpoints, distributed, loop, stages
from stn_icnn_jax.train import run as runner
from stn_icnn_jax.train import step as train_step
from stn_icnn_jax.data import input_pipeline
from training_helpers import assert_bitwise_equal, read_checkpoint, stage_checkpoints

STAGES = ("rough", "localizer")
STEPS_PER_EPOCH = 4  # 8 faces x 2 copies / batch 4
EPOCHS = 2
CLI_TIMEOUT = 600

TINY_CONFIG = training_helpers.tiny_config_source(STAGES, EPOCHS)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.py"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory) -> Path:
    """One persistent XLA cache for this module's subprocesses and in-process runs
    (the model init and eval steps are the same programs in both)."""
    with training_helpers.compilation_cache(tmp_path_factory.mktemp("jax_cache")) as path:
        yield path


@pytest.fixture(scope="module")
def cli_env(compilation_cache) -> dict:
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = str(compilation_cache)
    env["JAX_PLATFORMS"] = "cpu"
    return env


def train_command(config_file: Path, workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stn_icnn_jax.cli", "train", "--config", str(config_file),
            "--workdir", str(workdir), "--no_progress", *extra]


def run_cli(command: list[str], env: dict) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True,
                            timeout=CLI_TIMEOUT)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def read_jsonl(path: Path) -> list[dict]:
    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name} in {path}")

    return [json.loads(line, parse_constant=no_constants)
            for line in path.read_text().splitlines()]


def read_tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file: TFRecord framing with both CRCs checked."""
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    files = sorted(directory.glob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file in {directory}"
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            header = data[offset : offset + 8]
            (length,) = struct.unpack("<Q", header)
            (length_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
            assert length_crc == masked_crc32c(header), f"{path}: bad length CRC at {offset}"
            payload = data[offset + 12 : offset + 12 + length]
            (payload_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
            assert payload_crc == masked_crc32c(payload), f"{path}: bad data CRC at {offset}"
            offset += 16 + length
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


# --------------------------------------------------------------------------- CLI runs


@pytest.fixture(scope="module")
def full_run(tiny_config_file, cli_env, tmp_path_factory) -> dict:
    """An uninterrupted run of both stages (the reference for the other CLI tests)."""
    workdir = tmp_path_factory.mktemp("full") / "work"
    stdout = run_cli(train_command(tiny_config_file, workdir), cli_env)
    return {"workdir": workdir, "stdout": stdout,
            "results": json.loads((workdir / "results.json").read_text())}


@pytest.fixture(scope="module")
def rough_only_run(tiny_config_file, cli_env, tmp_path_factory) -> dict:
    """``--stage rough`` alone on a fresh work directory."""
    workdir = tmp_path_factory.mktemp("rough_only") / "work"
    stdout = run_cli(train_command(tiny_config_file, workdir, "--stage", "rough"), cli_env)
    return {"workdir": workdir, "stdout": stdout,
            "results": json.loads((workdir / "results.json").read_text())}


def test_sigkill_mid_epoch_then_resume_is_bitwise_exact(full_run, rough_only_run,
                                                        tiny_config_file, cli_env, tmp_path):
    # Start from the finished rough stage, run the full command, SIGKILL it once the
    # localizer's first (mid-epoch) checkpoint exists, run the same command again.
    workdir = tmp_path / "work"
    shutil.copytree(rough_only_run["workdir"], workdir)
    (workdir / "results.json").unlink()
    command = train_command(tiny_config_file, workdir)
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(command, env=cli_env, stdout=log, stderr=subprocess.STDOUT)
    first = workdir / "localizer" / "checkpoints" / "1"
    deadline = time.monotonic() + CLI_TIMEOUT
    while not first.is_dir():
        assert process.poll() is None, f"run ended before it could be killed: {process.returncode}"
        assert time.monotonic() < deadline, "no localizer checkpoint appeared"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    log.close()
    assert process.returncode == -signal.SIGKILL
    assert not (workdir / "results.json").exists()
    _, progress, killed_at = read_checkpoint(workdir, "localizer")
    assert progress["epoch"] == 0 and 0 < progress["batch_in_epoch"] < STEPS_PER_EPOCH, progress
    assert progress["loader_state"], "the grain iterator state is not in the checkpoint"

    stdout = run_cli(command, cli_env)
    assert "[rough] finished earlier; nothing to train" in stdout
    assert (f"[localizer] resuming from step {killed_at} (epoch 1, batch "
            f"{progress['batch_in_epoch']})") in stdout

    reference = full_run["workdir"]
    for stage in STAGES:
        ours, our_progress, our_step = read_checkpoint(workdir, stage)
        theirs, their_progress, their_step = read_checkpoint(reference, stage)
        assert our_step == their_step == EPOCHS * STEPS_PER_EPOCH
        assert_bitwise_equal(ours, theirs, f"{stage} final state")
        assert our_progress == their_progress
        # the best checkpoint (what the next stage starts from) too
        best = our_progress["best_step"]
        assert_bitwise_equal(read_checkpoint(workdir, stage, best)[0],
                             read_checkpoint(reference, stage, best)[0], f"{stage} best state")
    assert json.loads((workdir / "results.json").read_text())["test"] == full_run["results"]["test"]

    # The comparison is not vacuous: the localizer stage moved L away from where the
    # rough stage's best checkpoint (the rough stage does not train L) left it, and did
    # not touch K.
    rough_best = read_checkpoint(reference, "rough")[1]["best_step"]
    rough_state = read_checkpoint(reference, "rough", rough_best)[0]
    final = read_checkpoint(workdir, "localizer")[0]
    l_keys = [k for k in final if k.startswith(".params['localizer']")]
    k_keys = [k for k in final if k.startswith(".params['rough']")]
    assert l_keys and k_keys
    changed = [k for k in l_keys if not np.array_equal(final[k], rough_state[k])]
    assert len(changed) > len(l_keys) // 2
    assert all(np.array_equal(final[k], rough_state[k]) for k in k_keys)


def test_best_checkpoint_is_the_best_validation_epoch(full_run):
    """Each stage's best step is the first epoch of highest selection score among its
    validation records (overall F1; minus the theta loss for the localiser), and the
    checkpoint of that step is kept."""
    records = read_jsonl(full_run["workdir"] / "metrics.jsonl")
    for name in STAGES:
        stage = stages.STAGES[name]
        validations = [r for r in records if r["kind"] == "validation" and r["stage"] == name]
        assert len(validations) == EPOCHS
        best_step, best = None, None
        for record in validations:
            score = stage.selection_metric(record)
            assert record["selection"] == pytest.approx(score)
            if loop.improves(score, best):
                best_step, best = record["step"], score
        _, progress, _ = read_checkpoint(full_run["workdir"], name)
        assert progress["best_step"] == best_step and progress["best_selection"] == best
        assert read_checkpoint(full_run["workdir"], name, best_step)[2] == best_step


def test_rerun_of_finished_workdir_does_not_retrain(full_run, tiny_config_file, cli_env,
                                                    tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(full_run["workdir"], workdir)

    def snapshot():
        out = {}
        for stage in STAGES:
            ckpt = stage_checkpoints(workdir, stage)
            out[stage] = [(step, (ckpt.directory / str(step)).stat().st_mtime_ns)
                          for step in ckpt.all_steps()]
            ckpt.close()
        return out

    before = snapshot()
    kinds_before = [r["kind"] for r in read_jsonl(workdir / "metrics.jsonl")]

    stdout = run_cli(train_command(tiny_config_file, workdir), cli_env)
    for stage in STAGES:
        assert f"[{stage}] finished earlier; nothing to train" in stdout
    assert snapshot() == before
    kinds_after = [r["kind"] for r in read_jsonl(workdir / "metrics.jsonl")]
    assert kinds_after[: len(kinds_before)] == kinds_before
    assert not {"train", "validation"} & set(kinds_after[len(kinds_before):])
    results = json.loads((workdir / "results.json").read_text())
    assert results["test"] == full_run["results"]["test"]

    # --stage localizer on the finished work directory: loads K from the rough stage's
    # best checkpoint, trains nothing, same test result.
    stdout = run_cli(train_command(tiny_config_file, workdir, "--stage", "localizer"), cli_env)
    assert "[rough] using the finished stage's best checkpoint" in stdout
    assert "[localizer] finished earlier; nothing to train" in stdout
    assert snapshot() == before
    assert json.loads((workdir / "results.json").read_text())["test"] == full_run["results"]["test"]


def test_stage_flag_trains_only_that_stage_and_reports(rough_only_run):
    workdir, results = rough_only_run["workdir"], rough_only_run["results"]
    assert (workdir / "rough" / "checkpoints").is_dir()
    assert not (workdir / "localizer").exists()
    assert results["stage"] == "rough" and results["stages"] == ["rough"]
    f1 = results["test"]["f1"]
    assert set(f1) == {"eyes", "brows", "nose", "inner_mouth", "upper_lip", "lower_lip",
                       "mouth", "overall"}
    assert 0.0 <= f1["overall"] <= 1.0 and results["test"]["pixels"] == 4 * 32 * 32
    # the run ends by printing the F1 table
    assert rough_only_run["stdout"].rstrip().endswith(runner.format_results(results))
    assert "| eyes | brows | nose |" in rough_only_run["stdout"]

    records = read_jsonl(workdir / "metrics.jsonl")
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_records] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert all(r["stage"] == "rough" and np.isfinite(r["loss"]) for r in train_records)
    validation = [r for r in records if r["kind"] == "validation"]
    assert [(r["epoch"], r["step"]) for r in validation] == [
        (e + 1, (e + 1) * STEPS_PER_EPOCH) for e in range(EPOCHS)]
    (test,) = [r for r in records if r["kind"] == "test"]
    assert test["f1"] == f1

    scalars = read_tensorboard_scalars(workdir / "tensorboard")
    losses = scalars["train/rough/loss"]
    assert [step for step, _ in losses] == [r["step"] for r in train_records]
    np.testing.assert_allclose([v for _, v in losses], [r["loss"] for r in train_records],
                               rtol=1e-6)
    assert [step for step, _ in scalars["validation/rough/f1/overall"]] == [
        r["step"] for r in validation]
    np.testing.assert_allclose(scalars["test/rough/f1/overall"][0][1], f1["overall"], rtol=1e-6)


def test_workdir_of_another_config_is_refused(full_run, tiny_config_file, tmp_path, capsys):
    workdir = tmp_path / "work"
    shutil.copytree(full_run["workdir"], workdir)
    listing = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    config_json = (workdir / "config.json").read_text()

    config = load_config(tiny_config_file, ["--config.stages.localizer.learning_rates"
                                                      ".localizer=0.5"])
    with pytest.raises(checkpoints.ConfigMismatchError) as error:
        runner.run(config, workdir, show_progress=False)
    message = str(error.value)
    assert str(workdir) in message and "different configuration" in message
    assert "stages.localizer.learning_rates.localizer: 0.0017 there, 0.5 now" in message

    # the CLI says the same, without a traceback, and exits non-zero
    code = cli.main(["train", "--config", str(tiny_config_file), "--workdir", str(workdir),
                     "--no_progress", "--config.train.batch_size=2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.batch_size: 4 there, 2 now" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")) == listing
    assert (workdir / "config.json").read_text() == config_json

    # bookkeeping fields that do not change results may differ
    relaxed = load_config(tiny_config_file, ["--config.train.log_every_steps=5",
                                                       "--config.train.keep_checkpoints=7"])
    checkpoints.check_or_write_config(workdir, relaxed.to_json(sort_keys=True))
    assert (workdir / "config.json").read_text() == config_json


# --------------------------------------------------------------------------- NaN stop


@pytest.fixture(scope="module")
def tiny_config(tiny_config_file, compilation_cache):
    return load_config(tiny_config_file)


def _poisoned_steps(what: str, at_step: int):
    """``train_step.make_train_step`` whose step ``at_step`` yields a NaN loss or NaN params."""
    make = train_step.make_train_step

    def make_poisoned(*args, **kwargs):
        step_fn = make(*args, **kwargs)

        def poisoned(state, batch):
            new, metrics = step_fn(state, batch)
            bad = new.step >= at_step
            if what == "loss":
                metrics = dict(metrics, loss=jnp.where(bad, jnp.nan, metrics["loss"]))
            else:
                new = new.replace(params=jax.tree.map(
                    lambda p: jnp.where(bad, jnp.inf, p), new.params))
            return new, metrics

        return poisoned

    return make_poisoned


@pytest.mark.parametrize("what", ["loss", "params"])
def test_non_finite_step_stops_with_message_and_keeps_last_good_checkpoint(
        what, tiny_config, tmp_path, monkeypatch):
    config = tiny_config.copy_and_resolve_references()
    config.stage_order = ("rough",)
    monkeypatch.setattr(train_step, "make_train_step", _poisoned_steps(what, at_step=3))
    workdir = tmp_path / "work"
    with pytest.raises(FloatingPointError) as error:
        runner.run(config, workdir, show_progress=False)
    message = str(error.value)
    ckpt_dir = workdir / "rough" / "checkpoints"
    assert message.startswith("[rough] loss is ")
    assert "at step 3 (epoch 1, batch 3)" in message
    if what == "params":
        assert "updated parameters are not finite" in message
    assert f"The last good checkpoint, step 2, is kept in {ckpt_dir / '2'}" in message

    leaves, progress, step = read_checkpoint(workdir, "rough")
    assert step == 2 and progress["batch_in_epoch"] == 2
    assert all(np.isfinite(v).all() for v in leaves.values())
    ckpt = stage_checkpoints(workdir, "rough")
    assert ckpt.all_steps() == [1, 2]
    ckpt.close()
    records = read_jsonl(workdir / "metrics.jsonl")
    assert records[-1]["kind"] == "error" and records[-1]["message"] == message
    assert not (workdir / "results.json").exists()


def test_huge_learning_rate_stops_the_run(tiny_config, tmp_path):
    config = tiny_config.copy_and_resolve_references()
    config.stage_order = ("rough",)
    config.stages.rough.learning_rates.rough = 1e30
    workdir = tmp_path / "work"
    with pytest.raises(FloatingPointError, match=r"^\[rough\] loss is .* at step \d+") as error:
        runner.run(config, workdir, show_progress=False)
    leaves, _, step = read_checkpoint(workdir, "rough")
    assert f"The last good checkpoint, step {step}, is kept" in str(error.value)
    assert all(np.isfinite(v).all() for v in leaves.values())


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def e2e_setup(tiny_config):
    config = tiny_config.copy_and_resolve_references()
    sources = load_sources(config, show_progress=False)
    mesh = distributed.make_mesh()
    model, variables = runner.initial_variables(config, sources, mesh)
    loader = input_pipeline.make_loader(
        sources["train"], stages.STAGES["end_to_end"].features,
        build.input_config(config, 4, training=True),
        num_epochs=1)
    batch = next(iter(loader))
    return model, jax.device_get(variables), batch


def _two_steps(setup, learning_rates: dict, update_frozen_batch_stats: bool = False):
    """Two steps on one batch. Two because L's dense head starts at zero (theta = the
    mean boxes whatever the features), so the first step's gradient reaches only the
    head; from the second on it flows through L's features into K."""
    model, variables, batch = setup
    stage = stages.StageConfig(learning_rates=learning_rates,
                              update_frozen_batch_stats=update_frozen_batch_stats)
    tx = train_step.make_optimizer(stage, 1, variables["params"])
    state = train_step.init_state(variables["params"], variables["batch_stats"], tx)
    step = jax.jit(train_step.make_train_step(model, stages.STAGES["end_to_end"], stage, tx))
    # Optimisation level 0 compiles ~40% faster; this test checks which values move.
    compiled = step.lower(state, batch).compile(
        compiler_options={"xla_backend_optimization_level": 0})
    for _ in range(2):
        state, metrics = compiled(state, batch)
        assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    return jax.device_get(state)


def _changed_fraction(before, after) -> float:
    pairs = list(zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    assert pairs
    for _, b in pairs:
        assert np.isfinite(b).all()
    return sum(not np.array_equal(a, b) for a, b in pairs) / len(pairs)


def test_end_to_end_step_trains_rough_and_localizer_through_the_crop(e2e_setup):
    # K and L reach the end-to-end loss only through theta -> crop, so any change of
    # theirs is a gradient through the sampler (the authors' script discards it).
    _, before, _ = e2e_setup
    after = _two_steps(e2e_setup, {"rough": 1e-3, "localizer": 1e-3, "parts": 1e-2})
    assert int(after.step) == 2
    for name in ("rough", "localizer", "parts"):
        assert _changed_fraction(before["params"][name], after.params[name]) > 0.5, name
        assert _changed_fraction(before["batch_stats"][name], after.batch_stats[name]) > 0.5, name


@pytest.mark.parametrize("update_frozen_batch_stats", [False, True])
def test_frozen_networks_do_not_change(e2e_setup, update_frozen_batch_stats):
    # The authors' end-to-end recipe: K and L frozen (lr 0 -> optax.set_to_zero), C trains.
    _, before, _ = e2e_setup
    after = _two_steps(e2e_setup, {"rough": 0.0, "localizer": 0.0, "parts": 1e-2},
                      update_frozen_batch_stats)
    for name in ("rough", "localizer"):
        assert _changed_fraction(before["params"][name], after.params[name]) == 0.0, name
        stats_changed = _changed_fraction(before["batch_stats"][name], after.batch_stats[name])
        if update_frozen_batch_stats:
            assert stats_changed > 0.5, name
        else:
            assert stats_changed == 0.0, name
    assert _changed_fraction(before["params"]["parts"], after.params["parts"]) > 0.5
    assert _changed_fraction(before["batch_stats"]["parts"], after.batch_stats["parts"]) > 0.5


def test_frozen_networks_gradients_are_not_computed(e2e_setup):
    """K and L frozen: the step's grad_norm is the parts' gradient norm (computed here
    with jax.grad on the same loss), and XLA drops K's and L's weight gradients (fewer
    FLOPs than the same step with them training at a tiny rate)."""
    model, variables, batch = e2e_setup
    stage = stages.STAGES["end_to_end"]

    def compiled_step(rates):
        config = stages.StageConfig(learning_rates=rates)
        tx = train_step.make_optimizer(config, 1, variables["params"])
        state = train_step.init_state(variables["params"], variables["batch_stats"], tx)
        step = jax.jit(train_step.make_train_step(model, stage, config, tx))
        compiled = step.lower(state, batch).compile(
            compiler_options={"xla_backend_optimization_level": 0})
        return config, state, compiled

    frozen, state, compiled = compiled_step({"rough": 0.0, "localizer": 0.0, "parts": 1e-2})
    _, metrics = compiled(state, batch)
    grads = jax.grad(lambda p: train_step.stage_loss(model, stage, frozen, p,
                                                     state.batch_stats, batch)[0])(state.params)
    want = np.sqrt(sum(float(np.sum(np.square(g))) for g in jax.tree.leaves(grads["parts"])))
    assert float(metrics["grad_norm"]) == pytest.approx(want, rel=1e-4)
    flops = lambda c: c.cost_analysis()["flops"]  # noqa: E731
    training = compiled_step({"rough": 1e-9, "localizer": 1e-9, "parts": 1e-2})[2]
    assert flops(compiled) < 0.9 * flops(training)


def test_stage_plan_loads_earlier_stages_instead_of_training_them(tiny_config):
    config = tiny_config.copy_and_resolve_references()
    config.stage_order = stages.STAGE_NAMES
    assert runner.stage_plan(config) == [(s, True) for s in stages.STAGE_NAMES]
    assert runner.stage_plan(config, ["parts"]) == [
        ("rough", False), ("localizer", False), ("parts", True)]
    assert runner.stage_plan(config, ["end_to_end", "rough"]) == [
        ("rough", True), ("localizer", False), ("parts", False), ("end_to_end", True)]
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        runner.stage_plan(config, ["nope"])
