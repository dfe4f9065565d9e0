"""The ``stn-icnn`` command line.

Each subcommand lives in its own module of this package (argument parsing only; the
work is done by the library); ``stn-icnn --help`` lists them.

Errors: :func:`main` runs every subcommand under one handler, so a subcommand raises and
never prints its own tracebacks or error lines:

- ``stn_icnn_jax.errors.UsageError`` (a wrong argument, config file or override; the
  parsers' own errors become one too): ``error: MESSAGE`` on stderr, exit status 2;
- ``stn_icnn_jax.errors.UserError`` and the ordinary ``OSError`` / ``ValueError`` /
  ``KeyError`` / ``FloatingPointError`` with a clear message (name the file and the
  problem, say what to do): ``error: MESSAGE``, exit status 1;
- ``stn_icnn_jax.errors.Preempted`` (training stopped by SIGTERM / SIGINT after saving
  a checkpoint): ``stopped: MESSAGE Resume with: COMMAND``, exit status 75;
- anything else: ``error: TYPE: MESSAGE`` and a hint to re-run with ``--debug``, exit
  status 1.

Every message is printed as one line. ``--debug`` (before or after the subcommand)
prints the traceback as well.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import traceback

from stn_icnn_jax import __version__, huge_pages
from stn_icnn_jax.errors import EXIT_FAILURE, Preempted, UsageError, UserError, one_line

DEBUG_FLAG = "--debug"
# Exceptions whose message is written for the user (the library raises them with one).
EXPECTED = (UserError, OSError, ValueError, KeyError, FloatingPointError)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`UsageError` (one line, exit 2 via
    :func:`main`) instead of a usage block and ``SystemExit``; sub-parsers made with
    ``add_subparsers().add_parser`` inherit it."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


@contextlib.contextmanager
def config_errors_are_usage_errors():
    """Inside it, a config file or ``--config.a.b=value`` override that cannot be loaded
    or applied (``OSError``, ``KeyError``, ``ValueError``, ``SyntaxError``) is a
    :class:`UsageError` with the same message (exit status 2)."""
    try:
        yield
    except (OSError, KeyError, ValueError, SyntaxError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UsageError(message) from exc


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per subcommand."""
    parser = Parser(
        prog="stn-icnn",
        description=(
            "STN-iCNN face parsing in JAX/Flax (Yin et al., End-to-End Face Parsing "
            "via Interlinked Convolutional Neural Networks)."
        ),
        epilog="Errors are printed as one line 'error: ...' (exit status 2 for a wrong "
               "command line, 1 for a failure, 75 for a preempted training run that a "
               "re-run resumes).",
    )
    parser.add_argument("--version", action="version", version=f"stn-icnn {__version__} (malloc huge pages: "
                        f"{'on' if huge_pages.active() else 'off'})")
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help="show the traceback of an error (also accepted after the "
                             "subcommand)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from stn_icnn_jax.cli.bench import add_bench_parser  # `stn-icnn bench ...`
    from stn_icnn_jax.cli.data import add_data_parser  # `stn-icnn data ...`
    from stn_icnn_jax.cli.eval import add_eval_parser  # `stn-icnn eval ...`
    from stn_icnn_jax.cli.export import add_export_parser  # `stn-icnn export ...`
    from stn_icnn_jax.cli.parse import add_parse_parser  # `stn-icnn parse ...`
    from stn_icnn_jax.cli.port import add_port_parser  # `stn-icnn port-weights ...`
    from stn_icnn_jax.cli.train import add_train_parser  # `stn-icnn train ...`

    add_data_parser(subparsers)
    add_train_parser(subparsers)
    add_eval_parser(subparsers)
    add_export_parser(subparsers)
    add_parse_parser(subparsers)
    add_bench_parser(subparsers)
    add_port_parser(subparsers)
    return parser


# Python's resource tracker (a process started later, with this process's warning
# options) frees at exit the shared memory that grain's worker processes leave behind
# when a read fails, and would warn of each after the one-line error.
QUIET_RESOURCE_TRACKER = "ignore:resource_tracker:UserWarning:multiprocessing.resource_tracker"


def _run(argv: list[str]) -> int:
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's worker processes read absl flags
        flags.FLAGS.mark_as_parsed()
    if QUIET_RESOURCE_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(QUIET_RESOURCE_TRACKER)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


def describe(exc: BaseException) -> str:
    """The one-line message of ``exc`` (its type and a hint for an unexpected one)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        message = exc.args[0]  # str(KeyError) adds quotes
    else:
        message = str(exc)
    message = one_line(message) or type(exc).__name__
    if not isinstance(exc, EXPECTED):
        message = (f"{type(exc).__name__}: {message} (unexpected; re-run with {DEBUG_FLAG} "
                   "for the traceback)")
    return message


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stn-icnn`` console script; returns the exit status.

    Run as the program (``argv`` None), it first re-executes itself once with malloc's
    transparent huge pages on where that helps (``stn_icnn_jax.huge_pages``; opt out
    with ``STN_ICNN_HUGE_PAGES=0``)."""
    if argv is None:
        huge_pages.reexec_with_huge_pages()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return _run(argv)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every error is reported
        if debug:
            traceback.print_exc()
        sys.stdout.flush()
        if isinstance(exc, Preempted):
            command = shlex.join(["stn-icnn", *argv])
            print(f"stopped: {describe(exc)} Resume with: {command}", file=sys.stderr,
                  flush=True)
        else:
            print(f"error: {describe(exc)}", file=sys.stderr, flush=True)
        return getattr(exc, "exit_code", EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
