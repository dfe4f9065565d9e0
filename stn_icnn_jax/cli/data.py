"""``stn-icnn data ...``: list, explain and build the TFDS datasets.

::

    stn-icnn data list                              builders, configs, splits
    stn-icnn data instructions NAME                 what to put where (manual download)
    stn-icnn data build NAME --manual_dir DIR [--data_dir DIR] [--config CONFIG]
                          [--max_side 1024] [--overwrite]

On a bad input file ``build`` raises :class:`~stn_icnn_jax.data.image_io.DataFormatError`
(``cli.main`` prints ``error: FILE: PROBLEM`` and exits with status 1) and leaves nothing
behind (:func:`stn_icnn_jax.data.build.build_dataset`).
"""

from __future__ import annotations

import argparse

import tensorflow_datasets as tfds

from stn_icnn_jax import data as data_lib
from stn_icnn_jax.data.build import build_dataset
from stn_icnn_jax.data.image_io import MAX_SIDE
from stn_icnn_jax.errors import UsageError


def _cmd_list(args: argparse.Namespace) -> int:
    for name, cls in data_lib.BUILDERS.items():
        manual = "manual download" if cls.MANUAL_DOWNLOAD_INSTRUCTIONS else "generated"
        print(f"{name} ({manual}), version {cls.VERSION}")
        for c in cls.BUILDER_CONFIGS:
            default = " (default)" if c.name == cls.DEFAULT_CONFIG_NAME else ""
            print(f"  --config {c.name}{default}: {c.description}")
    return 0


def _cmd_instructions(args: argparse.Namespace) -> int:
    cls = data_lib.BUILDERS[args.name]
    print(cls.MANUAL_DOWNLOAD_INSTRUCTIONS or f"{args.name} is generated; no download needed.")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    cls = data_lib.BUILDERS[args.name]
    if cls.MANUAL_DOWNLOAD_INSTRUCTIONS and args.manual_dir is None:
        print(cls.MANUAL_DOWNLOAD_INSTRUCTIONS)  # what to download (stdout); the error: stderr
        raise UsageError(f"{args.name} needs --manual_dir DIR (your copy of the dataset; "
                         f"'stn-icnn data instructions {args.name}' says what goes there)")
    if args.no_progress:
        tfds.disable_progress_bar()
    path = build_dataset(
        args.name,
        manual_dir=args.manual_dir,
        data_dir=args.data_dir,
        config=args.config,
        max_side=args.max_side,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    print(f"built {args.name} at {path}")
    return 0


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``stn-icnn data`` (with ``list``, ``instructions``, ``build``)."""
    names = sorted(data_lib.BUILDERS)
    data = subparsers.add_parser(
        "data",
        help="build the HELEN / HELEN* / CelebAMask-HQ / synthetic TFDS datasets",
        description=(
            "Build TFDS datasets (ArrayRecord, no TensorFlow needed) from your own copy of "
            "HELEN, HELEN* or CelebAMask-HQ, or generate the synthetic set. "
            "Datasets: " + ", ".join(names) + ". "
            "Read them with tfds.data_source('NAME/CONFIG', data_dir=DATA_DIR) after "
            "'import stn_icnn_jax.data'."
        ),
        epilog=(
            "examples:\n"
            "  stn-icnn data instructions helen\n"
            "  stn-icnn data build helen --manual_dir ~/datasets --data_dir ~/tfds\n"
            "  stn-icnn data build celebamask_hq --manual_dir ~/datasets --config with_skin_hair\n"
            "  stn-icnn data build synthetic_faces --config tiny"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data.set_defaults(func=lambda a: (data.print_help(), 0)[1])
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    p = sub.add_parser("list", help="list datasets and their configs")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("instructions", help="show where to put a dataset's files")
    p.add_argument("name", choices=names)
    p.set_defaults(func=_cmd_instructions)

    p = sub.add_parser(
        "build",
        help="check the input files and build a dataset",
        description=(
            "Check every input file, then write the dataset. On a bad file: prints "
            "'error: FILE: PROBLEM', exits 1 and leaves no partial dataset."
        ),
    )
    p.add_argument("name", choices=names, help="dataset to build")
    p.add_argument(
        "--manual_dir", "--manual-dir", dest="manual_dir", default=None,
        help="folder holding your copy of the dataset (see 'stn-icnn data instructions NAME')",
    )  # fmt: skip
    p.add_argument(
        "--data_dir", "--data-dir", dest="data_dir", default=None,
        help="where to write the TFDS dataset (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)",
    )  # fmt: skip
    p.add_argument("--config", default=None, help="builder config (see 'stn-icnn data list')")
    p.add_argument(
        "--max_side", "--max-side", dest="max_side", type=int, default=MAX_SIDE,
        help=f"largest accepted image side in pixels (default {MAX_SIDE})",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="rebuild an existing dataset")
    p.add_argument("--no_progress", "--no-progress", dest="no_progress", action="store_true",
                   help="no progress bars")  # fmt: skip
    p.set_defaults(func=_cmd_build)
    return data
