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
from typing import Any

import polars as pl

from .schema import REQUEST_VERBS, SUMMARY_VERBS

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


def chunk_partial(server: str, counts: dict[str, int], events: pl.DataFrame) -> Counts:
    """What the parse stage knows: line accounting and the time range."""
    part: Counts = {"lines": dict(counts)}
    if events.height:
        part["time_range"] = {"first": int(events["ts"].min()), "last": int(events["ts"].max())}
    return {server: part}


def bucket_partial(operations: pl.DataFrame, connections: pl.DataFrame) -> Counts:
    """What one bucket knows: operations, results, searches, unmatched, connections."""
    out: Counts = {}
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
    paired = pl.col("verb").is_in([*REQUEST_VERBS, "UNPROCESSED"])
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
