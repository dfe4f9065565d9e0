"""Building the TFDS datasets from the user's own copies (``stn-icnn data build``).

A build checks every input file first (with a progress bar), then writes ArrayRecord
files (TFDS shows a progress bar per split). On any error it raises (the command prints
``error: FILE: PROBLEM``), leaving nothing behind: TFDS writes into an
``incomplete.*`` directory that it deletes on failure, and :func:`build_dataset` also
removes the dataset/config directories (and the ``downloads`` folder) it created itself.
With ``overwrite`` the previous build is moved aside and put back if the new build fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import tensorflow_datasets as tfds

from stn_icnn_jax import data as data_lib
from stn_icnn_jax.data.image_io import MAX_SIDE, DataFormatError


def _builder(name: str, config: str | None, data_dir: str | None, max_side: int, show_progress: bool):
    if name not in data_lib.BUILDERS:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(data_lib.BUILDERS))}"
        )
    cls = data_lib.BUILDERS[name]
    if config is not None:
        known = [c.name for c in cls.BUILDER_CONFIGS]
        if config not in known:
            raise ValueError(
                f"unknown config {config!r} for {name}; choose one of {', '.join(known)}"
            )
    return cls(
        data_dir=data_dir, config=config, max_side=max_side, show_progress=show_progress
    )


def build_dataset(
    name: str,
    *,
    manual_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    config: str | None = None,
    max_side: int = MAX_SIDE,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """Build dataset ``name`` (config ``config``) and return its version directory.

    Args:
      name: ``helen``, ``helen_star``, ``celebamask_hq`` or ``synthetic_faces``.
      manual_dir: the folder holding the user's copy (see ``stn-icnn data instructions``).
      data_dir: where to write (TFDS default, ``~/tensorflow_datasets`` or
        ``$TFDS_DATA_DIR``, if None).
      config: builder config (the builder's default if None).
      max_side: largest accepted image side.
      overwrite: replace an existing build of this name/config/version; the old build is
        kept aside and restored if the new build fails.
      show_progress: tqdm bars.

    Raises:
      DataFormatError: a bad input file (message: ``PATH: PROBLEM``).
      ValueError: unknown name/config, or the dataset already exists (without overwrite).
    """
    if data_dir is not None:
        data_dir = os.fspath(Path(data_dir).expanduser().absolute())
    if manual_dir is not None:
        manual_dir = Path(manual_dir).expanduser().absolute()
    builder = _builder(name, config, data_dir, max_side, show_progress)
    target = Path(os.fspath(builder.data_dir))
    if manual_dir is not None and not Path(manual_dir).is_dir():
        raise DataFormatError(manual_dir, "manual directory does not exist")
    backup: Path | None = None
    if target.exists():
        if not overwrite:
            raise ValueError(
                f"{target} already exists; pass --overwrite (overwrite=True) to rebuild it"
            )
        # Keep the old build aside (same file system) until the new one has succeeded.
        backup = Path(os.fspath(builder.data_dir_root)) / (
            f".stn_icnn_replaced.{builder.name}.{target.parent.name}.{uuid.uuid4().hex}"
        )
        target.rename(backup)
        builder = _builder(name, config, data_dir, max_side, show_progress)
    # Directories this build may create: remember which did not exist, to remove on failure.
    root = Path(os.fspath(builder.data_dir_root))
    created = [
        p
        for p in (root, root / "downloads", target.parent.parent, target.parent)
        if not p.exists()
    ]
    dl_config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir) if manual_dir is not None else None
    )
    try:
        builder.download_and_prepare(download_config=dl_config)
    except BaseException:
        if target.exists():  # pragma: no cover - TFDS renames only on success
            shutil.rmtree(target, ignore_errors=True)
        for p in sorted(created, key=lambda q: len(q.parts), reverse=True):
            shutil.rmtree(p, ignore_errors=True)
        if backup is not None:
            backup.rename(target)  # the previous build is back in place
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    return target
