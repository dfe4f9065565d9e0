"""Stop training cleanly on SIGTERM / SIGINT: every process agrees on the step to save at.

Preemptible hosts get SIGTERM some seconds before they are taken away; Ctrl-C sends
SIGINT. Inside :class:`PreemptionWatch` neither kills the run: the loop asks
:meth:`PreemptionWatch.reached` after each step, saves a checkpoint at the first step
it answers True and stops with :class:`~stn_icnn_jax.errors.Preempted`.

- One process: a Python signal handler sets a flag; ``reached`` returns it.
- Several processes (after ``jax.distributed.initialize``): JAX's preemption service
  catches SIGTERM on whichever host gets it, tells every other host through the
  coordination service, and ``jax.experimental.multihost_utils.
  reached_preemption_sync_point(n)`` returns True on all processes at the same
  call (the largest call any process had made, plus one). SIGINT is turned into a
  SIGTERM to this process so that it takes the same path. Every process must call
  ``reached`` after every step (the watch numbers the calls itself, across stages, so
  the numbers keep increasing on every process alike).

A second SIGINT while the first is being handled interrupts at once
(``KeyboardInterrupt``), as Ctrl-C twice does elsewhere.
"""

from __future__ import annotations

import os
import signal
import threading

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _multi_process() -> bool:
    return jax.process_count() > 1


class PreemptionWatch:
    """A context manager: installs the handlers on entry, restores the old ones on exit.

    Outside the main thread (where Python cannot install signal handlers) it watches
    nothing and ``reached`` is always False.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self._old: dict[int, object] = {}
        self._calls = 0

    def __enter__(self) -> "PreemptionWatch":
        if threading.current_thread() is not threading.main_thread():
            return self
        if _multi_process():
            # SIGTERM stays with JAX's preemption notifier; SIGINT is forwarded to it.
            self._old[signal.SIGINT] = signal.signal(signal.SIGINT, self._forward_sigint)
        else:
            for sig in SIGNALS:
                self._old[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _note(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: stop now
        self.signal_name = signal.Signals(signum).name

    def _forward_sigint(self, signum, frame) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = "SIGINT"
        os.kill(os.getpid(), signal.SIGTERM)

    def reached(self) -> bool:
        """True after the step to save and stop at (the same step on every process);
        called after every training step."""
        self._calls += 1
        if _multi_process():
            if multihost_utils.reached_preemption_sync_point(self._calls):
                self.signal_name = self.signal_name or "SIGTERM"
                return True
            return False
        return self.signal_name is not None


class NoWatch:
    """Stands in for :class:`PreemptionWatch` where nothing should be watched."""

    signal_name = None

    def reached(self) -> bool:
        return False
