"""The records of a run's splits, from the configured data source.

``config.data.source``: ``"tfds"`` reads a built TFDS dataset (the synthetic set is built
on first use; a real dataset must be built first with ``stn-icnn data build``), or
``"synthetic_in_memory"`` generates a few synthetic faces in memory (tests, smoke runs).
Every ArrayRecord file of a built dataset is checked when it is opened: a missing or
damaged one is :class:`DamagedDatasetError`, naming the file and the command that
rebuilds the dataset.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import ml_collections
from tqdm import tqdm

from stn_icnn_jax.errors import UserError, UsageError, one_line

SPLITS = ("train", "validation", "test")


def load_sources(config: ml_collections.ConfigDict, show_progress: bool = True,
                 splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
    """Random-access records per split (``train``, ``validation``, ``test``; only
    ``splits`` for the in-memory synthetic data)."""
    d = config.data
    if d.source == "synthetic_in_memory":
        return _synthetic_in_memory(d, show_progress, splits)
    if d.source == "tfds":
        return _tfds_sources(d)
    raise ValueError(f"unknown data.source {d.source!r}; use 'synthetic_in_memory' or 'tfds'")


def _synthetic_in_memory(d: ml_collections.ConfigDict, show_progress: bool,
                         splits: tuple[str, ...] = SPLITS) -> dict[str, list]:
    from stn_icnn_jax.data.builders.synthetic_faces import seed_for
    from stn_icnn_jax.data.synthetic import SyntheticFaceConfig, generate_face

    face_config = SyntheticFaceConfig()
    if d.synthetic_size:  # (min, max) image side, e.g. tiny faces for tests
        low, high = d.synthetic_size
        face_config = dataclasses.replace(face_config, min_size=int(low), max_size=int(high))
    sizes = {"train": d.num_train, "validation": d.num_validation, "test": d.num_test}
    out = {}
    for split, n in sizes.items():
        if split not in splits:
            continue
        out[split] = [
            {k: v for k, v in generate_face(seed_for(split, i), face_config).items() if k != "meta"}
            for i in tqdm(range(n), desc=f"generating {split} faces", leave=False,
                          disable=not show_progress or jax.process_index() != 0)
        ]
    return out


def _tfds_sources(d: ml_collections.ConfigDict) -> dict[str, Any]:
    import tensorflow_datasets as tfds

    from stn_icnn_jax import data as data_lib  # registers the builders
    from stn_icnn_jax.data.build import build_dataset

    name = d.name + (f"/{d.builder_config}" if d.builder_config else "")
    if d.name not in data_lib.BUILDERS:
        raise UsageError(f"unknown dataset {d.name!r} (config.data.name); the datasets are "
                         f"{', '.join(sorted(data_lib.BUILDERS))}")
    builder = tfds.builder(name, data_dir=d.data_dir)
    if not Path(str(builder.data_dir)).exists():
        if d.name != "synthetic_faces":
            raise FileNotFoundError(
                f"dataset {name} is not built in {builder.data_dir_root}; run "
                f"`stn-icnn data build {d.name} --manual_dir DIR` first"
            )
        build_dataset(d.name, data_dir=d.data_dir, config=d.builder_config or None)
        builder = tfds.builder(name, data_dir=d.data_dir)
    for split in SPLITS:
        check_array_record_files(builder.info.splits[split], _rebuild_command(d))
    return {split: tfds.data_source(name, split=split, data_dir=d.data_dir) for split in SPLITS}


class DamagedDatasetError(UserError):
    """A file of a built dataset is missing or damaged."""


def _rebuild_command(d: ml_collections.ConfigDict) -> str:
    manual = "" if d.name == "synthetic_faces" else " --manual_dir DIR"
    config = f" --config {d.builder_config}" if d.builder_config else ""
    data_dir = f" --data_dir {d.data_dir}" if d.data_dir else ""
    return f"stn-icnn data build {d.name}{config}{manual}{data_dir} --overwrite"


def check_array_record_files(split_info: Any, rebuild: str) -> None:
    """Every ArrayRecord shard of a split exists, opens and holds the records the
    dataset's metadata lists (reads only each file's index, not its records).

    Raises:
      DamagedDatasetError: naming the first bad file and the ``rebuild`` command.
    """
    from array_record.python import array_record_module

    for path, expected in zip(split_info.filepaths, split_info.shard_lengths):
        path = str(path)
        problem = None
        if not Path(path).is_file():
            problem = "missing"
        else:
            try:
                reader = array_record_module.ArrayRecordReader(path)
                try:
                    found = reader.num_records() if reader.ok() else None
                finally:
                    reader.close()
            except Exception as exc:  # noqa: BLE001 - the reader's own error text
                found, problem = None, f"cannot be opened ({one_line(exc)})"
            if problem is None and found is None:
                problem = "damaged (its record index cannot be read: truncated or overwritten)"
            elif problem is None and found != expected:
                problem = (f"damaged: holds {found} records, the dataset lists {expected} "
                           "(truncated?)")
        if problem:
            raise DamagedDatasetError(f"{path}: {problem}; rebuild the dataset with `{rebuild}`")
