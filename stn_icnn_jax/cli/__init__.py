"""The ``stn-icnn`` command line: :mod:`.main` and one module per subcommand."""

from stn_icnn_jax.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
