"""Subprocess worker for tests/test_multihost_resume.py: one process of a multi-process
``train.run.run`` of the tiny ``rough`` stage (fake CPU devices need a fresh jax).

The parent sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and starts one
worker per process with the same ``--coordinator``. With ``--stop-after-checkpoint K``
the worker stops right after checkpoint K is saved: it touches ``--marker`` and sleeps
until the parent SIGKILLs it (every process is then at the same, known point, so the
kill is deterministic). With ``--pause-after-checkpoint K`` it touches ``--marker``
after checkpoint K and waits for the file ``--go`` (the parent sends SIGTERM to one
process first); a preempted run prints ``PREEMPTED message`` and exits 75. With
``--late-process I --late-seconds S`` process I starts training S seconds after the
others (as when restoring a checkpoint is slower on one host). Prints ``RESULT {json}``
when the run finishes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STEPS_PER_EPOCH = 4  # 8 faces x 2 copies / 2 processes / 2 rows per process
EPOCHS = 2


def tiny_config():
    """The smoke config shrunk to the ``rough`` stage on 8 faces, batch 4 (one row per
    device on 2 processes x 2 devices), a checkpoint every step, all kept."""
    from training_helpers import tiny_training_config

    # keep every checkpoint: the test compares those of every step
    return tiny_training_config(("rough",), EPOCHS, keep_checkpoints=100)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--stop-after-checkpoint", type=int)
    parser.add_argument("--marker")
    parser.add_argument("--pause-after-checkpoint", type=int,
                        help="after this checkpoint touch --marker and wait for --go")
    parser.add_argument("--go", help="file whose appearance ends the pause")
    parser.add_argument("--late-process", type=int, help="this process starts training late")
    parser.add_argument("--late-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)

    import jax

    from stn_icnn_jax.train import checkpoints, distributed, loop
    from stn_icnn_jax.train import run as runner

    if args.late_process == args.process_id:
        train_stage = loop.train_stage

        def train_stage_late(*a, **k):
            time.sleep(args.late_seconds)
            return train_stage(*a, **k)

        loop.train_stage = train_stage_late

    if args.stop_after_checkpoint is not None:
        save = checkpoints.StageCheckpoints.save

        def save_then_stop(self, step, state, progress, selection=None):
            save(self, step, state, progress, selection)
            if int(step) == args.stop_after_checkpoint:
                Path(args.marker).touch()
                while True:  # until the parent's SIGKILL
                    time.sleep(60)

        checkpoints.StageCheckpoints.save = save_then_stop

    if args.pause_after_checkpoint is not None:
        save_ = checkpoints.StageCheckpoints.save

        def save_then_pause(self, step, state, progress, selection=None):
            save_(self, step, state, progress, selection)
            if int(step) == args.pause_after_checkpoint:
                Path(args.marker).touch()
                while not Path(args.go).exists():  # the parent signals, then creates it
                    time.sleep(0.01)

        checkpoints.StageCheckpoints.save = save_then_pause

    from stn_icnn_jax.errors import EXIT_PREEMPTED, Preempted

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    try:
        results = runner.run(tiny_config(), args.workdir, show_progress=False)
    except Preempted as stop:
        print(f"PREEMPTED {stop}", flush=True)
        jax.distributed.shutdown()
        return EXIT_PREEMPTED
    info = {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(), "stages": results["stages"]}
    print("RESULT " + json.dumps(info), flush=True)
    jax.distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
