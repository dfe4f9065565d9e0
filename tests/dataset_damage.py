"""A built tiny synthetic TFDS dataset for the fault tests, and ways to damage its
ArrayRecord files as a bad disk or a broken copy would."""

from __future__ import annotations

from pathlib import Path


def build_tiny(data_dir: Path) -> Path:
    """Builds ``synthetic_faces/tiny`` (16 / 4 / 4 faces, one file a split) in ``data_dir``."""
    from stn_icnn_jax.data.build import build_dataset

    build_dataset("synthetic_faces", data_dir=data_dir, config="tiny", show_progress=False)
    return data_dir


def tfds_overrides(data_dir: Path) -> list[str]:
    """``--config.*`` overrides that train on the tiny dataset in ``data_dir``."""
    # a canvas the tiny set's faces (up to ~530 px) fit, so that reading a record, not
    # laying it out, is what fails
    return ["--config.data.source=tfds", "--config.data.name=synthetic_faces",
            "--config.data.builder_config=tiny", f"--config.data.data_dir={data_dir}",
            "--config.data.canvas_size=1024",
            # the whole splits (the tiny training config's in-memory sizes would limit them)
            "--config.data.num_train=0", "--config.data.num_validation=0",
            "--config.data.num_test=0"]


def shard(data_dir: Path, split: str) -> Path:
    """The one ArrayRecord file of ``split``."""
    (path,) = data_dir.glob(f"synthetic_faces/tiny/*/synthetic_faces-{split}.array_record-*")
    return path


def unreadable_records(path: Path) -> list[int]:
    """The records ArrayRecord's own reader fails on, one by one."""
    from array_record.python import array_record_module

    reader = array_record_module.ArrayRecordReader(str(path))
    try:
        bad = []
        for i in range(reader.num_records()):
            try:
                reader.read([i])
            except Exception:  # noqa: BLE001
                bad.append(i)
        return bad
    finally:
        reader.close()


def rewrite_with_bad_image(path: Path, record: int) -> None:
    """Rewrites an ArrayRecord file (same writer options) with the zlib-compressed image
    of ``record`` cut in half: every chunk hash is right, the record does not decode."""
    from array_record.python import array_record_module
    from tensorflow_datasets.proto import tf_example_pb2

    reader = array_record_module.ArrayRecordReader(str(path))
    options, records = reader.writer_options_string(), reader.read_all()
    reader.close()
    example = tf_example_pb2.Example.FromString(records[record])
    image = example.features.feature["image/value"].bytes_list.value
    image[0] = image[0][: len(image[0]) // 2]
    records[record] = example.SerializeToString()
    writer = array_record_module.ArrayRecordWriter(str(path), options)
    for r in records:
        writer.write(r)
    writer.close()
