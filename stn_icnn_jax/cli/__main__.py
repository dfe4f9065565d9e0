"""``python -m stn_icnn_jax.cli``: the same as the ``stn-icnn`` command."""

import sys

from stn_icnn_jax.cli.main import main

sys.exit(main())
