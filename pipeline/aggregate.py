"""Run summary: partial counts per bucket, an associative combine, finalize.

A partial is a plain nested dict of integers per server, so partials from
any number of buckets (or chunks) merge by adding, in any grouping.

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

from . import histogram
from .schema import PAIRED_VERBS, SUMMARY_VERBS

Counts = dict[str, Any]
LINE_KEYS = ("total", "parsed", "rejected", "header", "blank")


def combine(a: Counts, b: Counts) -> Counts:
    """Add two nested count dicts; ``first``/``last`` keep the min/max."""
    out: Counts = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = combine(out[key], value)
        elif key == "first":
            out[key] = min(out[key], value)
        elif key == "last":
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


def chunk_partial(server: str, counts: dict[str, int], first_ts: int | None,
                  last_ts: int | None) -> Counts:
    """What the parse stage knows: line accounting and the time range."""
    part: Counts = {"lines": dict(counts)}
    if first_ts is not None and last_ts is not None:
        part["time_range"] = {"first": int(first_ts), "last": int(last_ts)}
    return {server: part}


def bucket_partial(operations: pl.DataFrame, connections: pl.DataFrame) -> Counts:
    """What one bucket knows: operations, results, searches, unmatched, connections."""
    out: Counts = {}
    # narrow first: every filter below copies the columns it keeps
    operations = operations.select("server", "line", "result_line", "internal", "verb", "err",
                                   "unindexed", "partially_unindexed", "paged")
    for (server,), ops in operations.partition_by("server", as_dict=True).items():
        out[server] = _server_partial(ops)
    for (server,), conns in connections.partition_by("server", as_dict=True).items():
        opened = int(conns["opened"].is_not_null().sum())
        out.setdefault(server, {})["connections"] = opened
    return out


def _server_partial(ops: pl.DataFrame) -> Counts:
    requested = ops.filter(pl.col("line").is_not_null())
    client = requested.filter(~pl.col("internal"))
    by_verb = dict(client.group_by("verb").len().iter_rows())
    results = ops.filter(pl.col("result_line").is_not_null())
    by_err = {str(k): v for k, v in results.group_by("err").len().iter_rows()}
    searches = results.filter(pl.col("verb") == "SRCH")
    paired = pl.col("verb").is_in(PAIRED_VERBS)
    return {
        "operations": {"total": client.height,
                       **{v: int(by_verb.get(v, 0)) for v in SUMMARY_VERBS}},
        "internal_operations": requested.height - client.height,
        "results": {"total": results.height, "by_err": by_err},
        "searches": {
            "unindexed": int(searches["unindexed"].sum()),
            "partially_unindexed": int(searches["partially_unindexed"].sum()),
            "paged": int(searches["paged"].sum()),
        },
        "unmatched": {
            "requests": requested.filter(paired & pl.col("result_line").is_null()).height,
            "results": results.filter(pl.col("line").is_null()).height,
        },
    }


def finalize(per_server: Counts, restarts: dict[str, int]) -> Counts:
    """The ``summary.json`` document: totals first, then the same keys per server."""
    servers = {name: _complete(part, restarts.get(name, 0))
               for name, part in sorted(per_server.items())}
    total = _complete(combine_all(list(per_server.values())), sum(restarts.values()))
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
        "restarts": restarts,
        "operations": {"total": int(ops.get("total", 0)),
                       **{v: int(ops.get(v, 0)) for v in SUMMARY_VERBS}},
        "internal_operations": int(part.get("internal_operations", 0)),
        "results": {"total": int(results.get("total", 0)),
                    "by_err": {k: int(by_err[k]) for k in sorted(by_err, key=_err_order)}},
        "searches": {k: int(searches.get(k, 0))
                     for k in ("unindexed", "partially_unindexed", "paged")},
        "unmatched": {k: int(unmatched.get(k, 0)) for k in ("requests", "results")},
        "time_range": {"first": _iso(time_range.get("first")),
                       "last": _iso(time_range.get("last"))},
    }


def _err_order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.lstrip("-").isdigit() else (1 << 30, key)


def _iso(ns: int | None) -> str | None:
    """UTC nanoseconds → ``2026-11-26T16:20:09.123456789Z``.

    >>> _iso(1_795_710_079_008_343_411)
    '2026-11-26T16:21:19.008343411Z'
    """
    if ns is None:
        return None
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


# ---- aggregate tables: fingerprints, workloads, timeseries (ARCHITECTURE.md §3) ----

OK_ERRORS = (0, 5, 6, 14)  # success, compare false/true, SASL bind in progress: not failures
LATENCIES = ("etime", "wtime", "optime")
TABLE_KEYS = MappingProxyType({
    "fingerprints": ("fingerprint",),
    "workloads": ("server", "workload", "bind_dn", "verb"),
    "timeseries": ("server", "minute", "verb"),
    "clients": ("server", "client_ip", "transport", "close_code"),   # connections, counted
    "restarts": ("server", "ts"),                                      # server starts seen
})
# wtime and optime only per fingerprint: per bind DN they would triple the largest
# partials (histogram rows grow with distinct keys x buckets) for little insight.
TABLE_LATENCIES = MappingProxyType({
    "fingerprints": LATENCIES, "workloads": ("etime",), "timeseries": ("etime",),
    "clients": (), "restarts": (),
})
TABLE_COLUMNS = MappingProxyType({  # the contract's columns, in this order, then the rest
    "fingerprints": ("fingerprint", "fingerprint_id", "count", "errors", "unindexed",
                     "partially_unindexed", "paged", "etime_sum", "etime_max", "etime_p50",
                     "etime_p95", "etime_p99", "wtime_p50", "wtime_p95", "wtime_p99",
                     "optime_p50", "optime_p95", "optime_p99", "nentries_sum", "bind_dns",
                     "servers", "example", "example_base", "example_scope", "first_seen",
                     "last_seen"),
    "workloads": ("server", "workload", "bind_dn", "verb", "count", "errors", "unindexed",
                  "etime_sum", "etime_max", "etime_p50", "etime_p95", "etime_p99",
                  "nentries_sum"),
    "timeseries": ("server", "minute", "verb", "count", "errors", "etime_sum", "etime_p95"),
    "clients": ("server", "client_ip", "transport", "close_code", "connections", "operations"),
    "restarts": ("server", "ts"),
})
TOP_LIST_LIMIT = 10_000  # distinct bind DNs kept per fingerprint (the count is exact below it)


def table_partials(ops: pl.DataFrame, connections: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """One bucket's partial aggregates: scalar rows, and histogram rows per latency.

    Keys are strings ``"<table>"`` and ``"<table>:<latency>"``.
    """
    transport = (pl.when(pl.col("ldapi")).then(pl.lit("LDAPI"))
                 .when(pl.col("ssl")).then(pl.lit("LDAPS"))
                 .when(pl.col("starttls")).then(pl.lit("StartTLS"))
                 .otherwise(pl.lit("LDAP")))
    opened = connections.filter(pl.col("opened").is_not_null())
    # narrow first: the filters below copy the columns they keep
    ops = ops.select("server", "workload", "bind_dn", "verb", "internal", "ts", "result_ts",
                     "fingerprint", "fingerprint_id", "err", "unindexed", "partially_unindexed",
                     "paged", "nentries", "filter", "base", "scope", *LATENCIES)
    failed = pl.col("err").is_not_null() & ~pl.col("err").is_in(OK_ERRORS)
    notes = {"unindexed": pl.col("unindexed").sum(),
             "nentries_sum": pl.col("nentries").sum().alias("nentries_sum")}
    searches = ops.filter(pl.col("verb") == "SRCH").with_columns(
        pl.coalesce("ts", "result_ts").alias("seen"))
    client = ops.filter(~pl.col("internal"))
    minute = pl.coalesce("ts", "result_ts").dt.truncate("1m").alias("minute")
    series = client.with_columns(minute)
    out = {
        "fingerprints": searches.group_by("fingerprint").agg(
            pl.col("fingerprint_id").first(),
            pl.len().cast(pl.Int64).alias("count"),
            failed.sum().cast(pl.Int64).alias("errors"),
            notes["unindexed"].cast(pl.Int64),
            pl.col("partially_unindexed").sum().cast(pl.Int64),
            pl.col("paged").sum().cast(pl.Int64),
            _ns_sum("etime"),
            pl.col("etime").max().alias("etime_max"),
            notes["nentries_sum"].cast(pl.Int64),
            pl.col("bind_dn").drop_nulls().unique().sort().head(TOP_LIST_LIMIT)
            .alias("bind_dn_set"),
            pl.col("server").unique().sort().alias("server_set"),
            pl.col("filter").drop_nulls().min().alias("example"),
            pl.col("base").drop_nulls().min().alias("example_base"),
            pl.col("scope").drop_nulls().min().alias("example_scope"),
            pl.col("seen").min().alias("first_seen"),
            pl.col("seen").max().alias("last_seen"),
        ),
        "workloads": client.group_by(*TABLE_KEYS["workloads"]).agg(
            pl.len().cast(pl.Int64).alias("count"),
            failed.sum().cast(pl.Int64).alias("errors"),
            notes["unindexed"].cast(pl.Int64),
            _ns_sum("etime"),
            pl.col("etime").max().alias("etime_max"),
            notes["nentries_sum"].cast(pl.Int64),
        ),
        "timeseries": series.group_by(*TABLE_KEYS["timeseries"]).agg(
            pl.len().cast(pl.Int64).alias("count"),
            failed.sum().cast(pl.Int64).alias("errors"),
            _ns_sum("etime"),
        ),
        "clients": connections.with_columns(transport.alias("transport")).group_by(
            *TABLE_KEYS["clients"]).agg(
            pl.col("opened").is_not_null().sum().cast(pl.Int64).alias("connections"),
            pl.col("operations").sum().cast(pl.Int64)),
        "restarts": opened.filter(pl.col("conn") == 1).select(
            "server", pl.col("opened").alias("ts"), pl.lit(1, pl.Int64).alias("count")),
    }
    sources = {"fingerprints": searches, "workloads": client, "timeseries": series}
    for table, keys in TABLE_KEYS.items():
        for latency in TABLE_LATENCIES[table]:
            hist = histogram.bucketize(sources[table], list(keys), latency)
            # categorical keys: these rows are the bulk of what combine tasks hold
            out[f"{table}:{latency}"] = hist.with_columns(pl.col(pl.String).cast(pl.Categorical))
    return out


NS_SUM = pl.Decimal(38, 0)  # exact, and every Parquet reader reads it (Int128 is not)


def _ns_sum(column: str) -> pl.Expr:
    # Sums of integer nanoseconds are exact, so any partitioning gives identical totals;
    # 128 bits, so no fleet's total overflows (each value is at most 1e9 s, ~2^60 ns).
    return (pl.col(column) * 1e9).round().cast(pl.Int128).sum().cast(NS_SUM) \
        .alias(f"{column}_sum_ns")


def combine_tables(parts: list[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """Merge partial tables (associative: any grouping of the parts gives the same result)."""
    out: dict[str, pl.DataFrame] = {}
    names = {name for part in parts for name in part}
    for name in sorted(names):
        frames = [p[name] for p in parts if name in p and p[name].height]
        table, _, latency = name.partition(":")
        keys = list(TABLE_KEYS[table])
        if not frames:
            out[name] = next(p[name] for p in parts if name in p)
        elif latency:
            out[name] = histogram.merge(frames, keys)
        else:
            out[name] = _combine_scalars(pl.concat(frames, how="vertical_relaxed"), keys)
    return out


def _combine_scalars(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    aggs = []
    for column in df.columns:
        if column in keys:
            continue
        if column.endswith("_set"):
            limit = TOP_LIST_LIMIT if column == "bind_dn_set" else None
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


def finalize_tables(combined: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Percentiles from the merged histograms, histograms kept as list columns, rows sorted."""
    tables = {}
    for table, keys in TABLE_KEYS.items():
        df = combined.get(table)
        if df is None:
            continue
        keys_ = list(keys)
        for latency in TABLE_LATENCIES[table]:
            hist = combined.get(f"{table}:{latency}")
            if hist is not None:
                hist = hist.with_columns(pl.col(pl.Categorical).cast(pl.String))
            if hist is None or not hist.height:  # no value at all: empty histograms
                qs = [f"{latency}_p{q}" for q in (50, 95, 99)]
                df = df.with_columns(
                    *(pl.lit(None, pl.Float64).alias(q) for q in qs),
                    pl.lit([], pl.List(pl.Int32)).alias(f"{latency}_hist_bucket"),
                    pl.lit([], pl.List(pl.Int64)).alias(f"{latency}_hist_count"))
                continue
            df = df.join(histogram.summarize(hist, keys_, latency), on=keys_, how="left",
                         nulls_equal=True)
        if "etime_sum_ns" in df.columns:
            df = df.with_columns((pl.col("etime_sum_ns").cast(pl.Float64) / 1e9)
                                 .alias("etime_sum"))
        if table == "fingerprints":
            df = df.with_columns(
                pl.col("bind_dn_set").list.len().cast(pl.Int64).alias("bind_dns"),
                pl.col("server_set").list.join(",").alias("servers"),
            )
        if table == "timeseries":
            df = df.drop([c for c in df.columns if c in ("etime_p50", "etime_p99")])
        first = [c for c in TABLE_COLUMNS[table] if c in df.columns]
        df = df.select(first + [c for c in df.columns if c not in first])
        tables[table] = df.sort(keys_, nulls_last=True)
    return tables


def tables_to_partials(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Finished tables (from an earlier run) back into combinable partials, for ``merge``."""
    out: dict[str, pl.DataFrame] = {}
    for table, keys in TABLE_KEYS.items():
        if table not in tables:
            continue
        df = tables[table]
        keys_ = list(keys)
        for latency in TABLE_LATENCIES[table]:
            if f"{latency}_hist_bucket" in df.columns:
                out[f"{table}:{latency}"] = histogram.from_lists(df, keys_, latency)
        drop = [c for c in df.columns if "_hist_" in c or any(
            c == f"{lat}_p{q}" for lat in LATENCIES for q in (50, 95, 99))]
        drop += [c for c in ("bind_dns", "servers") if c in df.columns and table == "fingerprints"]
        drop += [c for c in ("etime_sum",) if c in df.columns]  # recomputed from etime_sum_ns
        out[table] = df.drop(drop)
    return out
