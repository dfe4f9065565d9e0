"""The exceptions that mean "the user can fix this": the CLI prints their message as one
line ``error: ...`` without a traceback (see :mod:`stn_icnn_jax.cli.main`).

- :class:`UserError`: a failure with a message that names the file or directory and
  the problem, and says what to do (exit status 1).
- :class:`UsageError`: the command line or configuration is wrong (exit status 2).
- :class:`Preempted`: training stopped on SIGTERM / SIGINT after saving a checkpoint
  (exit status :data:`EXIT_PREEMPTED`); re-running the same command resumes.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry"
EXIT_PREEMPTED = 75


class UserError(Exception):
    """A failure whose message alone tells the user what went wrong and what to do."""

    exit_code = EXIT_FAILURE


class UsageError(UserError):
    """A wrong command line, config file or config override."""

    exit_code = EXIT_USAGE


class Preempted(UserError):
    """Training stopped on a signal after saving a checkpoint it can resume from."""

    exit_code = EXIT_PREEMPTED


def one_line(message: object) -> str:
    """``message`` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(message).split())
