"""A failure on one process of a multi-host run stops every process with one line.

Two ``stn-icnn train`` processes (2 fake CPU devices each, a localhost coordinator) must
all end, none left waiting in a collective for a process that has gone, each with exit
status 1 (2 for a usage error) and one ``error:`` line: the failed process's own, the
others' ``error: process I stopped the run: ...`` with the same message.

- Process 0 alone takes the work directory's lock and checks ``config.json``: a lock
  held by a live run, or another configuration.
- Each process reads its own shard of the data, so a damaged record is first read by
  one process alone, mid-run: in a training epoch or in a validation pass.
- Process 0 alone writes the checkpoints (the state is replicated): when its disk fills
  during a save, the other process stops too, the previous checkpoint stays the newest
  and intact, and the same command resumes to bitwise an uninterrupted run's state.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest

import dataset_damage
import multihost_helpers
import training_helpers
from stn_icnn_jax.train import checkpoints, distributed, workdir_lock
from training_helpers import assert_bitwise_equal, read_checkpoint

EPOCHS = 1
TINY_STEPS_PER_EPOCH = 4  # the tiny config: 8 faces x 2 copies / 2 processes / 2 rows
TIMEOUT = 900  # a hang, not a slow run, on a busy 2-core host


def _train_args(config_file, workdir, *extra: str) -> list[str]:
    return ["train", "--config", str(config_file), "--workdir", str(workdir), "--no_progress",
            *extra]


def _stopped_together(results, code: int) -> tuple[str, str]:
    """Both processes exited with ``code`` and one error line each; -> the two lines."""
    assert [c for c, _, _ in results] == [code] * multihost_helpers.PROCESSES, results
    return tuple(multihost_helpers.error_line(err) for _, _, err in results)


# --------------------------------------------------------------------------- failed checks


@pytest.mark.parametrize("fault", ["locked", pytest.param("other_config", marks=pytest.mark.slow)])
def test_failed_workdir_check_on_process_0_stops_every_process(fault, live_pid, tmp_path):
    """Process 0 alone takes the lock and checks config.json; when that fails the other
    process must not wait for it at the next sync point: both exit with process 0's
    status, each with one ``error:`` line (process 1's names process 0 and its reason)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config_file = tmp_path / "tiny.py"
    config_file.write_text(training_helpers.tiny_config_source(("rough",), EPOCHS))
    if fault == "locked":
        lock = workdir / workdir_lock.LOCK_NAME
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": live_pid,
                                    "started": time.time()}))
        reason = f"work directory {workdir} is in use by the run of pid {live_pid} on host "
        code = 1
    else:
        other = training_helpers.tiny_training_config(("rough",), EPOCHS)
        other.seed += 1
        (workdir / "config.json").write_text(other.to_json(sort_keys=True))
        reason = f"{workdir} holds a run with a different configuration"
        code = 2  # a usage error: the command names the wrong work directory
    before = sorted((p.name, p.read_bytes()) for p in workdir.iterdir())

    results = multihost_helpers.run_cli(
        _train_args(config_file, workdir, "--no_compilation_cache"), timeout=300)
    first, second = _stopped_together(results, code)
    assert first.startswith(f"error: {reason}"), first
    assert second == "error: process 0 stopped the run: " + first[len("error: "):]
    # nothing in the work directory changed (and the lock of a failed check is released)
    assert sorted((p.name, p.read_bytes()) for p in workdir.iterdir()) == before


def test_failed_check_of_one_process_is_raised_as_is():
    # one process: no communication, the check's own exception
    distributed.raise_if_any_failed(None)
    error = workdir_lock.WorkdirInUseError("work directory w is in use")
    with pytest.raises(workdir_lock.WorkdirInUseError) as raised:
        distributed.raise_if_any_failed(error)
    assert raised.value is error
    assert distributed.raise_if_any_failed(None, flag=True) is True
    assert distributed.raise_if_any_failed(None, flag=False) is False
    items = iter([7])
    assert distributed.next_on_all_processes(items) == (7, True)
    assert distributed.next_on_all_processes(items) == (None, False)


# --------------------------------------------------------------------------- damaged records

# `stn-icnn train` with the localiser's initial boxes taken from the first 8 training
# records instead of the first 256, which every process reads at start-up: as on a
# dataset of more than 256 faces, a damaged record further on is first read mid-epoch,
# by the one process whose shard holds it (of 16 records, process p reads 8p..8p+7).
CLI_WITH_8_MEAN_BOX_RECORDS = (
    "-c",
    "import functools, sys\n"
    "from stn_icnn_jax.train import run\n"
    "run.mean_theta_params = functools.partial(run.mean_theta_params, limit=8)\n"
    "from stn_icnn_jax.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n",
)
STEPS_PER_EPOCH = 8  # 16 faces x 2 copies / 2 processes / 2 rows per process


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return dataset_damage.build_tiny(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


@pytest.mark.slow
@pytest.mark.parametrize("split, record", [("train", 15), ("validation", 1)])
def test_damaged_record_read_by_one_process_stops_every_process(
        split, record, tiny_dataset, compilation_cache, tmp_path):
    """A record of process 1's share that does not decode (its image cut in half), read
    first mid-run: a training record mid-epoch, or a validation record when epoch 1 is
    scored (process p scores records p, p + 2). Both processes stop with one line, none
    waits for the other; the checkpoints saved before stay readable."""
    data_dir = tmp_path / "tfds"
    shutil.copytree(tiny_dataset, data_dir)
    path = dataset_damage.shard(data_dir, split)
    dataset_damage.rewrite_with_bad_image(path, record)
    config_file = tmp_path / "tiny.py"
    config_file.write_text(training_helpers.tiny_config_source(("rough",), EPOCHS))
    workdir = tmp_path / "work"

    results = multihost_helpers.run_cli(
        _train_args(config_file, workdir, "--compilation_cache", str(compilation_cache),
                    *dataset_damage.tfds_overrides(data_dir)),
        timeout=TIMEOUT, program=CLI_WITH_8_MEAN_BOX_RECORDS)
    first, second = _stopped_together(results, 1)
    assert second.startswith(f"error: {path}: record {record} cannot be read ("), second
    assert second.endswith(
        f"rebuild the dataset with `stn-icnn data build synthetic_faces --config tiny "
        f"--data_dir {data_dir} --overwrite`"), second
    assert first == "error: process 1 stopped the run: " + second[len("error: "):]
    # nothing lost: the newest checkpoint reads, in the epoch that was stopped
    _, progress, step = training_helpers.read_checkpoint(workdir, "rough")
    assert progress["epoch"] == 0 and progress["batch_in_epoch"] == step, progress
    if split == "validation":  # every step but the epoch's last (saved with its score)
        assert step == STEPS_PER_EPOCH - 1
    else:
        assert step < STEPS_PER_EPOCH - 1


# --------------------------------------------------------------------------- failed save

# `stn-icnn train` whose process 0 (the one that writes checkpoints) finds its disk full
# while it writes checkpoint 3 (training_helpers.disk_full_at_step).
CLI_DISK_FULL_ON_PROCESS_0_AT_STEP_3 = (
    "-c",
    "import sys\n"
    f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
    "import contextlib, training_helpers\n"
    "from stn_icnn_jax.cli.main import main\n"
    "process_0 = sys.argv[sys.argv.index('--process_id') + 1] == '0'\n"
    "with training_helpers.disk_full_at_step(3) if process_0 else contextlib.nullcontext():\n"
    "    code = main(sys.argv[1:])\n"
    "sys.exit(code)\n",
)


@pytest.mark.slow
def test_failed_save_on_process_0_stops_every_process_and_resumes_bitwise(
        compilation_cache, tmp_path):
    """The disk of process 0 fills while it writes checkpoint 3 (mid-epoch): both
    processes stop with one line each, none waits for the other in a collective; the
    checkpoints before stay as they were (none is set aside as unreadable), and the
    same command resumes from step 2 to bitwise the state of an uninterrupted run."""
    config_file = tmp_path / "tiny.py"
    config_file.write_text(training_helpers.tiny_config_source(("rough",), EPOCHS))

    def args(workdir):
        return _train_args(config_file, workdir, "--compilation_cache", str(compilation_cache))

    reference, workdir = tmp_path / "reference", tmp_path / "work"
    results = multihost_helpers.run_cli(args(reference), timeout=TIMEOUT)
    assert [c for c, _, _ in results] == [0] * multihost_helpers.PROCESSES, \
        [err[-3000:] for _, _, err in results]

    results = multihost_helpers.run_cli(args(workdir), timeout=TIMEOUT,
                                        program=CLI_DISK_FULL_ON_PROCESS_0_AT_STEP_3)
    first, second = _stopped_together(results, 1)
    ckpt_dir = workdir / "rough" / "checkpoints"
    assert first.startswith(f"error: could not save checkpoint {ckpt_dir / '3'} ("), first
    assert "No space left on device" in first
    assert first.endswith(f"the previous checkpoint, step 2, is intact in {ckpt_dir / '2'}. "
                          "Free disk space (or fix the directory's permissions) and re-run "
                          "the same command to resume."), first
    assert second == "error: process 0 stopped the run: " + first[len("error: "):]
    ckpt = checkpoints.StageCheckpoints(ckpt_dir)
    try:
        assert ckpt.all_steps() == [1, 2]
    finally:
        ckpt.close()
    assert not (workdir / "rough" / checkpoints.SET_ASIDE_DIR).exists()
    assert not (workdir / workdir_lock.LOCK_NAME).exists()
    _, progress, _ = read_checkpoint(workdir, "rough")
    assert progress["epoch"] == 0 and progress["batch_in_epoch"] == 2, progress

    results = multihost_helpers.run_cli(args(workdir), timeout=TIMEOUT)
    assert [c for c, _, _ in results] == [0] * multihost_helpers.PROCESSES, \
        [err[-3000:] for _, _, err in results]
    assert "[rough] resuming from step 2 (epoch 1, batch 2)" in results[0][1], results[0][1]
    ours, our_progress, our_step = read_checkpoint(workdir, "rough")
    theirs, their_progress, their_step = read_checkpoint(reference, "rough")
    assert our_step == their_step == TINY_STEPS_PER_EPOCH
    assert_bitwise_equal(ours, theirs, "final state")
    assert our_progress == their_progress
    assert (json.loads((workdir / "results.json").read_text())["test"]
            == json.loads((reference / "results.json").read_text())["test"])
