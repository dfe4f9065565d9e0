"""Every process's data position in a mid-epoch checkpoint (exact multi-host resume).

Each process reads its own shard of the training data, so its grain iterator state is
process-specific: a checkpoint stores all of them, in process order, and a resumed run
takes its own entry.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from stn_icnn_jax.train.checkpoints import ResumeMismatchError


def gather_loader_states(state: bytes) -> list[str]:
    """Every process's grain iterator state, in process order.

    A collective: every process calls it at the same step. One process: no
    communication.
    """
    if jax.process_count() == 1:
        return [state.decode()]
    # Agree on the longest state, then gather fixed-size byte buffers.
    lengths = np.asarray(multihost_utils.process_allgather(
        np.array([len(state)], np.int32))).reshape(-1)
    buffer = np.zeros(int(lengths.max()), np.uint8)
    buffer[: len(state)] = np.frombuffer(state, np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(buffer))
    return [bytes(row[:n]).decode() for row, n in zip(gathered, lengths)]


def own_loader_state(saved: str | list[str], checkpoint: Path) -> bytes:
    """This process's entry of a checkpoint's ``loader_state`` (a per-process list; an
    older checkpoint's single string is process 0's).

    Raises:
      ResumeMismatchError: the checkpoint was written by a different number of processes.
    """
    def processes(n: int) -> str:
        return f"{n} process{'es' if n != 1 else ''}"

    legacy = isinstance(saved, str)
    states = [saved] if legacy else list(saved)
    count = jax.process_count()
    if len(states) != count:
        if legacy:
            saved_by = ("holds a single data-loader state (the older checkpoint format, "
                        "which kept process 0's only)")
            advice = "Resume it with 1 process if one process wrote it, or start over"
        else:
            saved_by = f"was written by {processes(len(states))}"
            advice = f"Resume with {processes(len(states))}, or start over"
        raise ResumeMismatchError(
            f"cannot resume from the mid-epoch checkpoint {checkpoint}: it {saved_by}, but "
            f"this run has {processes(count)}. Each process's position in its shard of the "
            "training data does not carry over to a different number of processes, so the "
            f"resumed run would not be exact. {advice} in a new --workdir."
        )
    return states[jax.process_index()].encode()
