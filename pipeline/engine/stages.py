"""The job's tasks: parse (stage A), enrich (stage B), combine (stage C), and the
tasks that assemble the output's files from their pieces.

Plain top-level functions: Dask pickles them by name and runs them on the
workers. They receive places (``store.Place``: a path or a URL) and small reports,
never open files or clients, and exchange the shuffled rows through files in the
scratch folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..forensic import trace
from ..outputs import files
from ..sources.jsonlog import is_json_log
from ..sources.sniff import looks_like
from ..sources.source import Chunk, ChunkData, read_chunk, read_head
from ..sources.store import Place
from ..tables import aggregate
from . import saturation, shuffle
from .enrich import ROUTED, join_pieces
from .logline import reject_table, tokenize, tokenize_json
from .partition import SUBS
from .schema import EVENT_CLASSES, REJECT_SCHEMA


def peak_mb() -> int:
    """This process's peak resident memory so far, in MB (0 where /proc does not say)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) // 1024
    except (OSError, IndexError, ValueError):
        return 0


class Steps:
    """Worker seconds per step of a task (``lap`` ends a step), for the stage breakdown,
    and the peak memory of the process when it starts and when it ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()
        self.peak_before = peak_mb()

    def raised(self, kind: str) -> dict[str, float]:
        """The seconds, and ``peak_mb_<kind>``: the process's peak if this task raised it."""
        after = peak_mb()
        return {**self.seconds, **({f"peak_mb_{kind}": after} if after > self.peak_before
                                   else {})}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now

    def move(self, source: str, to: str, seconds: float) -> None:
        """Count ``seconds`` of step ``source`` as step ``to`` (a call that did both)."""
        self.seconds[source] = self.seconds.get(source, 0.0) - seconds
        self.seconds[to] = self.seconds.get(to, 0.0) + seconds

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def add_steps(*parts: dict[str, float]) -> dict[str, float]:
    """Step seconds of several tasks added up (peaks: the largest)."""
    out: dict[str, float] = {}
    for part in parts:
        for name, value in part.items():
            out[name] = max(out.get(name, 0.0), value) if name.startswith("peak_mb_") \
                else out.get(name, 0.0) + value
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
    problem: str | None = None
    seconds: float = 0.0
    bytes: int = 0
    steps: dict[str, float] = field(default_factory=dict)
    url: str = ""                   # the file's location, which names it among runs


@dataclass(frozen=True)
class BucketReport:
    """What enrich tasks return, and what combine tasks merge them into."""

    partial: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    operations: int
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    rule_errors: dict[str, int] = field(default_factory=dict)  # rows a workload rule failed on
    # where ``park_task`` left groups of servers' ``aggregate.PER_SERVER`` partials
    parked: tuple[Place, ...] = ()


def parse_task(chunk: Chunk, buckets: int, scratch: Place, since_ns: int | None,
               until_ns: int | None, connections: list[int] | None = None) -> ChunkReport:
    """Stage A: read a chunk, parse it, write its rows of each bucket to scratch. With
    ``connections`` (a trace), a text log's lines of those client connections are routed
    whole instead, to be tokenized in the join tasks (``_route_task``)."""
    steps = Steps()
    f = chunk.file
    got, json = _read_text(chunk)
    if got is None:  # a JSON file's later range: its first range's task parses it whole
        return ChunkReport(chunk.index, f.server, f.name, f.seq, 0, {f.server: {}},
                           None, steps.total, 0, steps.seconds, f.url)
    steps.lap("read")
    if connections is not None and not json:
        return _route_task(chunk, got, buckets, scratch, connections, steps)
    if json:
        if chunk.end != -1:  # the file was cut into ranges: read all of it
            got = read_chunk(Chunk(f, chunk.index, 0, -1))
        tokens = tokenize_json(got.data)
    else:
        tokens = tokenize(got.data, final=got.final)
    tables, counts = tokens.classes, tokens.counts
    rejects = reject_table(tokens.rejects, f.server, f.name) if counts["rejected"] else None
    problem = got.problem or _not_an_access_log(chunk, got.data, counts)
    size = len(got.data)
    del got  # the log's bytes are tokens now: not held through the shuffle's encoding too
    steps.lap("tokenize")
    written = shuffle.write_buckets(scratch, chunk.index, tables, server=f.server, file=f.name,
                                    file_seq=f.seq, buckets=buckets, since_ns=since_ns,
                                    until_ns=until_ns)
    steps.lap("shuffle_write")
    if rejects is not None and rejects.height:
        files.write_parquet(rejects.with_columns(pl.lit(chunk.index).alias("chunk")),
                              scratch / "rejects" / f"c{chunk.index:06d}.parquet")
    partial = aggregate.chunk_partial(f.server, counts, written.kept, written.first_ts,
                                      written.last_ts, written.span,
                                      events=sum(t.num_rows for t in tables.values()),
                                      unknown_fields=tokens.unknown_fields,
                                      utc_offsets=tokens.utc_offsets)
    steps.lap("partial_aggregates")
    return ChunkReport(chunk.index, f.server, f.name, f.seq, counts["total"], partial,
                       problem, steps.total, size, steps.raised("parse"), f.url)


def _route_task(chunk: Chunk, got: ChunkData, buckets: int, scratch: Place,
                connections: list[int], steps: Steps) -> ChunkReport:
    """A trace's stage A over a text log: the lines of ``connections`` routed whole to
    their buckets (``shuffle.write_routed``), tokenized in the join tasks. Its lines are
    counted as a trace reports them: total, and those of other connections, skipped."""
    f = chunk.file
    routed = shuffle.write_routed(scratch, chunk.index, bytes(got.data), server=f.server,
                                  file=f.name, file_seq=f.seq, buckets=buckets,
                                  final=got.final, connections=connections)
    c = routed.counts
    steps.lap("shuffle_write")
    events = c["routed"] + c["outside_window"] + c["skipped"]
    counts = {"total": c["total"], "parsed": c["routed"] + c["outside_window"],
              "rejected": c["rejected"], "header": c["header"], "blank": c["blank"],
              "skipped": c["skipped"]}
    problem = got.problem or _not_an_access_log(chunk, got.data, {**counts, "parsed": events})
    partial = aggregate.chunk_partial(f.server, counts, routed.kept, routed.first_ts,
                                      routed.last_ts, routed.span)
    return ChunkReport(chunk.index, f.server, f.name, f.seq, c["total"], partial, problem,
                       steps.total, len(got.data), steps.raised("parse"), f.url)


def _read_text(chunk: Chunk) -> tuple[ChunkData | None, bool]:
    """A chunk's bytes, and whether its file is a 3.x JSON log. JSON logs are detected
    per file, whichever range this is: json-pretty objects span lines, so a JSON file is
    not cut, and a range after its first is not read (None)."""
    if chunk.start > 0 and is_json_log(read_head(chunk.file)):
        return None, True
    got = read_chunk(chunk)
    return got, chunk.start == 0 and is_json_log(got.data[:4096])


def suspects_task(chunk: Chunk, sel: trace.Selectors) -> dict[str, list[int]] | None:
    """A trace's first pass over a chunk: per selector that follows connections, the
    client connections that may match (``trace.suspects``); None for a JSON log, whose
    lines the trace reads whole."""
    got, json = _read_text(chunk)
    return None if got is None or json else trace.suspects(got.data, sel)


def trace_task(bucket: int, sources: shuffle.Sources, between: Between, scratch: Place,
               sel: trace.Selectors, budget: int = 1 << 62
               ) -> tuple[pl.DataFrame, dict[str, list[tuple[str, int, int]]]]:
    """A trace's stage B: one bucket's events joined (no aggregates, nothing written),
    and the rows ``sel`` selects with their connections' context (``trace.select``); and
    per server, the UTC offsets of the routed lines' times (``offsets``)."""
    found, parts = _bucket_parts(scratch, sources, budget)
    rows, utc = [], {}
    for subs in parts:
        pieces = _read_part(found, subs, between)
        joined = join_pieces(pieces, aggregates=False)
        del pieces
        rows.append(trace.select(joined.operations.lazy(), joined.connections.lazy(), sel))
        for server, runs in joined.lines["utc_offsets"].items():
            utc[server] = utc.get(server, []) + runs
    return compact(pl.concat(rows)), utc  # (parts gives one range at least)


def compact(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in buffers of their own. A string column polars filtered still holds its
    whole table's text (its values are views into the same buffers): each trace task's
    few rows kept its bucket's 50 MB alive, 4.5 GB for a trace of the 2 GB fleet, and a
    worker process would pickle it all to the client."""
    return pl.from_arrow(rows.to_arrow(compat_level=pl.CompatLevel.oldest()))


def _not_an_access_log(chunk: Chunk, data: bytes, counts: dict[str, int]) -> str | None:
    """A file whose first range holds lines but no event, and looks like another log: say
    which (an errors log saved as access was "100% of its lines rejected")."""
    if chunk.start or counts["parsed"] or counts["total"] == counts["blank"]:
        return None
    kind = looks_like(data[:SNIFF_BYTES])
    if kind is None:
        return None
    return (f"{chunk.file.url}: looks like {kind}, not a 389 DS access log (no event in "
            f"its {counts['total']:,} lines); give the access log's path")


SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Between:
    """What stage B needs from all of stage A: line-number offsets, the load period, the
    window (what is before it in the shuffle is connections' context), and the slabs of
    time the flights are written in (``saturation.slab_cuts``)."""

    offsets: dict[int, int]
    load_period: int
    window: tuple[int | None, int | None] = (None, None)
    slab_cuts: tuple[int, ...] = ()


def between_stages(reports: list[ChunkReport], since_ns: int | None = None,
                   until_ns: int | None = None) -> Between:
    """The barrier between the stages: the one task that waits for every parse task, so
    the graph has chunks + buckets edges, not chunks x buckets."""
    ranges = [p["time_range"] for r in reports for p in r.partial.values() if "time_range" in p]
    first = min((t["first"] for t in ranges), default=None)
    last = max((t["last"] for t in ranges), default=None)
    return Between(line_offsets(reports), aggregate.load_period(first, last),
                   (since_ns, until_ns), flight_slabs(reports))


def flight_slabs(reports: list[ChunkReport]) -> tuple[int, ...]:
    """The slabs of time the join tasks write flights in, from the parse tasks' events
    (``saturation.slab_cuts``)."""
    return saturation.slab_cuts([(p["time_range"]["first"], p["time_range"]["last"],
                                  p["lines"]["parsed"])
                                 for r in reports for p in r.partial.values()
                                 if "time_range" in p])


def enrich_task(bucket: int, sources: shuffle.Sources, between: Between, scratch: Place,
                staging: Place, sort_operands: bool, operations: tuple[str, ...],
                workloads: tuple[tuple[str, str, int | None], ...],
                budget: int = 1 << 62) -> BucketReport:
    """Stage B: one bucket's events → operations (written here) and partial aggregates.

    ``sources`` name the files that hold the bucket (``shuffle.Sources``). A bucket of
    more than ``budget`` bytes (once read) is joined a few sub-buckets at a time, each
    part's connections whole, so task memory stays bounded when one bucket gets more
    than its share."""
    steps = Steps()
    found, parts = _bucket_parts(scratch, sources, budget)
    reports = [_join_part(f"{bucket:05d}-{j:02d}", subs, found, between, scratch, staging,
                          sort_operands, operations, workloads, steps)
               for j, subs in enumerate(parts)]
    reports = [r for r in reports if r is not None]
    if not reports:
        return BucketReport({}, {}, 0, steps.total)
    if len(reports) == 1:
        partial, tables, rule_errors, _ = reports[0]
    else:
        partial = aggregate.combine_all([r[0] for r in reports])
        tables = aggregate.combine_tables([r[1] for r in reports])
        rule_errors = aggregate.combine_all([r[2] for r in reports])
        steps.lap("partial_aggregates")
    operations = sum(r[3] for r in reports)
    return BucketReport(partial, tables, operations, steps.total, steps.raised("enrich"),
                        rule_errors)


def _bucket_parts(scratch: Place, sources: shuffle.Sources, budget: int
                  ) -> tuple[dict[str, list[shuffle.Piece]], list[range]]:
    """A bucket's pieces of each class's files (``sources`` name them), and its
    sub-buckets in parts of at most ``budget`` bytes, each joined in turn."""
    found = {cls: shuffle.pieces(scratch, cls, sources) for cls in (*EVENT_CLASSES, ROUTED)}
    sizes = [sum(p.sizes[s] for ps in found.values() for p in ps) for s in range(SUBS)]
    return found, shuffle.parts(sizes, budget)


def _read_part(found: dict[str, list[shuffle.Piece]], subs: range, between: Between
               ) -> dict[str, Any]:
    """The bytes of the sub-buckets ``subs`` of each class, as ``join_pieces`` takes them."""
    return {cls: shuffle.read_pieces(ps, subs, between.offsets) for cls, ps in found.items()}


def _join_part(name: str, subs: range, found: dict[str, list[shuffle.Piece]],
               between: Between, scratch: Place, staging: Place, sort_operands: bool,
               operations: tuple[str, ...], workloads: tuple[tuple[str, str, int | None], ...],
               steps: Steps
               ) -> tuple[dict[str, Any], dict[str, pl.DataFrame], dict[str, int], int] | None:
    """Join the sub-buckets ``subs`` of a bucket; write their operations (in the formats
    ``operations`` names) and connections as pieces called ``name``; their partials, rule
    errors and operation count."""
    pieces = _read_part(found, subs, between)
    steps.lap("shuffle_read")
    joined = join_pieces(pieces, sort_operands=sort_operands, workloads=workloads,
                         load_period=between.load_period, window=between.window)
    del pieces
    steps.lap("join")
    steps.move("join", "shuffle_read", joined.decode_seconds)  # decoding is reading
    if not joined.events:
        return None
    ops, conns = joined.operations, joined.connections
    if "parquet" in operations:
        files.write_operations(ops, staging / "operations", name)
    if "jsonl" in operations:
        files.write_jsonl(ops, scratch / "jsonl" / f"b{name}.jsonl")
    files.write_parquet(conns, scratch / "connections" / f"b{name}.parquet")
    saturation.write_flights(ops, scratch / "flights", name, between.slab_cuts)
    steps.lap("write_operations")
    return joined.partial, joined.tables, joined.rule_errors, ops.height


def line_offsets(reports: list[ChunkReport]) -> dict[int, int]:
    """Chunk index → the number of lines before it in its file."""
    offsets: dict[int, int] = {}
    seen: dict[tuple[str, int], int] = {}
    for r in sorted(reports, key=lambda r: r.index):
        key = (r.server, r.file_seq)
        offsets[r.index] = seen.get(key, 0)
        seen[key] = offsets[r.index] + r.lines
    return offsets


def combine_task(reports: list[BucketReport]) -> BucketReport:
    """Stage C: merge bucket reports (summary counts and aggregate partials)."""
    steps = Steps()
    partial = aggregate.combine_all([r.partial for r in reports])
    tables = aggregate.combine_tables([r.tables for r in reports if r.tables])
    steps.lap("combine")
    return BucketReport(partial, tables, sum(r.operations for r in reports),
                        sum(r.seconds for r in reports) + steps.total,
                        add_steps(*(r.steps for r in reports), steps.raised("combine")),
                        aggregate.combine_all([r.rule_errors for r in reports]),
                        tuple(p for r in reports for p in r.parked))


def park_task(report: BucketReport, folder: Place, group: int) -> BucketReport:
    """A group of servers' combined report, its ``aggregate.PER_SERVER`` partials left in
    ``folder`` (an Arrow IPC file each, ``g<group>+<name>.arrow``) for
    ``finish_servers_task``: the combines above it, which put the fleet together, hold the
    others only, and no task holds every server's rows (on a fleet of many identities,
    hundreds of MB held to the end)."""
    mine, others = aggregate.per_server(report.tables)
    prefix = f"g{group:05d}"
    for name, table in mine.items():
        files.write_ipc(table, folder / f"{prefix}+{name.replace(':', '+')}.arrow")
    return BucketReport(report.partial, others, report.operations, report.seconds,
                        report.steps, report.rule_errors, (*report.parked, folder / prefix))


def finish_servers_task(parked: Place, spelling: aggregate.Spelling, dest: Place,
                        order: dict[str, int]) -> None:
    """The ``aggregate.PER_SERVER`` tables of a group of servers, finished from the
    partials ``park_task`` left (``parked``: their folder and the group's prefix;
    ``spelling``: the fleet's); each server's rows of each table written to
    ``dest/<table>/s<n>.arrow``, ``n`` its place in ``order``, so that the pieces in
    name order make the table in its order (``aggregate.finalize_tables``')."""
    prefix = f"{parked.name}+"
    partials = {p.name.removeprefix(prefix).removesuffix(".arrow").replace("+", ":"):
                files.read_ipc(p)
                for p in parked.parent.glob(f"{prefix}*.arrow")}
    tables = aggregate.finalize_tables(partials, release=True, spelling=spelling)
    del partials
    for name in list(tables):
        for server, rows in aggregate.by_server(tables.pop(name)).items():
            files.write_ipc(rows, dest / name / f"s{order[server]:05d}.arrow")


TIMELINE_COLUMNS = ["server", "conn", "opened", "closed"]


def server_timeline(server: str, folder: Place, buckets: range, cuts: tuple[int, ...],
                    timeline: Place) -> tuple[str, int, pl.DataFrame]:
    """One server's peak concurrent connections and its restarts, from the connection
    pieces of its buckets in ``folder`` (written by the enrich tasks: ``b<bucket>-<part>``;
    a bucket without events has none). Its connections' opens and closes are written to
    ``timeline``, in time order, a batch per slab of ``cuts``, for ``fleet_timeline``."""
    names = {f"b{b:05d}" for b in buckets}
    frames = [files.read_parquet(piece, TIMELINE_COLUMNS).filter(pl.col("server") == server)
              for piece in folder.glob("b*.parquet") if piece.name.split("-")[0] in names]
    connections = pl.concat(frames).lazy() if frames else pl.LazyFrame(schema={
        "server": pl.String, "conn": pl.Int64, "opened": pl.Datetime("ns", "UTC"),
        "closed": pl.Datetime("ns", "UTC")})
    events = aggregate.connection_events(connections).select("ts", "d").sort("ts", "d") \
        .collect()
    slabs = saturation.slab_of(events["ts"].dt.epoch("ns"), cuts)
    files.write_ipc_batches(events, saturation.slab_bounds(slabs, cuts), timeline)
    return server, aggregate.peak_level(events), aggregate.restarts(connections)


def fleet_timeline(timelines: list[Place], slabs: int, _servers: list[Any]) -> int:
    """The fleet's peak concurrent connections: the servers' opens and closes
    (``timelines``, written by ``server_timeline``: ``_servers``, the tasks to wait for) in
    one sweep, a slab of time at a time, so that what it holds does not grow with the
    run."""
    level = peak = 0
    for k in range(slabs if timelines else 0):
        events = pl.concat([files.read_ipc_batch(t, k) for t in timelines]).sort("ts", "d")
        peak = max(peak, aggregate.peak_level(events, level))
        level += int(events["d"].cast(pl.Int64).sum())
    return peak


def rejects_task(scratch: Place, staging: Place, order: dict[int, tuple[str, str, int]],
                 offsets: dict[int, int]) -> None:
    """rejects.parquet from the parse tasks' pieces, one at a time, in (server, file, line)
    order: a piece per chunk (``order``: chunk → its sort key), and a file's chunks hold
    its lines in order; line numbers made absolute (``offsets``)."""
    parts = sorted((scratch / "rejects").glob("c*.parquet"),
                   key=lambda p: order.get(int(p.name[1:].split(".")[0]), ("", "", 0)))

    def absolute(piece: pl.DataFrame) -> pl.DataFrame:
        shift = pl.col("chunk").replace_strict(offsets, return_dtype=pl.Int64)
        return piece.with_columns(pl.col("line") + shift).drop("chunk").sort("line")
    files.concat_parquet(parts, staging / "rejects.parquet",
                           empty=pl.DataFrame(schema=dict(REJECT_SCHEMA)), transform=absolute)


def concat_task(folder: Place, pattern: str, dest: Place, empty: pl.DataFrame | None,
                _after: list[Any] | None = None) -> None:
    """One output file from the pieces in ``folder`` matching ``pattern``, in name order:
    Parquet (``empty``: its table when there are none) or, without ``empty``, bytes.
    ``_after``: the tasks that write the pieces, when they run in the same graph."""
    parts = folder.glob(pattern)
    if empty is None:
        files.concat_files(parts, dest)
    else:
        files.concat_parquet(parts, dest, empty=empty)
