"""Within one bucket: sessions, request↔RESULT join, bind identity, context.

The join is compiled (``rust/core/src/join.rs``, through ``pipeline._core``): it reads
the key columns of the bucket's events and returns, for every operation, the rows of
its request, RESULT or lone line (ABANDON, UNBIND), its verb, the identity in force,
whether it was abandoned, and the row of its connection; and the connections table.
Its module documentation states the rules (sessions at each ``connection from`` line,
pairing by (session, op ids) in the server's writing order, identity by op numbers).
This module gathers the other columns by those rows and adds the fingerprints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from . import _core
from .fingerprint import fingerprint_id, fingerprints
from .schema import (
    EVENT_CLASSES,
    REQUEST_FIELDS,
    RESULT_FIELDS,
    class_schema,
    conform,
    empty_class,
    split_classes,
)


@dataclass(frozen=True)
class Enriched:
    """A bucket's operations and connections (see ARCHITECTURE.md §3)."""

    operations: pl.DataFrame
    connections: pl.DataFrame


def enrich(events: pl.DataFrame, *, sort_operands: bool = False) -> Enriched:
    """Join, sessionise and enrich the events of one bucket.

    Args:
        events: parsed events with absolute line numbers (``schema.EVENT_SCHEMA``).
        sort_operands: passed to the fingerprint.
    """
    return enrich_classes(split_classes(events), sort_operands=sort_operands)


def enrich_classes(classes: Mapping[str, pl.DataFrame], *, sort_operands: bool = False,
                   steps: Any = None) -> Enriched:
    """``enrich`` for events already split as ``schema.split_classes`` does (the shuffle's
    layout); a missing class has no events. ``steps``, if given, times the join and the
    fingerprints (``stages.Steps``)."""
    tables = {name: conform(classes[name], class_schema(name)).rechunk() if name in classes
              else empty_class(name) for name in EVENT_CLASSES}
    rows, connections = (pl.DataFrame(t) for t in _core.join_bucket(
        tables["request"], tables["result"], tables["lone"], tables["other"]))
    ops = _gather(tables, rows, connections)
    if steps:
        steps.lap("join")
    ops = _with_fingerprints(ops, sort_operands)
    enriched = Enriched(operations=_operation_columns(ops),
                        connections=_connection_columns(connections))
    if steps:
        steps.lap("fingerprint")
    return enriched


LINE_IDS = ("server", "conn", "op", "op_internal", "op_nested", "internal")


def _gather(tables: dict[str, pl.DataFrame], rows: pl.DataFrame,
            connections: pl.DataFrame) -> pl.DataFrame:
    """Each operation's columns from the rows of its lines and of its connection."""
    def side(table: str, index: str, columns: dict[str, str]) -> pl.DataFrame:
        at = rows[index]
        return tables[table].select(pl.col(c).gather(at).alias(a) for c, a in columns.items())

    same = {c: c for c in (*LINE_IDS, "ts", "file", "line")}
    request = side("request", "request", {**same, **{c: c for c in REQUEST_FIELDS}})
    lone = side("lone", "lone", {**{c: f"l_{c}" for c in same},
                                 **{c: f"l_{c}" for c in ("targetop", "msgid", "nentries",
                                                          "etime")}})
    result = side("result", "result", {
        **{c: f"r_{c}" for c in LINE_IDS}, "ts": "result_ts", "file": "result_file",
        "line": "result_line", "dn": "result_dn", "text": "result_text",
        **{c: c for c in RESULT_FIELDS}})
    duration = (pl.col("closed") - pl.col("opened")) / 1e9
    context = connections.select(
        pl.col(c).gather(rows["connection"]) for c in ("client_ip", "tls", "ldapi", "ssl",
                                                       "starttls")).with_columns(
        connections.select(duration.gather(rows["connection"]).alias("conn_duration"),
                           pl.col("opened").gather(rows["connection"]).alias("session")))
    ops = pl.concat([rows.select("verb", "bind_dn", "abandoned"), request, lone, result, context],
                    how="horizontal")
    first = lambda c, *sides: pl.coalesce(c, *(f"{p}{c}" for p in sides)).alias(c)  # noqa: E731
    return ops.with_columns(
        *(first(c, "l_", "r_") for c in LINE_IDS),
        *(first(c, "l_") for c in ("ts", "file", "line", "targetop", "msgid")),
        pl.coalesce("nentries", "l_nentries").alias("nentries"),
        pl.coalesce("etime", "l_etime").alias("etime"),
    ).drop(c for c in ops.columns if c.startswith(("l_", "r_")))


def _with_fingerprints(ops: pl.DataFrame, sort_operands: bool) -> pl.DataFrame:
    # Each distinct filter is fingerprinted once (in one call into the compiled core) and
    # mapped back by a join; a search without a filter is <unparsed:missing>.
    is_search = pl.col("verb") == "SRCH"
    distinct = ops.filter(is_search).select(pl.col("filter").unique())["filter"]
    prints = fingerprints(distinct.to_list(), sort_operands)
    ids = {p: fingerprint_id(p) for p in set(prints)}
    lookup = pl.DataFrame({"filter": distinct, "print": prints,
                           "print_id": [ids[p] for p in prints]},
                          schema={"filter": pl.String, "print": pl.String, "print_id": pl.String})
    ops = ops.join(lookup, on="filter", how="left", nulls_equal=True)
    notes = pl.col("notes").fill_null("")
    return ops.with_columns(
        pl.when(is_search).then(pl.col("print")).alias("fingerprint"),
        pl.when(is_search).then(pl.col("print_id")).alias("fingerprint_id"),
        notes.str.contains("A", literal=True).alias("unindexed"),
        notes.str.contains("U", literal=True).alias("partially_unindexed"),
        notes.str.contains("P", literal=True).alias("paged"),
    ).drop("print", "print_id")


OPERATION_COLUMNS = (
    "server", "conn", "session", "op", "verb", "ts", "result_ts", "bind_dn", "client_ip",
    "base", "scope", "filter", "fingerprint", "fingerprint_id", "attrs", "dn", "err",
    "nentries", "wqtime", "wtime", "optime", "writetime", "etime", "notes", "details",
    "unindexed", "partially_unindexed", "paged", "workload", "internal", "op_internal",
    "op_nested", "tag", "result_text", "result_dn", "authzid", "method", "mech", "version",
    "newrdn", "newsuperior", "attr", "oid", "name", "targetop", "msgid", "abandoned",
    "options", "csn", "pr_idx", "pr_cookie", "sid", "tls", "ldapi", "ssl", "starttls",
    "conn_duration", "truncated", "file", "line", "result_file", "result_line",
)


def _operation_columns(ops: pl.DataFrame) -> pl.DataFrame:
    # the join gives the order: server, conn, session, ts, then the lines' positions
    utc = pl.Datetime("ns", "UTC")
    return ops.with_columns(
        pl.col("session").cast(utc),
        pl.col("ts").cast(utc), pl.col("result_ts").cast(utc),
        pl.lit(None, pl.String).alias("workload"),
    ).select(OPERATION_COLUMNS)


CONNECTION_COLUMNS = ("server", "session", "conn", "client_ip", "server_ip", "opened", "closed",
                      "close_code", "tls", "ldapi", "ssl", "starttls", "fd", "binds",
                      "operations", "first_seen", "last_seen")


def _connection_columns(conns: pl.DataFrame) -> pl.DataFrame:
    # ordered by server, conn, opened by the join
    utc = pl.Datetime("ns", "UTC")
    return conns.with_columns(
        pl.col("opened").cast(utc).alias("session"),
        *(pl.col(c).cast(utc) for c in ("opened", "closed", "first_seen", "last_seen")),
    ).select(CONNECTION_COLUMNS)
