"""The shuffle's files: one Arrow IPC file per parse task and event class, holding one
record batch per bucket (batch *b* is bucket *b*, empty where the task had none).

A parse task writes ``SCRATCH/<class>/c<chunk>.arrow``; the join task of bucket *b*
reads batch *b* of each of them. The number of files grows with the input, not with
its square (one file per chunk, bucket and class did), and a batch is found through the
file's footer without reading the others (the files are memory-mapped). A task that
runs again writes its file anew (under a temporary name, then renamed), never appends.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from .schema import class_schema, conform

# LZ4 keeps the scratch area near the size of the logs at little cost (~2 GB/s to read).
OPTIONS = ipc.IpcWriteOptions(compression="lz4")


def path_of(scratch: Path, cls: str, chunk: int) -> Path:
    return scratch / cls / f"c{chunk:06d}.arrow"


def write_buckets(scratch: Path, cls: str, chunk: int, df: pl.DataFrame, buckets: int) -> None:
    """Write one class's events of one chunk, a batch per bucket (``df`` has ``bucket``)."""
    schema = dict(class_schema(cls))
    df = conform(df, class_schema(cls, "bucket"))  # the columns this class had no value in
    parts = df.partition_by("bucket", as_dict=True, include_key=False) if df.height else {}
    empty = pl.DataFrame(schema=schema).to_arrow()
    path = path_of(scratch, cls, chunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    with pa.OSFile(str(part), "wb") as sink, \
            ipc.new_file(sink, empty.schema, options=OPTIONS) as writer:
        for bucket in range(buckets):
            got = parts.get((bucket,))
            table = empty if got is None else got.to_arrow().cast(empty.schema)
            batches = table.combine_chunks().to_batches()  # one batch: its index is the bucket
            writer.write_batch(batches[0] if batches else pa.RecordBatch.from_pylist(
                [], schema=empty.schema))
    os.replace(part, path)


def read_bucket(scratch: Path, cls: str, chunk: int, bucket: int) -> pl.DataFrame | None:
    """Bucket ``bucket``'s events of one class and chunk (None: the chunk wrote none)."""
    path = path_of(scratch, cls, chunk)
    if not path.exists():
        return None
    # the mapping stays open while the batch's buffers refer to it
    batch = ipc.open_file(pa.memory_map(str(path))).get_batch(bucket)
    return pl.from_arrow(batch) if batch.num_rows else None
