"""The records of a run's splits, from the configured data source.

``config.data.source``: ``"tfds"`` reads a built TFDS dataset (the synthetic set is built
on first use; a real dataset must be built first with ``stn-icnn data build``), or
``"synthetic_in_memory"`` generates a few synthetic faces in memory (tests, smoke runs).
Every ArrayRecord file of a built dataset is checked when it is opened (it exists, and
its index lists the records the dataset's metadata does), and every record when it is
read (ArrayRecord's chunks carry hashes, so bytes overwritten in the middle of a file
fail there, and a record that does not decode fails in TFDS's decoder): a missing or
damaged file is :class:`DamagedDatasetError`, naming the file (and record) and the
command that rebuilds the dataset.
"""

from __future__ import annotations

import dataclasses
import operator
from pathlib import Path
from typing import Any, Sequence

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
    return {split: open_split(builder, d, split, split_limit(d, split)) for split in SPLITS}


def split_limit(d: ml_collections.ConfigDict, split: str) -> int:
    """``config.data.num_<split>`` (0 = the whole split): with a built dataset, how many
    of the split's first records a run reads (e.g. the main job trains on all 2,000
    faces of ``synthetic_faces/default`` but validates on the first 50)."""
    key = f"num_{split}"  # the field's name, as open_split's error message names it
    limit = int(d.get(key, 0) or 0)
    if limit < 0:
        raise UsageError(f"config.data.{key} must be >= 0 (0 = the whole split), got {limit}")
    return limit


def open_split(builder: Any, d: ml_collections.ConfigDict, split: str,
               limit: int = 0) -> "CheckedRecords":
    """The records of one split of a built TFDS dataset (``builder``, described by
    ``config.data`` ``d``), its first ``limit`` records if ``limit`` > 0: its files
    checked now, each record when it is read."""
    import tensorflow_datasets as tfds

    split_info = builder.info.splits[split]
    rebuild = rebuild_command(d)
    check_array_record_files(split_info, rebuild)
    if limit > split_info.num_examples:
        raise UsageError(
            f"{builder.info.full_name} has {split_info.num_examples} {split} records; the "
            f"config asks for the first {limit} (config.data.num_{split}); use at most "
            f"{split_info.num_examples}, or 0 for the whole split")
    spec = f"{split}[:{limit}]" if limit else split
    # NAME[/CONFIG]:VERSION, the version of the files just checked
    name = f"{builder.info.full_name.rsplit('/', 1)[0]}:{builder.info.version}"
    source = tfds.data_source(name, split=spec, data_dir=d.data_dir)
    return CheckedRecords(source, builder.info.splits[spec].file_instructions, rebuild)


class DamagedDatasetError(UserError):
    """A file of a built dataset is missing or damaged."""


def rebuild_command(d: ml_collections.ConfigDict) -> str:
    """The ``stn-icnn data build ... --overwrite`` command that rebuilds ``config.data``'s
    dataset."""
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


class CheckedRecords(Sequence):
    """A built split's records (``tfds.data_source``) whose read or decode failures are
    :class:`DamagedDatasetError`: ``FILE: record I cannot be read (REASON); rebuild the
    dataset with `COMMAND```.

    Args:
      source: the split's ``tfds.data_source``.
      files: its file instructions in record order (``filename``, ``skip``, ``take``).
      rebuild: the command that rebuilds the dataset.
    """

    def __init__(self, source: Any, files: Sequence[Any], rebuild: str):
        self._source = source
        self._files = [(str(f.filename), int(f.skip), int(f.take)) for f in files]
        self._rebuild = rebuild

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        try:
            return self._source[index]
        except IndexError:
            raise
        except Exception as exc:  # noqa: BLE001 - the reader's and decoder's many types
            raise self._damaged(index, exc) from exc

    def __getitems__(self, indices: Sequence[int]) -> list:
        indices = list(indices)
        try:
            return list(self._source.__getitems__(indices))
        except Exception:  # noqa: BLE001 - one by one, to name the bad record
            return [self[i] for i in indices]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        # The source's own: grain keeps repr(data source) in its iterator state and
        # refuses to restore a state whose repr differs (checkpoints of earlier runs).
        return repr(self._source)

    def _damaged(self, index: int, exc: Exception) -> DamagedDatasetError:
        index = operator.index(index)
        index += len(self) if index < 0 else 0
        where = f"{self!r}: record {index}"
        for path, skip, take in self._files:
            if index < take:
                where = f"{path}: record {skip + index}"
                break
            index -= take
        return DamagedDatasetError(
            f"{where} cannot be read ({type(exc).__name__}: {one_line(exc)}); rebuild the "
            f"dataset with `{self._rebuild}`")
