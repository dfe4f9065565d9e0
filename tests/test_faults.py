"""Faults of real hosts, injected: SIGTERM / SIGINT mid-epoch, damaged checkpoints, a
second run on a work directory in use, a disk that fills during a save, a damaged
dataset file (truncated, missing, overwritten mid-file, a record that does not decode),
and every kind of CLI error (one line, exit 2 / 1 / 75).

Each training test runs the tiny ``rough`` stage (8 faces, batch 4: 4 steps per epoch,
2 epochs, a checkpoint every step) and compares the final state bitwise with one
uninterrupted run of the same configuration (``reference``); these are marked slow
(the reference run alone takes 2-4 minutes on 2 busy cores). The unit tests of the same
mechanisms (checkpoint fallback on 5 kinds of damage, the lock, the CLI errors) are not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import dataset_damage
import training_helpers
from stn_icnn_jax import cli
from stn_icnn_jax.config import load_config
from stn_icnn_jax.errors import EXIT_PREEMPTED
from stn_icnn_jax.train import checkpoints, distributed, preemption, workdir_lock
from stn_icnn_jax.train import run as runner
from training_helpers import assert_bitwise_equal, read_checkpoint

STEPS_PER_EPOCH, EPOCHS = 4, 2
FINAL_STEP = STEPS_PER_EPOCH * EPOCHS

TINY_CONFIG = training_helpers.tiny_config_source(("rough",), EPOCHS)


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory) -> Path:
    with training_helpers.compilation_cache(tmp_path_factory.mktemp("jax_cache")) as path:
        yield path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.py"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(config_file, compilation_cache, tmp_path_factory) -> Path:
    """An uninterrupted run's work directory."""
    workdir = tmp_path_factory.mktemp("reference") / "work"
    runner.run(load_config(config_file), workdir, show_progress=False)
    return workdir


def train_argv(config_file: Path, workdir: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(config_file), "--workdir", str(workdir), "--no_progress",
            *extra]


def one_error_line(err: str, prefix: str = "error: ") -> str:
    """The single line of stderr (fails on a traceback or more lines)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


def assert_same_as_reference(workdir: Path, reference: Path) -> None:
    ours, our_progress, our_step = read_checkpoint(workdir, "rough")
    theirs, their_progress, their_step = read_checkpoint(reference, "rough")
    assert our_step == their_step == FINAL_STEP
    assert_bitwise_equal(ours, theirs, "final state")
    assert our_progress == their_progress
    best = our_progress["best_step"]
    assert_bitwise_equal(read_checkpoint(workdir, "rough", best)[0],
                         read_checkpoint(reference, "rough", best)[0], "best state")
    assert (json.loads((workdir / "results.json").read_text())["test"]
            == json.loads((reference / "results.json").read_text())["test"])


# --------------------------------------------------------------------------- preemption


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_epoch_saves_stops_and_resumes_bitwise(sig, config_file, reference, tmp_path,
                                                          capsys, monkeypatch):
    """SIGINT: the stop (one run); SIGTERM: the stop and the bitwise resume (slow)."""
    # No periodic checkpoints: the checkpoint the run stops with (and its data position)
    # is written by the preemption path alone. The signal arrives during step 3.
    workdir = tmp_path / "work"
    argv = train_argv(config_file, workdir, "--config.train.checkpoint_every_steps=0")
    reached = preemption.PreemptionWatch.reached
    calls = []

    def signal_during_step_3(self):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), sig)
        return reached(self)

    with monkeypatch.context() as m:
        m.setattr(preemption.PreemptionWatch, "reached", signal_during_step_3)
        assert cli.main(argv) == EXIT_PREEMPTED
    line = one_error_line(capsys.readouterr().err, "stopped: ")
    ckpt_dir = workdir / "rough" / "checkpoints"
    assert (f"[rough] stopped by {sig.name} after step 3 (epoch 1, batch 3); checkpoint saved "
            f"in {ckpt_dir / '3'}.") in line
    assert line.endswith("Resume with: stn-icnn " + " ".join(argv))
    _, progress, step = read_checkpoint(workdir, "rough")
    assert step == 3 and progress["epoch"] == 0 and progress["batch_in_epoch"] == 3
    assert progress["loader_state"], "the data position is not in the checkpoint"
    assert not (workdir / "train.lock").exists()
    assert not (workdir / "results.json").exists()
    # the signal handlers are the old ones again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if sig == signal.SIGINT:
        return

    assert cli.main(argv) == 0
    assert "[rough] resuming from step 3 (epoch 1, batch 3)" in capsys.readouterr().out
    assert_same_as_reference(workdir, reference)


@pytest.mark.slow
def test_sigterm_from_outside_then_same_command_resumes_bitwise(config_file, reference,
                                                                compilation_cache, tmp_path):
    # A real external SIGTERM at whatever moment the run has reached after its first step.
    workdir = tmp_path / "work"
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(compilation_cache),
               JAX_PLATFORMS="cpu")
    command = [sys.executable, "-m", "stn_icnn_jax.cli", *train_argv(config_file, workdir)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not (metrics.exists() and '"kind": "train"' in metrics.read_text()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=600)
    assert process.returncode == EXIT_PREEMPTED, (out, err)
    line = one_error_line(err, "stopped: ")
    assert "[rough] stopped by SIGTERM after step" in line and "Resume with: stn-icnn train" in line
    _, progress, step = read_checkpoint(workdir, "rough")
    assert 1 <= step < FINAL_STEP, progress

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"[rough] resuming from step {step}" in result.stdout
    assert_same_as_reference(workdir, reference)


# --------------------------------------------------------------------------- damaged checkpoints


def _data_files(step_dir: Path) -> list[Path]:
    return sorted(p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d")


def damage(step_dir: Path, how: str) -> None:
    """Damages a checkpoint the way a crash or a bad copy does."""
    if how == "truncated":
        for path in _data_files(step_dir):
            os.truncate(path, path.stat().st_size // 2)
    elif how == "zeroed":
        for path in _data_files(step_dir):
            path.write_bytes(bytes(path.stat().st_size))
    elif how == "missing":
        for path in _data_files(step_dir):
            path.unlink()
    elif how == "missing_progress":
        (step_dir / "progress" / "metadata").unlink()
    elif how == "flipped":  # one bit of the largest data file
        path = max(_data_files(step_dir), key=lambda p: p.stat().st_size)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    else:
        raise ValueError(how)


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def _small_checkpoints(directory: Path, steps=range(1, 5)) -> tuple[checkpoints.StageCheckpoints, dict]:
    """A few checkpoints of a two-leaf state (arrays big enough to span data files)."""
    ckpt = checkpoints.StageCheckpoints(directory, keep=10)
    states = {}
    for step in steps:
        rng = np.random.default_rng(step)
        states[step] = {"w": rng.normal(size=(64, 64)).astype(np.float32),
                        "n": rng.integers(0, 1000, size=(100,), dtype=np.int32)}
        ckpt.save(step, states[step], {"step": step})
    return ckpt, states


@pytest.mark.parametrize("how", ["truncated", "zeroed", "missing", "missing_progress", "flipped"])
def test_damaged_newest_checkpoint_is_set_aside_and_previous_restored(how, tmp_path, capsys):
    directory = tmp_path / "stage" / "checkpoints"
    ckpt, states = _small_checkpoints(directory)
    try:
        damage(directory / "4", how)
        damaged_files = listing(directory / "4")
        step, state, progress = ckpt.restore_latest(states[1])
        assert step == 3 and progress == {"step": 3}
        assert_bitwise_equal(state, states[3], "restored state")
        line = one_error_line(capsys.readouterr().err, "warning: ")
        aside = tmp_path / "stage" / checkpoints.SET_ASIDE_DIR / "4"
        assert line.startswith(f"warning: checkpoint {directory / '4'} is unreadable: ")
        assert line.endswith(f"moved it to {aside}, falling back to the previous checkpoint")
        assert listing(aside) == damaged_files  # kept, file for file
        assert ckpt.all_steps() == [1, 2, 3]
        # the next save of step 4 works and does not touch the set-aside copy
        ckpt.save(4, states[4], {"step": 4})
        assert_bitwise_equal(ckpt.restore(4, states[1])[0], states[4], "re-saved state")
        assert listing(aside) == damaged_files
    finally:
        ckpt.close()


@pytest.mark.slow
def test_damaged_newest_checkpoint_run_resumes_bitwise(config_file, reference, tmp_path, capsys):
    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)
    (workdir / "results.json").unlink()
    ckpt_dir = workdir / "rough" / "checkpoints"
    newest = ckpt_dir / str(FINAL_STEP)
    damage(newest, "truncated")
    damaged_files = listing(newest)

    assert cli.main(train_argv(config_file, workdir)) == 0
    captured = capsys.readouterr()
    (warning,) = [line for line in captured.err.splitlines() if line.strip()]
    aside = workdir / "rough" / checkpoints.SET_ASIDE_DIR / str(FINAL_STEP)
    assert warning.startswith(f"warning: checkpoint {newest} is unreadable: ")
    assert warning.endswith(f"moved it to {aside}, falling back to the previous checkpoint")
    assert listing(aside) == damaged_files
    assert (f"[rough] resuming from step {FINAL_STEP - 1} (epoch {EPOCHS}, batch "
            f"{STEPS_PER_EPOCH - 1})") in captured.out
    assert_same_as_reference(workdir, reference)


@pytest.mark.slow
def test_all_checkpoints_damaged_is_one_clear_error(config_file, reference, tmp_path, capsys):
    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)
    ckpt_dir = workdir / "rough" / "checkpoints"
    ckpt = checkpoints.StageCheckpoints(ckpt_dir)
    steps = ckpt.all_steps()
    ckpt.close()
    assert len(steps) >= 3
    for step in steps:
        damage(ckpt_dir / str(step), "truncated")

    assert cli.main(train_argv(config_file, workdir)) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert [line for line in lines if line.startswith("warning: ")] == lines[:-1]
    assert len(lines) == len(steps) + 1
    assert lines[-1] == (
        f"error: none of the {len(steps)} checkpoints in {ckpt_dir} is readable (moved to "
        f"{workdir / 'rough' / checkpoints.SET_ASIDE_DIR}); restore the directory from a copy, "
        "or delete it to train this stage again")
    assert sorted(int(p.name) for p in (workdir / "rough" / checkpoints.SET_ASIDE_DIR).iterdir()) \
        == sorted(steps)


def _scored_checkpoints(directory: Path) -> tuple[checkpoints.StageCheckpoints, dict]:
    """Steps 1-5 of a two-leaf state; validation scores at 2 (0.5), 4 (0.9), 5 (0.7)."""
    ckpt = checkpoints.StageCheckpoints(directory, keep=10)
    states = {}
    for step in range(1, 6):
        states[step] = {"w": np.full((3, 4), step, np.float32), "n": np.arange(step, dtype=np.int32)[:1] + step}
        selection = {2: 0.5, 4: 0.9, 5: 0.7}.get(step)
        ckpt.save(step, states[step], {"step": step}, selection=selection)
    return ckpt, states


def test_damaged_best_checkpoint_falls_back_to_best_readable(tmp_path, capsys):
    directory = tmp_path / "stage" / "checkpoints"
    ckpt, states = _scored_checkpoints(directory)
    template = states[1]
    try:
        assert ckpt.best_scored_step() == 4
        step, state = ckpt.restore_best(template, 4)
        assert step == 4 and np.array_equal(state["w"], states[4]["w"])
        assert capsys.readouterr().err == ""

        damage(directory / "4", "zeroed")
        step, state = ckpt.restore_best(template, 4)
        assert step == 5
        assert_bitwise_equal(state, states[5], "fallback best")
        line = one_error_line(capsys.readouterr().err, "warning: ")
        assert line.startswith(f"warning: checkpoint {directory / '4'} is unreadable: ")
        assert line.endswith("falling back to the best readable epoch-end checkpoint")
        assert (directory.parent / checkpoints.SET_ASIDE_DIR / "4").is_dir()

        damage(directory / "5", "missing")
        assert ckpt.restore_best(template, 4)[0] == 2  # 4 is gone: the best scored left
        damage(directory / "2", "truncated")
        with pytest.raises(checkpoints.NoReadableCheckpointError) as error:
            ckpt.restore_best(template, None)
        assert str(error.value).startswith(
            f"no readable checkpoint with a validation score is left in {directory} "
            "(unreadable: steps 2, moved to")
        # the unscored checkpoints are untouched
        assert ckpt.all_steps() == [1, 3]
    finally:
        ckpt.close()


def test_partial_template_reads_its_leaves_and_names_a_mismatch(tmp_path):
    """What evaluation reads (params and BN statistics, no optimiser state): a template
    with some of the state's leaves gets exactly those, the damaged-best fallback
    included; a leaf the checkpoint lacks or holds with another shape is one error
    naming the checkpoint."""
    directory = tmp_path / "stage" / "checkpoints"
    ckpt, states = _scored_checkpoints(directory)
    try:
        state, _ = ckpt.restore(3, {"w": jax.ShapeDtypeStruct((3, 4), np.float32)}, partial=True)
        assert list(state) == ["w"] and np.array_equal(state["w"], states[3]["w"])
        damage(directory / "4", "zeroed")
        step, state = ckpt.restore_best({"n": np.zeros(1, np.int32)}, 4, partial=True)
        assert step == 5 and np.array_equal(state["n"], states[5]["n"])
        with pytest.raises(ValueError, match="arrays, the model's state 1"):
            ckpt.restore(3, {"w": states[3]["w"]})  # not partial: the whole state is wanted
        for template in ({"w": np.zeros((4, 3), np.float32)}, {"v": states[3]["w"]}):
            with pytest.raises(ValueError) as error:
                ckpt.restore(3, template, partial=True)
            assert str(error.value).startswith(f"{directory / '3'}: the model's array ")
            assert "different model configuration" in str(error.value)
    finally:
        ckpt.close()


@pytest.mark.slow
def test_load_stage_uses_best_readable_checkpoint(config_file, reference, tmp_path, capsys):
    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)
    ckpt_dir = workdir / "rough" / "checkpoints"
    _, progress, _ = read_checkpoint(workdir, "rough")
    best = progress["best_step"]
    damage(ckpt_dir / str(best), "truncated")
    # What should be used instead, from the saved validation scores (metrics.jsonl) of
    # the epoch-end checkpoints still there.
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    kept = set(read_checkpoint_steps(workdir)) - {best}
    scored = [(r["selection"], -r["step"]) for r in records
              if r["kind"] == "validation" and r["step"] in kept]
    expected = -max(scored)[1]

    config = load_config(config_file)
    model, _, after = runner.load_trained(config, workdir, distributed.make_mesh(1))
    del model
    expected_leaves = read_checkpoint(reference, "rough", expected)[0]
    got = after["rough"]["params"]
    for path, leaf in jax.tree_util.tree_flatten_with_path(got)[0]:
        key = ".params" + jax.tree_util.keystr(path)
        assert np.array_equal(np.asarray(leaf), expected_leaves[key]), key
    err = capsys.readouterr().err
    assert f"warning: checkpoint {ckpt_dir / str(best)} is unreadable" in err


def read_checkpoint_steps(workdir: Path) -> list[int]:
    ckpt = training_helpers.stage_checkpoints(workdir, "rough")
    try:
        return ckpt.all_steps()
    finally:
        ckpt.close()


# --------------------------------------------------------------------------- disk full


@pytest.mark.slow
def test_write_error_during_save_stops_and_keeps_previous_checkpoint(config_file, reference,
                                                                     tmp_path, capsys):
    workdir = tmp_path / "work"
    argv = train_argv(config_file, workdir)
    with training_helpers.disk_full_at_step(3):
        assert cli.main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    ckpt_dir = workdir / "rough" / "checkpoints"
    assert line.startswith(f"error: could not save checkpoint {ckpt_dir / '3'} (")
    assert "No space left on device" in line
    assert f"the previous checkpoint, step 2, is intact in {ckpt_dir / '2'}" in line
    assert "re-run the same command to resume" in line
    assert read_checkpoint_steps(workdir) == [1, 2]
    assert not (workdir / "train.lock").exists()

    assert cli.main(argv) == 0
    assert "[rough] resuming from step 2 (epoch 1, batch 2)" in capsys.readouterr().out
    assert_same_as_reference(workdir, reference)


# --------------------------------------------------------------------------- one run per workdir


def _write_lock(workdir: Path, host: str, pid: int, age: float = 0.0) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / workdir_lock.LOCK_NAME
    path.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_second_run_on_a_workdir_in_use_is_refused(config_file, tmp_path, live_pid, capsys):
    workdir = tmp_path / "work"
    lock = _write_lock(workdir, socket.gethostname(), live_pid)
    before = lock.read_text()
    assert cli.main(train_argv(config_file, workdir)) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: work directory {workdir} is in use by the run of pid "
                           f"{live_pid} on host {socket.gethostname()} (started ")
    assert str(lock) in line
    assert lock.read_text() == before and listing(workdir) == [workdir_lock.LOCK_NAME]

    # another host's lock with a recent heartbeat: refused too (its pid is not checked)
    _write_lock(workdir, "other-host", 1)
    with pytest.raises(workdir_lock.WorkdirInUseError, match="pid 1 on host other-host"):
        workdir_lock.WorkdirLock(workdir).acquire()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("owner", ["dead_pid", "old_heartbeat"])
def test_stale_lock_is_taken_over_with_a_message(owner, tmp_path):
    workdir = tmp_path / "work"
    if owner == "dead_pid":
        pid = _dead_pid()
        _write_lock(workdir, socket.gethostname(), pid)
        reason = f"pid {pid} is not running on this host"
    else:
        _write_lock(workdir, "other-host", 1, age=3600)
        reason = "no heartbeat for 3600 s"
    said = []
    lock = workdir_lock.WorkdirLock(workdir, say=said.append)
    with lock:
        owner_now = json.loads(lock.path.read_text())
        assert owner_now["host"] == socket.gethostname() and owner_now["pid"] == os.getpid()
    assert len(said) == 1 and said[0].startswith(f"taking over the stale lock {lock.path} of pid ")
    assert reason in said[0]
    assert not lock.path.exists()  # released
    assert listing(workdir) == []  # the stale lock was not left behind either


def test_lock_heartbeat_keeps_a_live_run_fresh(tmp_path):
    lock = workdir_lock.WorkdirLock(tmp_path, heartbeat=0.05, stale_after=0.5)
    with lock:
        old = time.time() - 100
        os.utime(lock.path, (old, old))
        time.sleep(0.3)
        assert time.time() - lock.path.stat().st_mtime < 1.0
        # another process (same host, live pid: ours) is refused while we hold it
        other = workdir_lock.WorkdirLock(tmp_path)
        other.pid = os.getpid() + 10**6  # a different pid of this host, for the check
        with pytest.raises(workdir_lock.WorkdirInUseError):
            other.acquire()


# --------------------------------------------------------------------------- CLI errors


def _cli_cases(config_file: Path, workdir: Path) -> list[tuple[list[str], int, str]]:
    cfg = str(config_file)
    return [
        (["train", "--config", "nope.py", "--workdir", str(workdir)], 2,
         "config file nope.py does not exist"),
        (["train", "--config", cfg, "--workdir", str(workdir), "--config.train.batchsize=3"], 2,
         "--config.train.batchsize: no field 'batchsize' in the config"),
        (["train", "--config", cfg, "--workdir", str(workdir), "--config.train.batch_size=[1]"],
         2, "--config.train.batch_size=[1]: list does not fit the field's int"),
        (["train", "--config", cfg, "--workdir", str(workdir), "--stage", "nope"], 2,
         "stn-icnn train: argument --stage: invalid choice: 'nope'"),
        (["train", "--config", cfg], 2, "the following arguments are required: --workdir"),
        (["train", "--config", cfg, "--workdir", str(workdir), "--config.data.source=tfds",
          "--config.data.name=nope"], 2, "unknown dataset 'nope' (config.data.name)"),
        (["nope"], 2, "stn-icnn: argument COMMAND: invalid choice: 'nope'"),
        (["data", "build", "nope"], 2, "argument name: invalid choice: 'nope'"),
        (["data", "build", "helen"], 2, "helen needs --manual_dir DIR"),
        (["data", "build", "helen", "--manual_dir", str(workdir / "absent"), "--data_dir",
          str(workdir / "tfds")], 1, str(workdir / "absent")),
        (["data", "list", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ]


@pytest.mark.parametrize("case", range(11))
def test_cli_errors_are_one_line(case, config_file, tmp_path, capsys):
    argv, code, message = _cli_cases(config_file, tmp_path / "work")[case]
    assert cli.main(argv) == code
    line = one_error_line(capsys.readouterr().err)
    assert message in line, line


def test_unexpected_error_is_one_line_and_debug_shows_traceback(config_file, tmp_path, capsys,
                                                                 monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(runner, "run", broken)
    argv = train_argv(config_file, tmp_path / "work")
    assert cli.main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == ("error: ZeroDivisionError: division by zero (unexpected; re-run with "
                    "--debug for the traceback)")
    for debug_argv in (["--debug", *argv], [*argv, "--debug"]):
        assert cli.main(debug_argv) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "in broken" in err
        assert err.rstrip().splitlines()[-1] == line


def test_console_script_error_is_one_line_with_exit_status():
    result = subprocess.run([sys.executable, "-m", "stn_icnn_jax.cli", "train", "--config",
                             "nope.py", "--workdir", "w"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == "error: config file nope.py does not exist"


# --------------------------------------------------------------------------- damaged dataset


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return dataset_damage.build_tiny(tmp_path_factory.mktemp("tfds"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "missing"])
def test_damaged_array_record_file_is_named_with_rebuild_command(how, tiny_dataset, config_file,
                                                                 tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    shutil.copytree(tiny_dataset, data_dir)
    path = dataset_damage.shard(data_dir, "train")
    if how == "truncated":
        os.truncate(path, path.stat().st_size * 2 // 3)
    else:
        path.unlink()
    argv = train_argv(config_file, tmp_path / "work", *dataset_damage.tfds_overrides(data_dir))
    assert cli.main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {path}: {'missing' if how == 'missing' else 'cannot be opened'}")
    assert line.endswith(f"rebuild the dataset with `stn-icnn data build synthetic_faces --config "
                         f"tiny --data_dir {data_dir} --overwrite`")
    # the intact copy loads
    from stn_icnn_jax.data.sources import load_sources

    config = load_config(config_file, dataset_damage.tfds_overrides(tiny_dataset))
    assert {k: len(v) for k, v in load_sources(config).items()} == {
        "train": 16, "validation": 4, "test": 4}


@pytest.mark.parametrize("how", ["zeroed_4k", "one_bit"])
def test_bytes_overwritten_mid_file_are_named_with_rebuild_command(how, tiny_dataset, config_file,
                                                                   tmp_path, capsys):
    """Same length, so the record count at opening is right; the chunk hash of the
    overwritten record (4096 bytes zeroed, or one bit flipped, in the middle of the file:
    inside a record's compressed data) fails when training reads it."""
    data_dir = tmp_path / "tfds"
    shutil.copytree(tiny_dataset, data_dir)
    path = dataset_damage.shard(data_dir, "train")
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2)
        if how == "zeroed_4k":
            f.write(bytes(4096))
        else:
            byte = f.read(1)[0]
            f.seek(size // 2)
            f.write(bytes([byte ^ 0x08]))
    assert path.stat().st_size == size
    bad = dataset_damage.unreadable_records(path)
    assert bad and len(bad) < 16, bad  # one chunk of the middle, not the whole file
    argv = train_argv(config_file, tmp_path / "work", *dataset_damage.tfds_overrides(data_dir))
    assert cli.main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    # the first record read (in order, for the localiser's initial boxes) that fails
    assert line.startswith(f"error: {path}: record {bad[0]} cannot be read (RuntimeError: "
                           "Corrupted Riegeli/records file: chunk data hash mismatch"), line
    assert line.endswith(f"rebuild the dataset with `stn-icnn data build synthetic_faces "
                         f"--config tiny --data_dir {data_dir} --overwrite`")


def test_record_that_does_not_decode_is_named_with_rebuild_command(tiny_dataset, config_file,
                                                                  tmp_path):
    from stn_icnn_jax import evaluation
    from stn_icnn_jax.data import input_pipeline
    from stn_icnn_jax.data.sources import DamagedDatasetError, load_sources

    data_dir = tmp_path / "tfds"
    shutil.copytree(tiny_dataset, data_dir)
    path = dataset_damage.shard(data_dir, "test")
    dataset_damage.rewrite_with_bad_image(path, 1)
    assert dataset_damage.unreadable_records(path) == []  # the file itself is sound
    config = load_config(config_file, dataset_damage.tfds_overrides(data_dir))
    rebuild = (f"; rebuild the dataset with `stn-icnn data build synthetic_faces --config tiny "
               f"--data_dir {data_dir} --overwrite`")
    for test in (load_sources(config)["test"], evaluation.split_source(config, "test")):
        assert len(test) == 4
        intact = test[0]  # the other records read
        assert intact["image"].shape == tuple(intact["image"].shape[:2]) + (3,)
        for read in (lambda: test[1], lambda: test.__getitems__([0, 1]), lambda: list(test)):
            with pytest.raises(DamagedDatasetError) as error:
                read()
            message = str(error.value)
            assert message.startswith(f"{path}: record 1 cannot be read ("), message
            assert message.endswith(rebuild) and "\n" not in message
    # and through the input pipeline
    loader = input_pipeline.make_loader(
        test, ("rough_image",),
        input_pipeline.InputConfig(rough_size=8, canvas_size=1024, batch_size=2, augment=None,
                                   shuffle=False))
    with pytest.raises(DamagedDatasetError, match="record 1 cannot be read"):
        list(loader)


@pytest.mark.slow
def test_damaged_record_read_by_a_grain_worker_is_one_line(tiny_dataset, config_file,
                                                          compilation_cache, tmp_path):
    """``worker_count=2``: a validation record that does not decode is read in a grain
    worker process when epoch 1 is scored. The command stops with the same one line as
    without workers (no worker's traceback, no warning of the shared memory grain leaves
    behind), and the epoch's checkpoints are kept."""
    data_dir = tmp_path / "tfds"
    shutil.copytree(tiny_dataset, data_dir)
    path = dataset_damage.shard(data_dir, "validation")
    dataset_damage.rewrite_with_bad_image(path, 1)
    workdir = tmp_path / "work"
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(compilation_cache),
               JAX_PLATFORMS="cpu")
    command = [sys.executable, "-m", "stn_icnn_jax.cli", *train_argv(
        config_file, workdir, *dataset_damage.tfds_overrides(data_dir),
        "--config.data.worker_count=2")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {path}: record 1 cannot be read ("), line
    assert line.endswith(f"rebuild the dataset with `stn-icnn data build synthetic_faces "
                         f"--config tiny --data_dir {data_dir} --overwrite`"), line
    # 16 faces x 2 copies / batch 4: every step of epoch 1 but its last is saved
    _, progress, step = read_checkpoint(workdir, "rough")
    assert step == 7 and progress["epoch"] == 0 and progress["batch_in_epoch"] == 7, progress


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_evaluation_reads_every_record_and_names_a_damaged_one(workers, tiny_dataset,
                                                               config_file, tmp_path,
                                                               parsed_flags):
    """With grain worker processes too (which batch separately, so a split comes in more,
    smaller batches): every record is scored once, and a record that does not decode,
    read in a worker, is the same one-line error naming the file and record."""
    from stn_icnn_jax.config import build
    from stn_icnn_jax.data.sources import DamagedDatasetError, load_sources
    from stn_icnn_jax.train import evaluate

    data_dir = tmp_path / "tfds"
    shutil.copytree(tiny_dataset, data_dir)
    config = load_config(config_file, [*dataset_damage.tfds_overrides(data_dir),
                                       f"--config.data.worker_count={workers}"])
    layout = build.input_config(config, 4, training=False)  # one batch, or 2 of 2 rows
    assert layout.worker_count == workers

    def scored_sizes() -> list:
        validation = load_sources(config)["validation"]
        batches = list(evaluate._batches(validation, ("image_size",), layout))
        return sorted(tuple(size) for batch, valid in batches
                      for size in batch["image_size"][:valid].tolist())

    records = load_sources(config)["validation"]
    assert scored_sizes() == sorted(tuple(r["image"].shape[:2]) for r in records)
    path = dataset_damage.shard(data_dir, "validation")
    dataset_damage.rewrite_with_bad_image(path, 3)
    with pytest.raises(DamagedDatasetError) as error:
        scored_sizes()
    message = str(error.value)
    assert message.startswith(f"{path}: record 3 cannot be read ("), message
    assert message.endswith(f"rebuild the dataset with `stn-icnn data build synthetic_faces "
                            f"--config tiny --data_dir {data_dir} --overwrite`")


def test_checksum_catches_changed_values():
    state = {"a": np.arange(6, dtype=np.float32), "b": np.arange(3, dtype=np.int32)}
    packed, layout = checkpoints.pack(state)
    checkpoints.check_sums(packed, layout)
    packed["float32"] = packed["float32"].copy()
    packed["float32"][2] = np.nextafter(packed["float32"][2], np.float32(10))  # one ulp
    with pytest.raises(ValueError, match="float32 arrays' CRC-32 is 0x[0-9a-f]{8}, saved"):
        checkpoints.check_sums(packed, layout)
