"""Fixtures shared by several test modules."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture
def live_pid():
    """The pid of a process that runs for the whole test (a lock's live owner)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def parsed_flags():
    """grain's workers read absl flags: parse them as a program would, then undo it."""
    from absl import flags

    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.mark_as_parsed()
    yield
    if not was_parsed:
        flags.FLAGS.unparse_flags()
