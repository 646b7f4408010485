"""The end of a run: what the workers assemble after stage B (rejects, connections and
the JSON Lines from the tasks' pieces; each server's timeline and the worker pool's
saturation; the tables finished by server), then the summary and the other aggregate
tables, which the client finishes and writes."""

from __future__ import annotations

from typing import Any

import polars as pl

from ..outputs import files, report, views
from ..sources.store import Place
from ..tables import aggregate, histogram
from . import saturation
from .cluster import Compute, task
from .enrich import join_pieces
from .plan import Problem, RunOptions, problem
from .stages import (
    BucketReport,
    ChunkReport,
    concat_task,
    finish_servers_task,
    fleet_timeline,
    flight_slabs,
    line_offsets,
    rejects_task,
    server_timeline,
)


def assemble(compute: Compute, reports: list[ChunkReport], reduced: BucketReport,
             spelling: aggregate.Spelling, layout: dict[str, tuple[int, int]],
             scratch: Place, staging: Place, jsonl: bool
             ) -> tuple[int, list[tuple[str, int, pl.DataFrame]], Pool]:
    """On the workers, after stage B: rejects.parquet, connections.parquet and
    operations.jsonl from the tasks' pieces, the fleet's peak concurrent connections, and
    each server's timeline (its peak, its restarts) from its buckets' connection pieces;
    the worker pool's saturation per server and for the fleet from their flight pieces;
    the tables finished by server (``aggregate.PER_SERVER``), from the partials each group
    of servers left (``reduced.parked``), in the fleet's ``spelling``. The client gets
    numbers, the restart rows and the periods, whatever the input."""
    order = {r.index: (r.server, r.file, r.index) for r in reports}
    ranges = event_ranges(aggregate.combine_all([r.partial for r in reports]))
    fleet = span(ranges)
    period = aggregate.load_period(*fleet)
    cuts = flight_slabs(reports)
    slabs = len(cuts) + 1
    nothing = join_pieces({})  # an empty bucket's tables: the outputs' schemas, for none
    timelines = [scratch / "timeline" / f"s{i:05d}.arrow" for i in range(len(layout))]
    servers = [task(server_timeline, server, scratch / "connections", range(base, base + count),
                    cuts, timelines[i])
               for i, (server, (base, count)) in enumerate(sorted(layout.items()))]
    graphs = [
        task(rejects_task, scratch, staging, order, line_offsets(reports)),
        task(concat_task, scratch / "connections", "b*.parquet",
             staging / "connections.parquet", nothing.connections),
        task(fleet_timeline, timelines, slabs, servers),
        *servers,
    ]
    n = len(graphs)
    pools = [task(saturation.server_saturation, server, scratch / "flights", period,
                  ranges[server], slabs)
             for server in sorted(layout) if server in ranges]
    fleet_pool = task(saturation.fleet_saturation, scratch / "flights", period, fleet, slabs) \
        if ranges else saturation.no_events()
    graphs += [fleet_pool, *pools]
    places = {server: i for i, server in enumerate(sorted(layout))}
    finished = [task(finish_servers_task, parked, spelling, scratch / "finished", places)
                for parked in reduced.parked]
    empty = aggregate.finalize_tables(aggregate.per_server(nothing.tables)[0])
    graphs += [task(concat_task, scratch / "finished" / name, "s*.arrow",
                    staging / f"{name}.parquet", empty[name], finished)
               for name in sorted(aggregate.PER_SERVER)]
    if jsonl:
        graphs.append(task(concat_task, scratch / "jsonl", "b*.jsonl",
                           staging / "operations.jsonl", None))
    done, = compute(graphs)
    return done[2], list(done[3:3 + len(layout)]), (done[n + 1:n + 1 + len(pools)], *done[n])


# the pool's saturation: each server's (name, periods, figures), the fleet's periods and
# figures (``saturation``)
Pool = tuple[list[tuple[str, pl.DataFrame, dict[str, Any]]], pl.DataFrame, dict[str, Any]]


def event_ranges(per_server: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Each server's window of events, (first, last) ns, where it has events."""
    return {s: (p["time_range"]["first"], p["time_range"]["last"])
            for s, p in per_server.items() if "time_range" in p}


def span(ranges: dict[str, tuple[int, int]]) -> tuple[int | None, int | None]:
    """The servers' windows together, (first, last) ns; (None, None) without any."""
    return (min((f for f, _ in ranges.values()), default=None),
            max((t for _, t in ranges.values()), default=None))


def finish(opts: RunOptions, staging: Place, chunk_reports: list[ChunkReport],
           reduced: BucketReport, spelling: aggregate.Spelling, unread: list[Problem],
           timelines: list[tuple[str, int, pl.DataFrame]], fleet_peak: int, pool: Pool
           ) -> tuple[dict[str, Any], dict[str, pl.DataFrame], list[Problem]]:
    """The summary and the aggregate tables, from the tasks' partials and what
    ``assemble`` returned, DNs and fingerprints in the fleet's ``spelling``; written with
    run.json, the report and the metrics into ``staging``."""
    per_server = aggregate.combine_all([r.partial for r in chunk_reports] + [reduced.partial])
    for r in chunk_reports:  # servers whose files held no events still appear
        per_server.setdefault(r.server, {})
    for p in unread:  # and so do servers that could not be read at all
        per_server.setdefault(p["server"], {})
    for server, peak, _ in timelines:
        if peak:
            per_server.setdefault(server, {})["peak_connections"] = peak
    starts = pl.concat([t[2] for t in timelines])  # one per server: never empty
    summary = aggregate.finalize(per_server, dict(starts.group_by("server").len().iter_rows()),
                                 fleet_peak)
    summary["workload_rule_errors"] = dict(sorted(reduced.rule_errors.items()))
    problems = unread + [problem(r.server, r.file, r.problem) for r in
                         sorted(chunk_reports, key=lambda r: r.index) if r.problem]
    problems = [dict(t) for t in dict.fromkeys(tuple(p.items()) for p in problems)]
    summary["problems"] = problems
    spans = {s: (aggregate.iso(p[aggregate.LOGS_RANGE]["first"]),
                 aggregate.iso(p[aggregate.LOGS_RANGE]["last"]))
             for s, p in per_server.items() if aggregate.LOGS_RANGE in p}
    summary["warnings"] = views.run_warnings(summary, windowed=opts.since_ns is not None
                                             or opts.until_ns is not None, spans=spans)
    ranges = event_ranges(per_server)
    period = aggregate.load_period(*span(ranges))
    servers, fleet_periods, fleet_figures = pool
    servers = saturation.with_threads(servers, dict(opts.threads))
    summary["saturation"] = saturation.summary(fleet_figures)
    figures = {server: f for server, _, f in servers}
    for server, section in summary["servers"].items():  # (a server without events: {})
        section["saturation"] = saturation.summary(figures.get(server, {}))
    # a run that found no events: the tables of an empty bucket's task (their schemas);
    # the tables by server are in staging already (``assemble``)
    partials = {**aggregate.per_server(reduced.tables or join_pieces(
        {}, load_period=period).tables)[1], "restarts": starts}
    # the partials end in the finished tables, which let them go as they grow: no other
    # reference
    reduced.tables.clear()
    tables = aggregate.finalize_tables(partials, ranges, period, release=True,
                                       spelling=spelling)
    del partials
    tables["saturation"] = saturation.table(servers, fleet_periods)
    tables["pool_held"] = saturation.held_table(servers)
    info = run_info(opts)
    info["inputs"] = _inputs(chunk_reports, opts)
    info[aggregate.UTC_OFFSETS] = {s: p[aggregate.UTC_OFFSETS]
                                   for s, p in sorted(per_server.items())
                                   if aggregate.UTC_OFFSETS in p}
    tables = report.write_aggregates(staging, summary, tables, info, opts.histocrutch)
    return summary, tables, problems


def run_info(opts: RunOptions) -> dict[str, Any]:
    """What a later ``merge`` must agree on to combine this run with others."""
    from .. import __version__
    return {
        "format": files.FORMAT,
        "version": __version__,
        "window": {"since": opts.since_ns, "until": opts.until_ns},
        "histogram": histogram.LAYOUT,
        # "by_scope": a search's fingerprint begins with its scope (runs made before do
        # not; a merge of both would keep one search apart under two names)
        "fingerprint": {"sort_operands": opts.sort_operands, "by_scope": True},
        "workloads": [{"name": n, "when": w} for n, w, _ in opts.workloads],
    }


def _inputs(reports: list[ChunkReport], opts: RunOptions) -> list[dict[str, Any]]:
    """Each file read: its line accounting, bytes, and the window it was read for (what a
    merge needs to count each line once, and to refuse runs that overlap)."""
    by_file: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in reports:
        entry = by_file.setdefault((r.server, r.file_seq, r.file), {
            "server": r.server, "file": r.file, "url": r.url, "bytes": 0,
            "since": opts.since_ns,
            "until": opts.until_ns, "lines": dict.fromkeys(aggregate.LINE_KEYS, 0)})
        entry["bytes"] += r.bytes
        for key, n in r.partial.get(r.server, {}).get("lines", {}).items():
            entry["lines"][key] += n
    return [by_file[k] for k in sorted(by_file)]
