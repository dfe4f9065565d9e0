"""The ``stn-icnn`` command line.

Each subcommand lives in its own module of this package (argument parsing and one-line
errors only; the work is done by the library); ``stn-icnn --help`` lists them.
"""

from __future__ import annotations

import argparse
import sys

from stn_icnn_jax import __version__


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="stn-icnn",
        description=(
            "STN-iCNN face parsing in JAX/Flax (Yin et al., End-to-End Face Parsing "
            "via Interlinked Convolutional Neural Networks)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"stn-icnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from stn_icnn_jax.cli.data import add_data_parser  # `stn-icnn data ...`
    from stn_icnn_jax.cli.port import add_port_parser  # `stn-icnn port-weights ...`
    from stn_icnn_jax.cli.train import add_train_parser  # `stn-icnn train ...`

    add_data_parser(subparsers)
    add_train_parser(subparsers)
    add_port_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stn-icnn`` console script."""
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's worker processes read absl flags
        flags.FLAGS.mark_as_parsed()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
