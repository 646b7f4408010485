"""The shuffle's files: one Arrow IPC file per parse task and event class, holding one
record batch per bucket of its server (batch *b* is the server's bucket *b*, empty where
the task had none).

A parse task writes ``SCRATCH/<class>/c<chunk>.arrow`` with a batch for each bucket of
its server (``partition.bucket_layout``: a large server owns a range of buckets, small
ones share one); the join task of a bucket reads its batch from the files of its
servers' chunks only. The files are encoded by the compiled core
(``rust/core/src/shuffle.rs``: time window, bucket hash, order by bucket, LZ4 frames),
straight from the tokenizer's Arrow tables. The number of files grows with the input,
not with its square (one file per chunk, bucket and class did), and a batch is found through the
file's footer without reading the others (local files are opened by the OS, remote ones
through fsspec, read by range). A task that runs again writes its file anew (under a
temporary name, then renamed), never appends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from . import _core, outputs
from .partition import server_seed
from .schema import EVENT_CLASSES, empty_class
from .store import Place, place


def path_of(scratch: Place, cls: str, chunk: int) -> Place:
    return scratch / cls / f"c{chunk:06d}.arrow"


@dataclass(frozen=True)
class Written:
    """What the client needs of a parse task's events (the rows went to the files)."""

    first_ts: int | None
    last_ts: int | None
    kept: int                    # events inside the window (the rest are outside it)


def write_buckets(scratch: Place, chunk: int, tables: Mapping[str, object], *, server: str,
                  file: str, file_seq: int, buckets: int, since_ns: int | None = None,
                  until_ns: int | None = None) -> Written:
    """Write one parse task's events (a table per class: Arrow streams or polars frames),
    keeping ``since_ns <= ts < until_ns``, one file per class with a batch per bucket."""
    scratch = place(scratch)
    names = list(EVENT_CLASSES)
    inputs = [tables[n] if n in tables else empty_class(n) for n in names]
    files, first, last, kept = _core.shuffle_encode(
        inputs, [_arrow_schema(n) for n in names], server=server, file=file,
        file_seq=file_seq, buckets=buckets, seed=server_seed(server), since=since_ns,
        until=until_ns)
    for name, data in zip(names, files, strict=True):
        outputs.write_bytes(data, path_of(scratch, name, chunk))
    return Written(first, last, kept)


@cache
def _arrow_schema(name: str) -> pa.Schema:
    return empty_class(name).to_arrow().schema


def read_bucket(scratch: Place, cls: str, sources: Iterable[tuple[int, int]],
                offsets: Mapping[int, int]) -> pl.DataFrame | None:
    """A bucket's events of one class: batch *b* of the file of each (chunk, b) in
    ``sources``, with absolute line numbers (``offsets``: chunk → lines before it in its
    file); None: no events.

    The batches are gathered as Arrow and become one polars table: hundreds of small
    tables (one per chunk) cost time and fragment memory (+150 MB a task, measured).
    """
    scratch = place(scratch)
    batches = []
    for chunk, index in sorted(sources):
        path = path_of(scratch, cls, chunk)
        try:  # reads the footer and this batch only
            with pa.OSFile(path.url) if path.local else path.open("rb") as source:
                batch = ipc.open_file(source).get_batch(index)
        except FileNotFoundError:  # a JSON file's later ranges write nothing
            continue
        offset = offsets[chunk]
        if batch.num_rows:
            at = batch.schema.get_field_index("line")
            batches.append(batch.set_column(at, "line", pc.add(batch.column(at), offset)))
    if not batches:
        return None
    return pl.from_arrow(pa.Table.from_batches(batches).combine_chunks(), rechunk=False)
