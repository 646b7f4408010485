"""The job's tasks: parse (stage A), enrich (stage B) and combine (stage C).

Plain top-level functions: Dask pickles them by name and runs them on the
workers. They receive paths and small reports, never open files or clients,
and exchange the shuffled rows through files under the staging folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from . import aggregate, outputs, shuffle
from .config import compiled
from .enrich import enrich_classes
from .jsonlog import is_json_log, parse_json_lines
from .logline import ParseResult, parse_lines
from .partition import assign_buckets
from .schema import EVENT_CLASSES
from .source import Chunk, read_chunk, read_head
from .workload import classify


class Steps:
    """Worker seconds per step of a task (``lap`` ends a step), for the stage breakdown."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def add_steps(*parts: dict[str, float]) -> dict[str, float]:
    """Step seconds of several tasks added up."""
    out: dict[str, float] = {}
    for part in parts:
        for name, seconds in part.items():
            out[name] = out.get(name, 0.0) + seconds
    return out


@dataclass(frozen=True)
class ChunkReport:
    """What a parse task returns: small, so every enrich task can receive all of them."""

    index: int
    server: str
    file: str
    file_seq: int
    lines: int                      # lines this chunk owns (for line-number offsets)
    partial: dict[str, Any]
    connects: tuple[int | None, int | None, int]   # first conn, last conn, restarts inside
    problem: str | None = None
    seconds: float = 0.0
    bytes: int = 0
    steps: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BucketReport:
    """What enrich tasks return, and what combine tasks merge them into."""

    partial: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    operations: int
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def parse_task(chunk: Chunk, buckets: int, scratch: str, since_ns: int | None,
               until_ns: int | None) -> ChunkReport:
    """Stage A: read a chunk, parse it, write its rows of each bucket to scratch."""
    steps = Steps()
    f = chunk.file
    got = read_chunk(chunk)
    steps.lap("read")
    kwargs = {"server": f.server, "file": f.name, "file_seq": f.seq}
    result: ParseResult
    head = got.data[:4096] if chunk.start == 0 else read_head(f)
    if is_json_log(head):  # 3.x JSON logs: detected per file, whichever range this is
        result = parse_json_lines(got.data, **kwargs)
    else:
        result = parse_lines(got.data, final=got.final, **kwargs)
    steps.lap("tokenize")
    classes = dict(result.classes)
    for window in ((pl.col("ts") >= since_ns) if since_ns is not None else None,
                   (pl.col("ts") < until_ns) if until_ns is not None else None):
        if window is not None:
            classes = {name: df.filter(window) for name, df in classes.items()}
    connects = _connect_marks(classes.get("other"))
    root = Path(scratch)
    name = f"c{chunk.index:06d}"
    bucketed = {cls: assign_buckets(df, buckets) for cls, df in classes.items() if df.height}
    steps.lap("shuffle_split")
    for cls, df in bucketed.items():
        shuffle.write_buckets(root, cls, chunk.index, df, buckets)
    if result.rejects.height:
        outputs.write_parquet(result.rejects.with_columns(pl.lit(chunk.index).alias("chunk")),
                              root / "rejects" / f"{name}.parquet")
    steps.lap("shuffle_write")
    stamps = [df.select("ts") for df in classes.values()]
    events = pl.concat(stamps) if stamps else pl.DataFrame(schema={"ts": pl.Int64})
    partial = aggregate.chunk_partial(f.server, result.counts, events)
    steps.lap("partial_aggregates")
    return ChunkReport(chunk.index, f.server, f.name, f.seq, result.counts["total"], partial,
                       connects, got.problem, steps.total, len(got.data), steps.seconds)


def enrich_task(bucket: int, offsets: dict[int, int], scratch: str, staging: str,
                sort_operands: bool, jsonl: bool,
                workloads: tuple[tuple[str, str, int | None], ...]) -> BucketReport:
    """Stage B: one bucket's events → operations (written here) and partial aggregates."""
    steps = Steps()
    root = Path(scratch)
    classes = {}
    for cls in EVENT_CLASSES:
        frames = []
        for chunk, offset in sorted(offsets.items()):
            got = shuffle.read_bucket(root, cls, chunk, bucket)
            if got is not None:
                frames.append(got.with_columns(pl.col("line") + offset))
        if frames:
            classes[cls] = pl.concat(frames, how="vertical")
    if not classes:
        return BucketReport({}, {}, 0, steps.total)
    steps.lap("shuffle_read")
    enriched = enrich_classes(classes, sort_operands=sort_operands, steps=steps)
    ops, conns = enriched.operations, enriched.connections
    if workloads:
        ops = classify(ops, compiled(workloads))
    steps.lap("classify")
    out = Path(staging)
    outputs.write_operations(ops, out / "operations", f"{bucket:05d}")
    outputs.write_parquet(conns, Path(scratch) / "connections" / f"b{bucket:05d}.parquet")
    if jsonl:
        outputs.write_jsonl(ops, Path(scratch) / "jsonl" / f"b{bucket:05d}.jsonl")
    steps.lap("write_operations")
    partial = aggregate.bucket_partial(ops, conns)
    tables = aggregate.table_partials(ops, conns)
    steps.lap("partial_aggregates")
    return BucketReport(partial, tables, ops.height, steps.total, steps.seconds)


def line_offsets(reports: list[ChunkReport]) -> dict[int, int]:
    """Chunk index → the number of lines before it in its file.

    Also the barrier between the stages: the one task that waits for every parse task,
    so the graph has chunks + buckets edges, not chunks x buckets.
    """
    offsets: dict[int, int] = {}
    seen: dict[tuple[str, int], int] = {}
    for r in sorted(reports, key=lambda r: r.index):
        key = (r.server, r.file_seq)
        offsets[r.index] = seen.get(key, 0)
        seen[key] = offsets[r.index] + r.lines
    return offsets


def _connect_marks(other: pl.DataFrame | None) -> tuple[int | None, int | None, int]:
    if other is None:
        return (None, None, 0)
    conns = other.filter(pl.col("kind") == "CONNECT").sort("line")["conn"]
    if conns.is_empty():
        return (None, None, 0)
    values = conns.to_list()
    restarts = sum(1 for i, c in enumerate(values)
                   if c == 1 or (i > 0 and c is not None and values[i - 1] is not None
                                 and c < values[i - 1]))
    return (values[0], values[-1], restarts)


def combine_task(reports: list[BucketReport]) -> BucketReport:
    """Stage C: merge bucket reports (summary counts and aggregate partials)."""
    steps = Steps()
    partial = aggregate.combine_all([r.partial for r in reports])
    tables = aggregate.combine_tables([r.tables for r in reports if r.tables])
    steps.lap("combine")
    return BucketReport(partial, tables, sum(r.operations for r in reports),
                        sum(r.seconds for r in reports) + steps.total,
                        add_steps(*(r.steps for r in reports), steps.seconds))
