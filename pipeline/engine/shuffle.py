"""The shuffle's files: one file per parse task and event class, holding one record batch
per (bucket, sub-bucket) of its server, and an index of where each batch starts.

A parse task writes ``SCRATCH/<class>/c<chunk>.arrow`` with a batch for each sub-bucket
of each bucket of its server (``partition.bucket_layout``: a large server owns a range of
buckets, small ones share one); the join task of a bucket reads its batches from the
files of its servers' chunks only. The files are encoded and decoded by the compiled
core (``rust/core/src/shuffle.rs``: time window, bucket hash, order by batch, the columns
a task has values in, provenance in the metadata, an LZ4 block per batch, the format),
straight from the tokenizer's Arrow tables, and the join tasks' events go from the
files' bytes to their operations without leaving the core. The
number of files grows with the input, not with its square, and a join task reads a
bucket's batches with three small reads (tail, index entries, header) and one ranged
read per file, whatever the number of buckets (remote files are read by range through
fsspec). A task that runs again writes its file anew (under a temporary name, then
renamed), never appends.

A bucket's sub-buckets are what keeps a join task's memory bounded when one bucket gets
more than its share (a few busy connections hashed together): the index says how much
each weighs, and the task joins them a few at a time (``parts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from .. import _core
from ..outputs import files
from ..sources.store import Place, place
from .enrich import ROUTED, Pieces, shuffle_errors
from .schema import EVENT_CLASSES, empty_class

# per join task: (first chunk, end chunk, bucket of those chunks' server): the files of
# chunks first..end-1 hold the bucket as its server's bucket number (batch bucket * SUBS)
Sources = tuple[tuple[int, int, int], ...]


def path_of(scratch: Place, cls: str, chunk: int) -> Place:
    """A parse task's file of a class (Arrow IPC), or of its routed lines (``ROUTED``)."""
    return scratch / cls / f"c{chunk:06d}.{'route' if cls == ROUTED else 'arrow'}"


@dataclass(frozen=True)
class Written:
    """What the client needs of a parse task's events (the rows went to the files)."""

    first_ts: int | None
    last_ts: int | None
    kept: int                    # events inside the window (the rest are outside it)
    span: tuple[int, int] | None  # first and last time of every event, in the window or not


def write_buckets(scratch: Place, chunk: int, tables: Mapping[str, object], *, server: str,
                  file: str, file_seq: int, buckets: int, since_ns: int | None = None,
                  until_ns: int | None = None) -> Written:
    """Write one parse task's events (a table per class: Arrow streams or polars frames),
    keeping ``since_ns <= ts < until_ns``, one file per class with a batch per
    (bucket, sub-bucket)."""
    scratch = place(scratch)
    names = list(EVENT_CLASSES)
    inputs = [tables[n] if n in tables else empty_class(n) for n in names]
    encoded, first, last, kept, span = _core.shuffle_encode(
        inputs, server=server, file=file, file_seq=file_seq, buckets=buckets,
        since=since_ns, until=until_ns)
    for name, data in zip(names, encoded, strict=True):
        files.write_bytes(data, path_of(scratch, name, chunk))
    return Written(first, last, kept, span)


@dataclass(frozen=True)
class Routed:
    """What the client needs of a parse task's routed lines (they went to their file)."""

    counts: dict[str, int]       # total, blank, header, rejected, skipped, outside_window,
    #                              routed (``_core.route_text``)
    rejects: object              # the lines rejected in the parse task (an Arrow table)
    first_ts: int | None
    last_ts: int | None
    kept: int                    # routed events inside the window
    span: tuple[int, int] | None


def write_routed(scratch: Place, chunk: int, data: bytes, *, server: str, file: str,
                 file_seq: int, buckets: int, since_ns: int | None = None,
                 until_ns: int | None = None, final: bool = True,
                 connections: list[int] | None = None) -> Routed:
    """Route one parse task's block of a text log (``rust/core/src/route.rs``): its lines,
    whole, to one file with a block per (bucket, sub-bucket), those outside
    ``since_ns <= ts < until_ns`` only where they are a connection's context; with
    ``connections`` (a trace), only those client connections' lines."""
    encoded, counts, rejects, first, last, kept, span, _ = _core.route_text(
        data, server=server, file=file, file_seq=file_seq, buckets=buckets, since=since_ns,
        until=until_ns, final_block=final, connections=connections)
    files.write_bytes(encoded, path_of(place(scratch), ROUTED, chunk))
    return Routed(counts, rejects, first, last, kept, span)


@dataclass(frozen=True)
class Piece:
    """One file's batches of one bucket: where each sub-bucket starts (and where the last
    ends), and what each weighs in memory; and the file's header (its stream's schema,
    which names the file's columns and its provenance)."""

    chunk: int
    path: Place
    offsets: tuple[int, ...]     # SUBS + 1
    sizes: tuple[int, ...]       # SUBS
    header: bytes


def _open(path: Place) -> pa.NativeFile:
    if path.local:
        return pa.OSFile(path.url)
    return pa.PythonFile(path.open("rb"), mode="r")


def pieces(scratch: Place, cls: str, sources: Sources) -> list[Piece]:
    """The index entries of a bucket in each of its source files of a class (a JSON file's
    later ranges wrote none): three small reads per file at the places the core names
    (its tail, the bucket's entries, its header), which it reads too."""
    scratch = place(scratch)
    out = []
    for first, end, bucket in sources:
        for chunk in range(first, end):
            path = path_of(scratch, cls, chunk)
            try:
                with _open(path) as f, shuffle_errors(str(path)):
                    size = f.size()
                    tail = min(size, _core.SHUFFLE_TAIL)
                    head, at, length = _core.shuffle_bucket_place(
                        f.read_at(tail, size - tail), size, bucket)
                    offsets, sizes = _core.shuffle_bucket_entries(f.read_at(length, at), head)
                    header = f.read_at(head, 0)
            except FileNotFoundError:
                continue
            out.append(Piece(chunk, path, tuple(offsets), tuple(sizes), header))
    return out


def parts(sizes: list[int], budget: int) -> list[range]:
    """Sub-buckets in consecutive runs of at most ``budget`` bytes (a heavier sub-bucket
    alone): the units a join task processes one after another.

    >>> parts([10, 10, 10, 10], 100), parts([60, 50, 10, 200, 5], 100)
    ([range(0, 4)], [range(0, 1), range(1, 3), range(3, 4), range(4, 5)])
    """
    out, start, filled = [], 0, 0
    for s, size in enumerate(sizes):
        if s > start and filled + size > budget:
            out.append(range(start, s))
            start, filled = s, 0
        filled += size
    out.append(range(start, len(sizes)))
    return out


def read_pieces(found: list[Piece], subs: range, offsets: Mapping[int, int]) -> Pieces:
    """The bytes of a bucket's sub-buckets ``subs`` in the files of one class: one ranged
    read per file, with its header, the lines before its chunk in its file (``offsets``:
    chunk → lines) and its name, in chunk order (a file's lines in order)."""
    parts = []
    for piece in sorted(found, key=lambda p: p.chunk):
        start, end = piece.offsets[subs.start], piece.offsets[subs.stop]
        if end > start:
            with _open(piece.path) as f:
                parts.append((piece.header, f.read_at(end - start, start), offsets[piece.chunk],
                              str(piece.path)))
    return parts
