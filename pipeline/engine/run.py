"""The job: parse tasks → one shuffle by (server, conn) → enrich tasks → outputs.

``plan`` cuts the work, ``cluster`` runs the graph, ``finish`` writes what the tasks
return. The shuffle goes through files (``shuffle``): each parse task writes one file
per event class with a record batch per bucket and sub-bucket, and an index; each
enrich task reads its bucket's batches from each. There are as many buckets as the
input needs, so memory is bounded by the partition size, not the input size.
The workers write the large files of the output (operations, rejects, connections,
JSON Lines); the client holds and writes only the aggregates. OUT and the scratch may
be fsspec URLs (``store.Place``): a cluster that shares no disk with the client writes
to the same server (sftp://, s3://, ...).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..forensic import trace
from ..outputs import files, report
from ..sources.source import Chunk
from ..sources.store import Place, place
from ..tables import aggregate, offsets
from ..tables.frames import Table
from . import finish, plan
from .cluster import Logged, Observer, Scheduler, task, tell, tree
from .enrich import ROUTED
from .plan import Problem, RunOptions
from .schema import EVENT_CLASSES
from .stages import (
    BucketReport,
    ChunkReport,
    add_steps,
    between_stages,
    combine_task,
    enrich_task,
    park_task,
    parse_task,
    suspects_task,
    trace_task,
)


@dataclass(frozen=True)
class RunResult:
    summary: dict[str, Any]
    tables: dict[str, Table]          # the published output's (``report.read_tables``)
    problems: list[Problem]
    stage_seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    published: bool = True            # False: warnings, and OUT kept its previous output
    bytes: int = 0                    # log bytes read (after decompression)


def run(opts: RunOptions, observer: Observer | None = None) -> RunResult:
    """Run the whole job and publish ``opts.out``.

    Raises:
        ConfigError: bad inputs or options, before any log is read.
        PipelineError: a failure that left no output.
    """
    started = time.perf_counter()
    out = place(opts.out, opts.storage_options)
    scratch_root = place(opts.scratch, opts.storage_options, "--scratch") if opts.scratch \
        else None
    files.check_target(out, plan.local_inputs(opts.inputs))
    chunks, unread = plan.chunks(opts)
    staging = files.staging_dir(out)
    scratch: Place | None = None
    observer = Logged(observer)
    try:
        scratch = files.scratch_dir(scratch_root, staging)
        _make_folders(staging, scratch, {c.file.server for c in chunks},
                      "parquet" in opts.operations)
        with Scheduler(opts, observer) as compute:
            layout = plan.layout(chunks, opts.partition_mb, compute.threads)
            parse, between = _stage_a(chunks, layout, scratch, (opts.since_ns, opts.until_ns))
            budget = plan.BUDGET * (opts.partition_mb << 20)
            enrich_ = [task(_enrich, b, sources, between, scratch, staging,
                            opts.sort_operands, opts.operations, opts.workloads, budget)
                       for b, sources in enumerate(plan.bucket_sources(chunks, layout))]
            # each server's buckets first (small servers share one), then the servers: the
            # combines that hold the most, near the root, only put rows together (``_apart``)
            # then each group's tables by server are left aside, finished in ``assemble``
            groups = [tree(enrich_[base:base + count], _combine)
                      for base, count in sorted(set(layout.values())) if count]
            parked = [task(park_task, t, scratch / "parked", i)
                      for i, (t, _) in enumerate(groups)]
            combined, combines = tree(parked, _combine)
            combines += sum(n for _, n in groups)
            observer.planned({"parse": len(chunks), "join": len(enrich_),
                              "aggregate": combines, "write": 1}, _bytes(chunks))
            planned = time.perf_counter()
            chunk_reports, reduced = compute(parse, combined)
            # the fleet's DN and fingerprint spellings, for every table that shows them
            spelling = aggregate.spellings(reduced.tables)
            fleet_peak, timelines, pool = finish.assemble(compute, chunk_reports, reduced,
                                                          spelling, layout, scratch, staging,
                                                          "jsonl" in opts.operations)
        computed = time.perf_counter()
        observer.stage("write")
        summary, tables, problems = finish.finish(opts, staging, chunk_reports, reduced,
                                                  spelling, unread, timelines, fleet_peak,
                                                  pool)
        files.discard(scratch)
        warnings = summary["warnings"]
        # a suspect run does not replace a previous output, unless asked to
        published = not (warnings and files.is_output(out) and not opts.force)
        # the scanned tables are read where they stay (none, when nothing is published)
        tables = {n: t for n, t in tables.items() if n not in aggregate.SCANNED}
        if published:
            files.publish(staging, out)
            tables = report.read_tables(out, tables)
        else:
            files.discard(staging)
    except BaseException:
        if scratch is not None:
            files.discard(scratch)
        files.discard(staging)
        raise
    done = time.perf_counter()
    stage = {
        "plan": planned - started,
        "parse_cpu": sum(r.seconds for r in chunk_reports),
        "enrich_combine_cpu": reduced.seconds,
        **{f"worker_{k}": v for k, v in add_steps(*(r.steps for r in chunk_reports),
                                                   reduced.steps).items()},
        "compute": computed - planned,
        "write": done - computed,
        "total": done - started,
    }
    return RunResult(summary=summary, tables=tables, problems=problems, stage_seconds=stage,
                     warnings=warnings, published=published,
                     bytes=sum(r.bytes for r in chunk_reports))


@dataclass(frozen=True)
class TraceResult:
    rows: pl.DataFrame                # trace.COLUMNS, in time order
    problems: list[Problem]
    stage_seconds: dict[str, float]
    bytes: int = 0                    # log bytes the second pass read
    lines: int = 0                    # the lines it read, and of them
    skipped: int = 0                  # those of connections that cannot match (not parsed)


def trace_logs(opts: RunOptions, sel: trace.Selectors,
               observer: Observer | None = None) -> TraceResult:
    """``dsaccess trace INPUT...``: the job of ``run`` shaped for a few connections.

    When a selector follows connections (identity, client, filter value, target), a
    first pass over every chunk finds the connections that may match
    (``trace.suspects``, no tokenizing); the second parses only their lines (``--conn``
    names its own), shuffles and joins them as a run does, so each match carries its
    identity and client, and keeps the rows ``sel`` selects. Nothing is aggregated or
    written but the shuffle's scratch (``--scratch``, or the system's temporary folder),
    removed at the end. ``observer`` hears of both passes' tasks (``terminal.RunProgress``
    with ``TRACE_STAGES``)."""
    started = time.perf_counter()
    chunks, unread = plan.chunks(opts)
    scratch = files.scratch_dir(place(opts.scratch or tempfile.gettempdir(),
                                        opts.storage_options, "--scratch"), None)
    observer = Logged(observer)
    try:
        _make_folders(scratch, scratch, {c.file.server for c in chunks}, False)
        with Scheduler(opts, observer) as compute:
            servers = sorted({c.file.server for c in chunks})
            found: dict[str, list[Any]] = {s: [] for s in servers}
            if trace.needs_suspects(sel):
                observer.planned({"suspects": len(chunks)}, _bytes(chunks))
                first = [task(_suspects, c, sel) for c in chunks]
                for c, f in zip(chunks, compute(first)[0], strict=True):
                    found[c.file.server].append(f)
            read = {s: trace.connections_to_read(s, found[s], sel) for s in servers}
            chunks = [c for c in chunks if read[c.file.server] != []]
            suspected = time.perf_counter()
            layout = plan.layout(chunks, opts.partition_mb, compute.threads)
            parse, between = _stage_a(chunks, layout, scratch, (None, None), read)
            budget = plan.BUDGET * (opts.partition_mb << 20)
            joins = [task(_trace, b, sources, between, scratch, sel, budget)
                     for b, sources in enumerate(plan.bucket_sources(chunks, layout))]
            if chunks:  # (none when no connection can match: nothing left to show)
                observer.planned({"parse": len(chunks), "join": len(joins)}, _bytes(chunks))
            reports, parts = compute(parse, joins) if chunks else ([], [])
    finally:
        files.discard(scratch)
    # the UTC offsets of the JSON logs' lines (their parse tasks tokenize them) and of the
    # routed lines (their join tasks do)
    per_server = aggregate.combine_all([r.partial for r in reports] + [
        {server: {aggregate.UTC_OFFSETS: offsets.merge(runs)}}
        for _, utc in parts for server, runs in utc.items() if runs])
    rows = trace.in_order(pl.concat([p[0] for p in parts])) if parts else trace.no_rows()
    rows = trace.with_local_times(rows, {s: p[aggregate.UTC_OFFSETS] for s, p in
                                         per_server.items() if aggregate.UTC_OFFSETS in p})
    problems = unread + [plan.problem(r.server, r.file, r.problem) for r in
                         sorted(reports, key=lambda r: r.index) if r.problem]
    done = time.perf_counter()
    lines = [p.get("lines", {}) for p in per_server.values()]
    return TraceResult(rows, problems, {"suspects": suspected - started,
                                        "parse_join": done - suspected, "total": done - started},
                       sum(r.bytes for r in reports), sum(n.get("total", 0) for n in lines),
                       sum(n.get("skipped", 0) for n in lines))


def _stage_a(chunks: list[Chunk], layout: dict[str, tuple[int, int]], scratch: Place,
             window: tuple[int | None, int | None],
             connections: dict[str, list[int] | None] | None = None) -> tuple[list[Any], Any]:
    """Stage A's parse tasks (each server's ``connections`` only, for a trace) and the
    one task that waits for them all (``between_stages``)."""
    parse = [task(_parse, c, layout[c.file.server][1], scratch, *window,
                  (connections or {}).get(c.file.server))
             for c in chunks]
    return parse, task(between_stages, parse, *window)


def _parse(chunk: Chunk, *args: Any) -> ChunkReport:
    report = parse_task(chunk, *args)
    tell({"stage": "parse", "server": report.server, "file": report.file,
           "bytes": report.bytes, "lines": report.lines, "seconds": round(report.seconds, 3)})
    return report


def _enrich(bucket: int, *args: Any) -> BucketReport:
    report = enrich_task(bucket, *args)
    tell({"stage": "join", "bucket": bucket, "operations": report.operations,
           "seconds": round(report.seconds, 3)})
    return report


def _suspects(chunk: Chunk, sel: trace.Selectors) -> dict[str, list[int]] | None:
    found = suspects_task(chunk, sel)
    tell({"stage": "suspects", "server": chunk.file.server, "file": chunk.file.name})
    return found


def _trace(bucket: int, *args: Any) -> tuple[pl.DataFrame, dict[str, Any]]:
    rows, utc = trace_task(bucket, *args)
    tell({"stage": "join", "bucket": bucket, "operations": rows.height})
    return rows, utc


def _bytes(chunks: list[Chunk]) -> int:
    """The log bytes the chunks cover (a file's last chunk runs to its end)."""
    return sum((c.file.size if c.end == -1 else c.end) - c.start for c in chunks)


def _combine(reports: list[BucketReport]) -> BucketReport:
    report = combine_task(reports)
    tell({"stage": "aggregate", "parts": len(reports)})
    return report


def _make_folders(staging: Place, scratch: Place, servers: set[str], operations: bool) -> None:
    """Every folder the tasks write into, made once here: on a remote store, tasks that
    made them as they went would race (and pay a round trip per file)."""
    with files.writing(scratch):
        for name in (*EVENT_CLASSES, ROUTED, "rejects", "connections", "timeline", "flights",
                     "jsonl", "parked", *(f"finished/{t}" for t in aggregate.PER_SERVER)):
            (scratch / name).makedirs()
        if not scratch.local:
            for server in servers:
                files.operations_folder(scratch / "flights", server).makedirs()
    if not operations:
        return
    with files.writing(staging):
        (staging / "operations").makedirs()
        if not staging.local:  # (a local write makes its folder: no round trip to save)
            for server in servers:
                files.operations_folder(staging / "operations", server).makedirs()
