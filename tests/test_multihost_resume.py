"""Exact resume of a multi-process run: every process gets its own data-loader position.

Each process reads its own shard of the training set (``grain.ShardByJaxProcess``), so
the grain iterator state in a mid-epoch checkpoint is process-specific. Two processes
(2 fake CPU devices each, localhost coordinator) train the tiny ``rough`` stage
(``multihost_resume_worker.py``); one run is stopped right after its mid-epoch
checkpoint 2 and SIGKILLed, then the same command is run again; its final parameters
must be bitwise those of an uninterrupted two-process run, although its process 1
starts training 45 s after process 0 (a slower restore on one host: longer than the 30 s
within which gloo, XLA's CPU collectives, connects the processes at their first
collective). A mid-epoch checkpoint on a different number of processes is refused with
a clear error.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import multihost_helpers
import multihost_resume_worker as worker
from training_helpers import assert_bitwise_equal, read_checkpoint
from stn_icnn_jax.train import checkpoints, loader_state
from stn_icnn_jax.train import run as runner

WORKER = Path(worker.__file__)
PROCESSES = multihost_helpers.PROCESSES
KILL_AT = 2  # a mid-epoch checkpoint (4 steps per epoch)
TIMEOUT = 900
LATE_SECONDS = 45  # process 1 of the resumed run starts training late


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One persistent XLA cache for all runs: only the first compiles."""
    return tmp_path_factory.mktemp("jax_cache")


def _start(workdir: Path, cache: Path, logs: Path, *extra: str) -> list[subprocess.Popen]:
    env = multihost_helpers.environment(JAX_COMPILATION_CACHE_DIR=str(cache))
    coordinator = f"localhost:{multihost_helpers.free_port()}"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(PROCESSES):
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), "--workdir", str(workdir), "--coordinator", coordinator,
             "--num-processes", str(PROCESSES), "--process-id", str(i),
             *[a.format(i=i) for a in extra]],
            env=env, stdout=(logs / f"p{i}.out").open("w"), stderr=subprocess.STDOUT))
    return procs


def _finish(procs: list[subprocess.Popen], logs: Path) -> list[str]:
    """Waits for a run; -> each process's output (fails if one failed)."""
    try:
        deadline = time.monotonic() + TIMEOUT
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        multihost_helpers.kill_all(procs)
    outputs = [(logs / f"p{i}.out").read_text() for i in range(PROCESSES)]
    for i, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"process {i} failed ({p.returncode}):\n{out[-4000:]}"
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        result = json.loads(lines[-1][len("RESULT "):])
        assert result["process_index"] == i and result["process_count"] == PROCESSES
        assert result["device_count"] == 4 and result["local_device_count"] == 2
    return outputs


@pytest.fixture(scope="module")
def runs(cache_dir, tmp_path_factory) -> dict:
    """An uninterrupted two-process run, and one killed after checkpoint ``KILL_AT`` and
    run again with the same command, process 1 ``LATE_SECONDS`` late (a copy of its
    killed state is kept)."""
    base = tmp_path_factory.mktemp("multihost")
    reference = base / "reference"
    _finish(_start(reference, cache_dir, base / "logs_reference"), base / "logs_reference")

    resumed = base / "resumed"
    markers = base / "markers"
    markers.mkdir()
    procs = _start(resumed, cache_dir, base / "logs_killed", "--stop-after-checkpoint",
                   str(KILL_AT), "--marker", str(markers / "stopped.{i}"))
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(list(markers.iterdir())) < PROCESSES:
            for i, p in enumerate(procs):
                assert p.poll() is None, (
                    f"process {i} ended before it could be killed ({p.returncode}):\n"
                    + (base / "logs_killed" / f"p{i}.out").read_text()[-4000:])
            assert time.monotonic() < deadline, "the processes did not reach the checkpoint"
            time.sleep(0.05)
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
    finally:
        multihost_helpers.kill_all(procs)
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * PROCESSES
    killed = base / "killed_copy"
    shutil.copytree(resumed, killed)

    outputs = _finish(_start(resumed, cache_dir, base / "logs_resumed", "--late-process", "1",
                             "--late-seconds", str(LATE_SECONDS)), base / "logs_resumed")
    return {"reference": reference, "resumed": resumed, "killed": killed,
            "resumed_stdout": outputs[0]}


@pytest.mark.slow
def test_two_process_run_killed_mid_epoch_resumes_bitwise_exact(runs):
    # The killed run left a mid-epoch checkpoint holding both processes' loader states.
    _, progress, step = read_checkpoint(runs["killed"], "rough")
    assert step == KILL_AT
    assert progress["epoch"] == 0 and progress["batch_in_epoch"] == KILL_AT, progress
    states = progress["loader_state"]
    assert isinstance(states, list) and len(states) == PROCESSES, states
    # The test would catch restoring process 0's state everywhere: the states differ,
    # and not only in the sampler's description (which names the shard) but in the
    # record positions themselves.
    decoded = [json.loads(s) for s in states]
    assert decoded[0] != decoded[1]
    positions = [{k: v for k, v in d.items() if k != "sampler"} for d in decoded]
    assert positions[0] != positions[1], positions
    # The states are what an uninterrupted run saved at the same step.
    assert read_checkpoint(runs["reference"], "rough", KILL_AT)[1] == progress

    assert (f"[rough] resuming from step {KILL_AT} (epoch 1, batch {KILL_AT})"
            in runs["resumed_stdout"]), runs["resumed_stdout"][-4000:]

    ours, our_progress, our_step = read_checkpoint(runs["resumed"], "rough")
    theirs, their_progress, their_step = read_checkpoint(runs["reference"], "rough")
    assert our_step == their_step == worker.EPOCHS * worker.STEPS_PER_EPOCH
    assert_bitwise_equal(ours, theirs, "final state")
    assert our_progress == their_progress
    best = our_progress["best_step"]
    assert_bitwise_equal(read_checkpoint(runs["resumed"], "rough", best)[0],
                         read_checkpoint(runs["reference"], "rough", best)[0], "best state")
    assert (json.loads((runs["resumed"] / "results.json").read_text())["test"]
            == json.loads((runs["reference"] / "results.json").read_text())["test"])
    # Not vacuous: training moved the parameters after the kill.
    killed_state = read_checkpoint(runs["killed"], "rough")[0]
    assert any(not np.array_equal(ours[k], killed_state[k])
               for k in ours if k.startswith(".params['rough']"))


@pytest.mark.slow
def test_mid_epoch_checkpoint_of_two_processes_is_refused_on_one(runs, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(runs["killed"], workdir)
    with pytest.raises(checkpoints.ResumeMismatchError) as error:
        runner.run(worker.tiny_config(), workdir, show_progress=False)
    message = str(error.value)
    assert str(workdir / "rough" / "checkpoints" / str(KILL_AT)) in message
    assert "written by 2 processes" in message and "this run has 1 process." in message
    assert "Resume with 2 processes" in message


@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_at_the_same_step_and_resumes_bitwise(
        runs, cache_dir, tmp_path):
    """SIGTERM reaches process 1 only, while both wait after checkpoint ``KILL_AT``: JAX's
    preemption service tells process 0, both save the same step and exit 75, and the
    same command resumes to bitwise the uninterrupted run's state."""
    workdir, markers, go = tmp_path / "work", tmp_path / "markers", tmp_path / "go"
    markers.mkdir()
    logs = tmp_path / "logs_preempted"
    procs = _start(workdir, cache_dir, logs, "--pause-after-checkpoint", str(KILL_AT),
                   "--marker", str(markers / "paused.{i}"), "--go", str(go))
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(list(markers.iterdir())) < PROCESSES:
            for i, p in enumerate(procs):
                assert p.poll() is None, (logs / f"p{i}.out").read_text()[-4000:]
            assert time.monotonic() < deadline, "the processes did not reach the checkpoint"
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGTERM)
        time.sleep(1.0)  # let the notice reach the coordination service
        go.touch()
        for p in procs:
            p.wait(timeout=TIMEOUT)
    finally:
        multihost_helpers.kill_all(procs)
    outputs = [(logs / f"p{i}.out").read_text() for i in range(PROCESSES)]
    assert [p.returncode for p in procs] == [75] * PROCESSES, [o[-3000:] for o in outputs]
    stopped = [[line for line in out.splitlines() if line.startswith("PREEMPTED ")][-1]
               for out in outputs]
    assert stopped[0] == stopped[1], stopped  # the same step on both
    _, progress, step = read_checkpoint(workdir, "rough")
    assert f"after step {step} " in stopped[0] and step >= KILL_AT, stopped[0]
    assert isinstance(progress["loader_state"], list) and len(progress["loader_state"]) == 2

    _finish(_start(workdir, cache_dir, tmp_path / "logs_resumed"), tmp_path / "logs_resumed")
    ours, our_progress, _ = read_checkpoint(workdir, "rough")
    theirs, their_progress, _ = read_checkpoint(runs["reference"], "rough")
    assert_bitwise_equal(ours, theirs, "final state")
    assert our_progress == their_progress


def test_loader_state_formats_on_one_process(tmp_path):
    # One process: its own entry of a list of one; an older checkpoint's plain string is
    # process 0's.
    assert loader_state.own_loader_state(["{}"], tmp_path) == b"{}"
    assert loader_state.own_loader_state("{}", tmp_path) == b"{}"
    assert loader_state.gather_loader_states(b'{"a": 1}') == ['{"a": 1}']
    with pytest.raises(checkpoints.ResumeMismatchError, match=r"written by 3 processes, but this run has 1 process"):
        loader_state.own_loader_state(["{}"] * 3, tmp_path / "7")
