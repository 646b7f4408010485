"""Run summary and aggregate tables: the partials of each bucket (computed by the compiled
core), an associative combine, finalize.

A summary partial is a plain nested dict of integers per server, so partials from any
number of buckets (or chunks) merge by adding, in any grouping; the partial tables merge
by grouping on their keys (``combine_tables``).

>>> a = {"x": {"lines": {"total": 2}, "connections": 1}}
>>> b = {"x": {"lines": {"total": 3}}, "y": {"connections": 4}}
>>> combine(a, b) == {"x": {"lines": {"total": 5}, "connections": 1}, "y": {"connections": 4}}
True
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import polars as pl

from .. import _core
from . import histogram, offsets
from .dn import canonical_column, most_frequent

# The summary's verbs: the first keyword of a line after its ids (389ds-access-log.md
# §15.4), requests first.
SUMMARY_VERBS = ("BIND", "SRCH", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT", "ABANDON",
                 "UNBIND")

Counts = dict[str, Any]
# total = parsed + outside_window + rejected + header + blank: every line read, once
LINE_KEYS = ("total", "parsed", "outside_window", "rejected", "header", "blank")


def combine(a: Counts, b: Counts) -> Counts:
    """Add two nested count dicts; ``first``/``last`` keep the min/max."""
    out: Counts = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == UNKNOWN_FIELDS:
            out[key] = {k: out[key].get(k, 0) + value.get(k, 0) for k in {*out[key], *value}}
        elif key == UTC_OFFSETS:
            out[key] = offsets.merge(out[key], value)
        elif isinstance(value, dict):
            out[key] = combine(out[key], value)
        elif key == "first":
            out[key] = min(out[key], value)
        elif key == "last" or key.startswith("peak_"):
            out[key] = max(out[key], value)
        else:
            out[key] = out[key] + value
    return out


def combine_all(parts: list[Counts]) -> Counts:
    """Combine many partials (a left fold; any order gives the same result)."""
    total: Counts = {}
    for part in parts:
        total = combine(total, part)
    return total


def chunk_partial(server: str, counts: dict[str, int], kept: int, first_ts: int | None,
                  last_ts: int | None, span: tuple[int, int] | None = None,
                  events: int | None = None, unknown_fields: dict[str, int] | None = None,
                  utc_offsets: list[offsets.Run] | None = None) -> Counts:
    """What the parse stage knows: line accounting and the time range. ``kept``: the events
    inside the window, of ``events`` (the parsed lines when not given: a text log has a
    line an event); the events outside it are ``outside_window`` lines, the rest of the
    parsed lines stay ``parsed`` (a json-pretty object's lines after its first were
    counted outside a window no one gave). ``span``: the time range of every event read,
    in the window or not (``LOGS_RANGE``, for the warning of a window that holds no event;
    not in summary.json). ``unknown_fields``: the tokenizer's, by name (events read
    whether in the window or not, as rejects are). ``utc_offsets``: the tokenizer's runs
    of one UTC offset (``offsets``; run.json keeps them, summary.json does not)."""
    lines = dict(counts)
    outside = (lines.get("parsed", 0) if events is None else events) - kept
    lines["outside_window"] = outside
    lines["parsed"] = lines.get("parsed", 0) - outside
    part: Counts = {"lines": lines}
    if first_ts is not None and last_ts is not None:
        part["time_range"] = {"first": int(first_ts), "last": int(last_ts)}
    if span is not None and lines["outside_window"]:
        part[LOGS_RANGE] = {"first": int(span[0]), "last": int(span[1])}
    if unknown_fields:
        part[UNKNOWN_FIELDS] = dict(unknown_fields)
    if utc_offsets:
        part[UTC_OFFSETS] = offsets.merge(utc_offsets)
    return {server: part}


# RESULT fields no column reads, by name: ``combine`` sums them whatever their names (a
# field named "first" or "peak_x" is no min or max)
UNKNOWN_FIELDS = "unknown_fields"


LOGS_RANGE = "logs_range"
UTC_OFFSETS = "utc_offsets"


def from_core(tables: dict[str, Any], summary: Any) -> tuple[Counts, dict[str, pl.DataFrame]]:
    """A bucket's partials as the compiled core gives them (``rust/core/src/aggregate.rs``
    states what counts where: Arrow tables keyed ``"<table>"``, ``"<table>:<latency>"``
    for histogram rows and ``SPELLINGS``, and summary rows ``(server, key, count)``, the
    key a dotted path) → the summary's counts per server and the tables, as the combine
    takes them."""
    out = {}
    for name, table in tables.items():
        df = pl.DataFrame(table)
        # categorical keys: a fleet's identities are most of what the combine tasks hold,
        # each in thousands of rows of workloads and binds (``_finished`` casts them back)
        keys = PARTIAL_KEYS[name.partition(":")[0]]
        out[name] = df.with_columns(pl.col(c).cast(pl.Categorical) for c in keys
                                    if df.schema.get(c) == pl.String)
    counts: Counts = {}
    for server, key, n in pl.DataFrame(summary).iter_rows():
        node = counts.setdefault(server, {})
        *path, last = key.split(".")
        for step in path:
            node = node.setdefault(step, {})
        node[last] = n
    return counts, out


def finalize(per_server: Counts, restarts: dict[str, int], fleet_peak: int | None = None
             ) -> Counts:
    """The ``summary.json`` document: totals first, then the same keys per server.
    ``fleet_peak``: the fleet's peak concurrent connections (``fleet_peak_connections``;
    without it, the largest server's)."""
    servers = {name: _complete(part, restarts.get(name, 0))
               for name, part in sorted(per_server.items())}
    total = _complete(combine_all(list(per_server.values())), sum(restarts.values()))
    if fleet_peak is not None:
        total["peak_connections"] = fleet_peak
    return {**total, "servers": servers}


def _complete(part: Counts, restarts: int) -> Counts:
    ops = part.get("operations", {})
    results = part.get("results", {})
    searches = part.get("searches", {})
    unmatched = part.get("unmatched", {})
    time_range = part.get("time_range", {})
    by_err = results.get("by_err", {})
    return {
        "lines": {k: int(part.get("lines", {}).get(k, 0)) for k in LINE_KEYS},
        "connections": int(part.get("connections", 0)),
        "peak_connections": int(part.get("peak_connections", 0)),
        "restarts": restarts,
        "operations": {"total": int(ops.get("total", 0)),
                       **{v: int(ops.get(v, 0)) for v in SUMMARY_VERBS}},
        "internal_operations": int(part.get("internal_operations", 0)),
        "results": {"total": int(results.get("total", 0)),
                    "by_err": {k: int(by_err[k]) for k in sorted(by_err, key=_err_order)}},
        "searches": {k: int(searches.get(k, 0))
                     for k in ("unindexed", "partially_unindexed", "paged")},
        "unmatched": {k: int(unmatched.get(k, 0)) for k in ("requests", "results")},
        "abandoned": int(part.get("abandoned", 0)),
        "unknown_fields": {k: int(v) for k, v in sorted(part.get(UNKNOWN_FIELDS, {}).items())},
        "time_range": {"first": iso(time_range.get("first")),
                       "last": iso(time_range.get("last"))},
    }


def _err_order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.lstrip("-").isdigit() else (1 << 30, key)


def iso(ns: int | None) -> str | None:
    """UTC nanoseconds → ``2026-11-26T16:20:09.123456789Z``.

    >>> iso(1_795_710_079_008_343_411)
    '2026-11-26T16:21:19.008343411Z'
    """
    if ns is None:
        return None
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def iso_ns(text: str) -> int:
    """``iso``'s inverse: ``2026-11-26T16:20:10.475026726Z`` → UTC nanoseconds.

    >>> iso_ns("2026-11-26T16:20:10.475026726Z"), iso_ns("2026-11-26T16:20:10Z")
    (1795710010475026726, 1795710010000000000)
    """
    whole, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)


# ---- aggregate tables: fingerprints, workloads, timeseries (ARCHITECTURE.md §3) ----

# The etime bounds metrics.prom exposes as ``le``: counted exactly per workloads row
# (``etime_le_<bound>``) by the core, which owns them.
PROM_LE = tuple(_core.PROM_LE)


def le_column(le: float, latency: str = "etime") -> str:
    """``etime_le_5``, ``wtime_le_0.0001``: the column counting latencies <= ``le``."""
    return f"{latency}_le_{le:.9g}"


# success, compare false/true, SASL bind in progress: not failures (the core's list)
OK_ERRORS = tuple(_core.OK_ERRORS)
LATENCIES = ("etime", "wtime", "optime")
TABLE_KEYS = MappingProxyType({
    "fingerprints": ("fingerprint",),
    "workloads": ("server", "workload", "bind_dn", "verb"),
    "timeseries": ("server", "minute", "verb"),
    "clients": ("server", "client_ip", "transport", "close_code"),   # connections, counted
    "restarts": ("server", "ts"),                                      # server starts seen
    "binds": ("server", "dn", "err"),                # BIND requests by target DN and result
    "load": ("server", "start", "seconds"),          # client operations per period
    "slowest": ("server", "ts", "conn", "op", "line"),  # the slowest client operations
    "indexes": ("server", "attribute", "index"),     # index advice (the core's advice.rs)
})
PARTIAL_KEYS = MappingProxyType({**TABLE_KEYS, "dn_spellings": ("dn", "spelling"),
                                 "fingerprint_spellings": ("fingerprint", "spelling")})
# a merge's runs.parquet: per merged run, its fingerprints' and bind DNs' operations and
# total etime (merge._by_run), so a week's report shows its days
RUNS = "runs"
# wtime and optime only per fingerprint: per bind DN they would triple the largest
# partials (histogram rows grow with distinct keys x buckets) for little insight.
TABLE_LATENCIES = MappingProxyType({
    "fingerprints": LATENCIES, "workloads": ("etime",), "timeseries": ("etime",),
    "clients": (), "restarts": (), "binds": (), "load": (), "slowest": (), "indexes": (),
})
# The exact counts at or below each ``PROM_LE`` bound, per latency: the core's partial
# ``<table>:<latency>_le`` holds them as histogram rows over those bounds (bucket j: the
# values in (PROM_LE[j-1], PROM_LE[j]]), which the finish adds up into the cumulative
# ``<latency>_le_<bound>`` columns (``le_column``).
LE_COUNTED = MappingProxyType({"workloads": ("etime", "wtime")})
TABLE_COLUMNS = MappingProxyType({  # the contract's columns, in this order, then the rest
    "fingerprints": ("fingerprint", "fingerprint_id", "count", "errors", "unindexed",
                     "partially_unindexed", "paged", "etime_sum", "etime_max", "etime_p50",
                     "etime_p95", "etime_p99", "wtime_p50", "wtime_p95", "wtime_p99",
                     "optime_p50", "optime_p95", "optime_p99", "nentries_sum", "bind_dns",
                     "unindexed_bind_dns", "servers", "example", "example_base",
                     "example_scope", "first_seen", "last_seen"),
    "workloads": ("server", "workload", "bind_dn", "verb", "count", "errors", "unindexed",
                  "etime_sum", "etime_max", "etime_p50", "etime_p95", "etime_p99",
                  "nentries_sum"),
    "timeseries": ("server", "minute", "verb", "count", "errors", "etime_sum", "etime_p95"),
    "clients": ("server", "client_ip", "transport", "close_code", "connections", "operations",
                "errors", "unindexed", "etime_sum"),
    "restarts": ("server", "ts"),
    "binds": ("server", "dn", "err", "count"),
    "load": ("server", "start", "seconds", "covered_seconds", "operations", "rate"),
    "slowest": ("server", "ts", "conn", "op", "verb", "bind_dn", "client_ip", "base", "scope",
                "filter", "fingerprint", "dn", "err", "nentries", "etime", "wtime"),
    "indexes": ("server", "attribute", "index", "evidence", "searches", "unindexed",
                "partially_unindexed", "etime_sum", "stat_reads", "candidates_max",
                "allids_count", "indexed_searches", "fingerprints"),
})
# the slowest table keeps the core's number of client operations with the longest etime,
# in one order of their values (the core's), so that any partitioning gives the same rows
SLOWEST = "slowest"
SLOWEST_ROWS = _core.SLOWEST
# DNs and fingerprints in the aggregates are grouped by their comparison form (a DN's
# ``dn.canonical``, a fingerprint's lower case) and shown in their most frequent spelling:
# these tables' columns, each with the partial counting its spellings.
SPELLINGS = "dn_spellings"
FINGERPRINT_SPELLINGS = "fingerprint_spellings"
SPELLED = MappingProxyType({"workloads": ("bind_dn", SPELLINGS), "binds": ("dn", SPELLINGS),
                            "fingerprints": ("fingerprint", FINGERPRINT_SPELLINGS)})
TOP_LIST_LIMIT = _core.TOP_LIST_LIMIT  # distinct bind DNs kept per fingerprint


# The load table's period: per second for short windows, per minute up to a few days,
# then per hour (rows per server stay under ~5,000 whatever the window).
LOAD_PERIODS = ((30 * 60, 1), (4 * 86400, 60))


def load_period(first_ns: int | None, last_ns: int | None) -> int:
    """Seconds per period of the ``load`` table for a window.

    >>> load_period(0, 148 * 10**9), load_period(0, 86400 * 10**9), load_period(0, 10**15)
    (1, 60, 3600)
    """
    if first_ns is None or last_ns is None:
        return 60
    span = (last_ns - first_ns) / 1e9
    return next((period for longest, period in LOAD_PERIODS if span < longest), 3600)


def combine_tables(parts: list[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """Merge partial tables (associative: any grouping of the parts gives the same result)."""
    out: dict[str, pl.DataFrame] = {}
    names = {name for part in parts for name in part}
    for name in sorted(names):
        # each frame's columns in the first's order: a bucket joined in parts comes combined
        # (keys first), its neighbours in the core's order, and a concat goes by position
        frames = _aligned([p[name] for p in parts if name in p and p[name].height])
        table, _, latency = name.partition(":")
        keys = list(PARTIAL_KEYS[table])
        if not frames:
            out[name] = next(p[name] for p in parts if name in p)
        elif table == SLOWEST:
            out[name] = slowest_first(pl.concat(frames, how="vertical_relaxed"))
        elif _apart(frames, keys):
            # nothing to add up: the rows, in the column order a grouping gives
            order = [*keys, *(["bucket", "count"] if latency else
                              [c for c in frames[0].columns if c not in keys])]
            out[name] = pl.concat([f.select(order) for f in frames], how="vertical_relaxed")
        elif latency:
            out[name] = histogram.merge(frames, keys)
        else:
            out[name] = _combine_scalars(pl.concat(frames, how="vertical_relaxed"), keys)
    return out


def _aligned(frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    return [f if f.columns == frames[0].columns else f.select(frames[0].columns)
            for f in frames]


def _apart(frames: list[pl.DataFrame], keys: list[str]) -> bool:
    """Whether no two of ``frames`` can hold the same key: they are keyed by server first
    and no two hold a server (one server's buckets, combined first, become one frame), and
    no column is a set, which a grouping would sort and cut. Partials are combined per
    server first (``engine.run``), so the largest combines, near the root, are this: a
    grouping there held its input, its hash tables and its output at once, the largest
    process's peak on a fleet with many identities."""
    if keys[0] != "server" or any(c.endswith("_set") for c in frames[0].columns):
        return False
    seen: set[str] = set()
    for frame in frames:
        servers = set(frame.get_column("server").unique().to_list())
        if servers & seen:
            return False
        seen |= servers
    return True


def _beside(df: pl.DataFrame, per_key: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``df`` with ``per_key``'s columns beside each row of the same ``keys`` (null where it
    has none): a left join of the keys only, so the wide table is not copied (workloads on
    a fleet of many identities: hundreds of MB)."""
    found = (df.select(keys).with_row_index("_row")
             .join(per_key, on=keys, how="left", nulls_equal=True)
             .sort("_row").drop("_row", *keys))
    return df.hstack(found)


def _combine_scalars(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    aggs = []
    for column in df.columns:
        if column in keys:
            continue
        if column.endswith("_set"):
            limit = TOP_LIST_LIMIT if column.endswith("bind_dn_set") else None
            expr = pl.col(column).explode().drop_nulls().unique().sort()
            aggs.append((expr.head(limit) if limit else expr).alias(column))
        elif column.endswith("_max") or column == "last_seen":
            aggs.append(pl.col(column).max())
        elif column.startswith("example") or column == "first_seen":
            aggs.append(pl.col(column).min())
        elif column == "fingerprint_id":
            aggs.append(pl.col(column).first())
        else:
            aggs.append(pl.col(column).sum())
    return df.group_by(keys).agg(aggs)


def slowest_first(df: pl.DataFrame) -> pl.DataFrame:
    """The ``SLOWEST_ROWS`` operations of longest etime, in the core's order (etime, then
    the operation's identity)."""
    order = ["etime", *TABLE_KEYS[SLOWEST]]
    return df.sort(order, descending=[True] + [False] * (len(order) - 1),
                   nulls_last=True).head(SLOWEST_ROWS)


Ranges = dict[str, tuple[int, int]]  # server → (first, last) event time, UTC nanoseconds


def finalize_tables(combined: dict[str, pl.DataFrame], ranges: Ranges | None = None,
                    period_s: int = 60, *, release: bool = False,
                    spelling: Spelling | None = None) -> dict[str, pl.DataFrame]:
    """Percentiles from the merged histograms, histograms kept as list columns, DNs in their
    most frequent spelling, load rates over the seconds each period covers, rows sorted.

    ``ranges`` and ``period_s``: each server's window and the load table's period, for a
    run (a merge's load rows carry the seconds they cover).

    A table keyed by server first is finished a server at a time (``BY_SERVER``): its
    rows are sorted by server first anyway, and one server's steps hold a slice of what
    the whole table's would (workloads on a fleet of many identities: its percentiles,
    spellings and sort took a GB at once). With ``release`` (the caller keeps no other
    reference to the tables), each table leaves ``combined`` as it is finished, and each
    server's rows of it once that server's are: the partials go as the finished tables
    grow, instead of both being held at the end (a run's tasks, a merge). Such a table comes in one
    chunk per server: put together into one, it would be held twice. An eager group-by puts
    every column of its frame together first, so the readers of these tables group them
    lazily, which puts together the columns they read only.

    ``spelling``: the run's DN and fingerprint spellings (``spellings``), where the caller
    has them (a run computes them once, for these and for each group of servers'
    ``PER_SERVER`` tables), else from ``combined``."""
    spelling = spelling or spellings(combined)
    tables = {}
    for table in TABLE_KEYS:
        df = combined.get(table)
        if df is None:
            continue
        # A histogram's None: no value at all in the table (a server's slice of the others
        # may be empty: its rows get null histograms, as rows without a value do). The le
        # counts' None: an output written before them (no columns; empty: zeros).
        names = {key: f"{table}:{key}" for key in (
            *TABLE_LATENCIES[table], *(f"{lat}_le" for lat in LE_COUNTED.get(table, ())))}
        hists = {key: h if (h := combined.get(name)) is not None and (
            h.height or key.endswith("_le")) else None for key, name in names.items()}
        if release:
            for name in [table, *names.values()]:
                combined.pop(name, None)
        if table in BY_SERVER and df.height and not df["server"].has_nulls():
            rows = by_server(df)
            hist_rows = {k: None if h is None else (h.clear(), by_server(h))
                         for k, h in hists.items()}
            del df, hists
            pieces = []
            for server in sorted(rows):
                pieces.append(_finished(table, rows.pop(server), {
                    k: None if h is None else h[1].pop(server, h[0])
                    for k, h in hist_rows.items()}, spelling, ranges, period_s))
            tables[table] = pl.concat(pieces, how="vertical_relaxed", rechunk=False)
        else:
            tables[table] = _finished(table, df, hists, spelling, ranges, period_s)
    return tables


Spelling = dict[str, dict[str, str]]  # SPELLINGS, FINGERPRINT_SPELLINGS → form → spelling


def spellings(combined: dict[str, pl.DataFrame]) -> Spelling:
    """The most frequent spelling of each DN's and fingerprint's comparison form, from
    the combined partials' counts of them."""
    return {name: most_frequent(_strings(combined.get(name, pl.DataFrame())), key)
            for key, name in ((PARTIAL_KEYS[n][0], n) for n in (SPELLINGS, FINGERPRINT_SPELLINGS))}


def per_server(tables: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame],
                                                           dict[str, pl.DataFrame]]:
    """A combine's partials apart: those of the ``PER_SERVER`` tables (with their
    histograms), then the others."""
    mine = {n: t for n, t in tables.items() if n.partition(":")[0] in PER_SERVER}
    return mine, {n: t for n, t in tables.items() if n not in mine}


def _strings(df: pl.DataFrame) -> pl.DataFrame:
    """A partial's categorical keys (``from_core``) as the strings the tables hold."""
    return df.with_columns(pl.col(pl.Categorical).cast(pl.String))


def _cumulative_le(counted: pl.DataFrame, keys: list[str], latency: str) -> pl.DataFrame:
    """Per key, the ``<latency>_le_<bound>`` columns: the values at or below each bound,
    from the partial's counts per bound (``LE_COUNTED``)."""
    return counted.group_by(keys).agg(
        pl.col("count").filter(pl.col("bucket") <= j).sum().alias(le_column(le, latency))
        for j, le in enumerate(PROM_LE))


def by_server(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """A table's rows per server: slices where each server's rows are one run (a
    combine's, whose frames are a server's each), which share the table's memory and free
    it server by server once it is let go; else filtered copies."""
    runs = server_runs(df)
    if runs is None:
        return {s: df.filter(pl.col("server") == s) for s in df["server"].unique()}
    return dict(runs)


def server_runs(df: pl.DataFrame) -> list[tuple[Any, pl.DataFrame]] | None:
    """Each server's rows of ``df`` as one slice (no copy), in the order they come, where
    each server's rows are one run; None where a server's rows are apart."""
    runs = df.select(pl.col("server").rle()).unnest("server")
    if not runs["value"].is_unique().all():
        return None
    out, start = [], 0
    for length, server in zip(runs["len"], runs["value"], strict=True):
        out.append((server, df.slice(start, length)))
        start += length
    return out


# tables keyed by server first whose rows are finished each on its own (not load: a
# merge's coarsest period is the fleet's; not the ranked slowest and index advice)
BY_SERVER = frozenset({"workloads", "timeseries", "clients", "binds", "restarts"})
# of those, the tables a run finishes in its tasks, a group of servers at a time, once
# the group's buckets are combined (``engine.finish``): on a fleet of many identities,
# their partials held until the end were most of the largest process (not restarts, which
# come from the connections)
PER_SERVER = BY_SERVER - {"restarts"}
# the table a report reads from its file, lazily, the columns it groups only: its rows
# grow with the identities and the servers, and each holds the exact le counts
# (hundreds of MB on a fleet of many identities)
SCANNED = frozenset({"workloads"})


def _finished(table: str, df: pl.DataFrame, hists: dict[str, pl.DataFrame | None],
              spelling: dict[str, dict[str, str]], ranges: Ranges | None,
              period_s: int) -> pl.DataFrame:
    """One finished table (``finalize_tables``) from its combined partial and histograms."""
    keys_ = list(TABLE_KEYS[table])
    df = _strings(df)
    for latency in LE_COUNTED.get(table, ()):
        if (counted := hists.get(f"{latency}_le")) is not None:
            below = _cumulative_le(_strings(counted), keys_, latency)
            df = _beside(df, below, keys_).with_columns(pl.col(f"^{latency}_le_.*$").fill_null(0))
    for latency, hist in hists.items():
        if latency.endswith("_le"):
            continue
        if hist is None:  # no value at all: empty histograms
            qs = [f"{latency}_p{q}" for q in (50, 95, 99)]
            df = df.with_columns(
                *(pl.lit(None, pl.Float64).alias(q) for q in qs),
                pl.lit([], pl.List(pl.Int32)).alias(f"{latency}_hist_bucket"),
                pl.lit([], pl.List(pl.Int64)).alias(f"{latency}_hist_count"))
            continue
        df = _beside(df, histogram.summarize(_strings(hist), keys_, latency), keys_)
    for column in [c for c in df.columns if c.endswith("etime_sum_ns")]:
        df = df.with_columns((pl.col(column).cast(pl.Float64) / 1e9)
                             .alias(column.removesuffix("_ns")))
    if table == "fingerprints":
        df = df.with_columns(
            pl.col("bind_dn_set").list.len().cast(pl.Int64).alias("bind_dns"),
            *([pl.col("unindexed_bind_dn_set").list.len().cast(pl.Int64)
               .alias("unindexed_bind_dns")] if "unindexed_bind_dn_set" in df.columns
              else []),
            pl.col("server_set").list.join(",").alias("servers"),
        )
    if table == "timeseries":
        df = df.drop([c for c in df.columns if c in ("etime_p50", "etime_p99")])
    if table == "load":
        df = _load(df, ranges or {}, period_s)
    if table == INDEXES:
        df = _indexes(df, spelling[FINGERPRINT_SPELLINGS])
    if table in SPELLED and spelling[SPELLED[table][1]]:
        column, spellings = SPELLED[table]
        df = df.with_columns(pl.col(column).replace(spelling[spellings]))
    first = [c for c in TABLE_COLUMNS[table] if c in df.columns]
    df = df.select(first + [c for c in df.columns if c not in first])
    return slowest_first(df) if table == SLOWEST else df if table == INDEXES \
        else df.sort(keys_, nulls_last=True)


# Index advice (issue 33): per server, attribute and index type, the unindexed (notes=A)
# and partially unindexed (U) searches whose filters name it and their etime; where the
# server logged STAT lines, its reads in those searches and the largest candidate list one
# returned. A read that returned all IDs (ALLIDS: the index type is not configured, or the
# key is over nsslapd-idlistscanlimit) returned the backend's next entry id, more than any
# real list: the largest count any read of that server returned (the core's row with no
# attribute), ``allids_count``. Within ALLIDS_SHARE of it, the read counts as ALLIDS (the
# next id grows as entries are added during the window). A one-level or subtree search
# whose filter names one candidate alone and that ran without A or U proves its index
# exists (``indexed_searches``; rows with only that evidence are kept for merges).
INDEXES = "indexes"
ALLIDS_SHARE = 0.99
EVIDENCE = ("allids", "filter", "indexed")  # the advice's order: proof of a missing index first


def _indexes(df: pl.DataFrame, spelling: dict[str, str]) -> pl.DataFrame:
    """The finished index advice: each row's ``evidence`` (``allids``: its reads returned
    all IDs; ``indexed``: they returned shorter lists, or searches of it alone ran
    indexed, so the index exists and the cost is elsewhere; ``filter``: the filter's word
    only), ranked by evidence, then by the etime of its searches. The server rows with no
    attribute become ``allids_count``."""
    allids = df.group_by("server").agg(pl.col("candidates_max").max().alias("allids_count"))
    most, read = pl.col("candidates_max"), pl.col("stat_reads") > 0
    evidence = pl.when(read & (most > 0) & (most >= pl.col("allids_count") * ALLIDS_SHARE)) \
        .then(pl.lit("allids")).when(read | (pl.col("indexed_searches") > 0)) \
        .then(pl.lit("indexed")).otherwise(pl.lit("filter"))
    df = df.filter(pl.col("attribute").is_not_null()).join(
        allids, on="server", how="left", nulls_equal=True).with_columns(
        evidence.alias("evidence"),
        pl.col("fingerprint_set").list.eval(pl.element().replace(spelling))
        .alias("fingerprints")).drop("fingerprint_set")
    rank = pl.col("evidence").replace_strict(EVIDENCE, range(len(EVIDENCE)))
    return df.sort(rank, pl.col("etime_sum_ns"), "server", "attribute", "index",
                   descending=[False, True, False, False, False], nulls_last=True)


def _load(df: pl.DataFrame, ranges: Ranges, period_s: int) -> pl.DataFrame:
    """Operations per period → with ``covered_seconds`` (the part of the period inside the
    server's window: the first and last periods are partial) and ``rate`` (ops/s)."""
    if "covered_seconds" not in df.columns:  # a run's periods: every one in its window
        df = _periods(df, ranges, period_s)
    period = int(df["seconds"].max() or period_s)  # merged runs: the coarsest period
    df = df.group_by("server", pl.col("start").dt.truncate(f"{period}s")).agg(
        pl.col("operations").sum(), pl.col("covered_seconds").sum())
    # the rate over the seconds covered (none for a period that covers no time: a window
    # of one instant); peaks skip the periods covered for less than half their length
    # (views.PEAK_MIN_COVER), so a sliver's rate cannot become the run's peak
    covered = pl.col("covered_seconds")
    return df.with_columns(
        pl.lit(period, pl.Int64).alias("seconds"), covered.clip(upper_bound=float(period)),
    ).with_columns(pl.when(covered > 0).then(pl.col("operations") / covered).alias("rate"))


def _periods(counts: pl.DataFrame, ranges: Ranges, period_s: int) -> pl.DataFrame:
    utc = pl.Datetime("ns", "UTC")
    step = period_s * 1_000_000_000
    frames = []
    for server, (first, last) in sorted(ranges.items()):
        start = first - first % step
        frames.append(pl.DataFrame({
            "server": server,
            "start": pl.Series(range(start, last + 1, step), dtype=pl.Int64).cast(utc),
        }).with_columns(
            ((pl.min_horizontal(pl.col("start").cast(pl.Int64) + step, pl.lit(last))
              - pl.max_horizontal(pl.col("start").cast(pl.Int64), pl.lit(first)))
             / 1e9).alias("covered_seconds")))
    if not frames:
        return counts.with_columns(pl.lit(0.0).alias("covered_seconds"))
    periods = pl.concat(frames)
    counts = counts.select("server", pl.col("start").cast(utc), "operations")
    return periods.join(counts, on=["server", "start"], how="left").with_columns(
        pl.col("operations").fill_null(0), pl.lit(period_s, pl.Int64).alias("seconds"))


def restarts(connections: pl.LazyFrame) -> pl.DataFrame:
    """Server starts seen, one row each (server, ts): a ``conn=1`` open line, or a drop in
    the connection counter without one (counted once when it drops to 1). The first
    connection of the window counts only if it is ``conn=1``."""
    opened = connections.select("server", "conn", "opened").filter(
        pl.col("opened").is_not_null()).sort("server", "opened", "conn")
    previous = pl.col("conn").shift(1).over("server")
    return opened.filter((pl.col("conn") == 1) | (pl.col("conn") < previous)).select(
        "server", pl.col("opened").alias("ts"), pl.lit(1, pl.Int64).alias("count")).collect()


def fleet_peak_connections(connections: pl.LazyFrame) -> int:
    """The most connections open at once on the whole fleet: every server's opens and
    closes in one sweep (the largest sum at one instant, not the largest server's peak)."""
    return peak_level(connection_events(connections).sort("ts", "d").collect())


def peak_level(events: pl.DataFrame, level: int = 0) -> int:
    """The most connections open at once over ``events`` (``connection_events``, in time
    order), ``level`` of them open before the first; 0 without any."""
    return max(level, int((events["d"].cast(pl.Int64).cum_sum() + level).max() or 0))


def connection_events(connections: pl.LazyFrame) -> pl.LazyFrame:
    """Each connection's open and close as rows (server, ts, d), d +1 or -1, counted as
    logconv counts concurrent connections: a restart closes what was still open; in
    (ts, d) order, a close comes before an open at the same time. A connection opened before
    the window is not counted (its ``opened`` is null); one neither closed nor cut by a
    restart stays open, or closes at its ``end`` where the connections have that column
    (a merged run's end)."""
    names = connections.collect_schema().names()
    end = ["end"] if "end" in names else []
    opened = connections.select("server", "conn", "opened", "closed", *end).filter(
        pl.col("opened").is_not_null()).sort("opened")
    starts = opened.filter(pl.col("conn") == 1).select("server", pl.col("opened")
                                                       .alias("restart")).sort("restart")
    ends = opened.join_asof(starts, left_on="opened", right_on="restart", by="server",
                            strategy="forward", allow_exact_matches=False,
                            check_sortedness=False)  # both sorted by time, so per server too
    return pl.concat([
        ends.select("server", pl.col("opened").alias("ts"), pl.lit(1, pl.Int8).alias("d")),
        ends.select("server", pl.coalesce("closed", "restart", *end).alias("ts"),
                    pl.lit(-1, pl.Int8).alias("d")).filter(pl.col("ts").is_not_null()),
    ])


def tables_to_partials(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Finished tables (from an earlier run) back into combinable partials, for ``merge``."""
    out: dict[str, pl.DataFrame] = {}
    spellings: dict[str, list[pl.DataFrame]] = {}
    for table, keys in TABLE_KEYS.items():
        if table not in tables:
            continue
        df = tables[table]
        keys_ = list(keys)
        if table in SPELLED:  # keyed by the comparison form again, as a run's partials
            column, name = SPELLED[table]
            form = canonical_column if name == SPELLINGS else _fingerprint_forms
            rows = df.filter(pl.col(column).is_not_null())
            spellings.setdefault(name, []).append(pl.DataFrame({
                PARTIAL_KEYS[name][0]: form(rows[column]), "spelling": rows[column],
                "count": rows["count"]}))
            df = df.with_columns(form(df[column]).alias(column))
        for latency in TABLE_LATENCIES[table]:
            if f"{latency}_hist_bucket" in df.columns:
                out[f"{table}:{latency}"] = histogram.from_lists(df, keys_, latency)
        for latency in LE_COUNTED.get(table, ()):
            if le_column(PROM_LE[0], latency) in df.columns:
                out[f"{table}:{latency}_le"] = _le_counts(df, keys_, latency)
        drop = [c for c in df.columns if "_hist_" in c or "_le_" in c or any(
            c == f"{lat}_p{q}" for lat in LATENCIES for q in (50, 95, 99))]
        drop += [c for c in ("bind_dns", "unindexed_bind_dns", "servers")
                 if c in df.columns and table == "fingerprints"]
        # recomputed from the nanosecond sums, or from the counts
        drop += [c for c in df.columns if c.endswith("etime_sum") or c == "rate"]
        out[table] = _indexes_partial(df) if table == INDEXES else df.drop(drop)
    for name, frames in spellings.items():  # each run's spelling, weighted by its count
        out[name] = pl.concat(frames)
    return out


def _le_counts(df: pl.DataFrame, keys: list[str], latency: str) -> pl.DataFrame:
    """``_cumulative_le``'s inverse: the counts per bound (``LE_COUNTED``) of a finished
    table's cumulative ``<latency>_le_<bound>`` columns, where not zero."""
    columns = [le_column(le, latency) for le in PROM_LE]
    return df.select(*keys, *(
        (pl.col(c) - (pl.col(columns[j - 1]) if j else 0)).alias(str(j))
        for j, c in enumerate(columns))).unpivot(
        index=keys, variable_name="bucket", value_name="count").with_columns(
        pl.col("bucket").cast(pl.Int32)).filter(pl.col("count") != 0)


def _indexes_partial(df: pl.DataFrame) -> pl.DataFrame:
    """Finished index advice → the core's partial: fingerprints by their comparison form,
    and each server's ``allids_count`` as its row with no attribute."""
    rows = df.select(
        "server", "attribute", "index", "searches", "unindexed", "partially_unindexed",
        "etime_sum_ns", "stat_reads", "candidates_max", "indexed_searches",
        pl.col("fingerprints").list.eval(pl.element().str.to_lowercase())
        .alias("fingerprint_set"))
    servers = df.group_by("server").agg(pl.col("allids_count").max()).filter(
        pl.col("allids_count").is_not_null())
    return pl.concat([rows, servers.select(
        "server", pl.lit(None, pl.String).alias("attribute"),
        pl.lit(None, pl.String).alias("index"),
        *(pl.lit(0, pl.Int64).alias(c) for c in ("searches", "unindexed",
                                                 "partially_unindexed")),
        pl.lit(0).cast(rows.schema["etime_sum_ns"]).alias("etime_sum_ns"),
        pl.lit(0, pl.Int64).alias("stat_reads"),
        pl.col("allids_count").cast(pl.Int64).alias("candidates_max"),
        pl.lit(0, pl.Int64).alias("indexed_searches"),
        pl.lit([], pl.List(pl.String)).alias("fingerprint_set"))])


def _fingerprint_forms(values: pl.Series) -> pl.Series:
    """A fingerprint's comparison form, as the core's ``filter::fingerprint_form``."""
    return values.str.to_lowercase()
