"""Within one bucket: sessions, request↔RESULT join, bind identity, context.

Every connection in a bucket is whole (the shuffle put all its lines here),
so everything below is local. Order is the server's own writing order,
``pos`` = (file's rotation order, line number), not the timestamp: lines of
different threads can be a few microseconds out of time order (§1 of the
format reference), but a file never reorders one connection's lines.

- A *session* starts at each ``connection from`` line, so a connection
  number reused after a restart is a new connection. Lines before the first
  open line in the window form a session whose start is unknown (null).
- Each request pairs with the RESULT of the same (session, op); internal
  operations, whose ids repeat, pair with the next RESULT of the same ids.
- The bound identity changes at AUTOBIND, at a TLS ``client bound as`` line
  and at each BIND RESULT: success binds the RESULT's ``dn`` (else the
  request's), failure makes the connection anonymous (RFC 4511 §4.2.1). It
  applies to the operations numbered after the BIND: a client may not send
  anything while a bind is in progress, but the server may log the next
  request before the BIND's RESULT line.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .fingerprint import SERVER_CUT, fingerprint, fingerprint_id
from .schema import (
    LONE_VERBS,
    PAIRED_VERBS,
    REQUEST_FIELDS,
    RESULT_FIELDS,
    split_classes,
)

POS_FILE_SHIFT = 1 << 40   # pos = file_seq * 2**40 + line: one order across rotated files
STARTTLS_OID = "1.3.6.1.4.1.1466.20037"
TAG_VERBS = {97: "BIND", 101: "SRCH", 103: "MOD", 105: "ADD", 107: "DEL", 109: "MODRDN",
             111: "CMP", 120: "EXT"}
UNKNOWN_ID = -1  # stands in for null in join keys

SESSION_KEY = ("server", "conn_key", "session_key")
OP_KEY = (*SESSION_KEY, "internal", "op_key", "op_internal_key", "op_nested_key", "rank")


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


def enrich_classes(classes: dict[str, pl.DataFrame], *,
                   sort_operands: bool = False) -> Enriched:
    """``enrich`` for events already split as ``schema.split_classes`` does (the shuffle's
    layout)."""
    # one copy into contiguous columns: filters and joins over many small chunks (one per
    # kind per parsed piece) cost several times more than this copy
    classes = _with_sessions({name: df.rechunk() for name, df in classes.items()})
    connections = _connections(classes)
    ops = _join_operations(classes)
    ops = _with_identity(ops, classes["other"])
    ops = _with_context(ops, connections)
    ops = _with_fingerprints(ops, sort_operands)
    return Enriched(operations=_operation_columns(ops),
                    connections=_connection_columns(connections))


def _with_sessions(classes: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    # Sessions need every line of a connection, so they are found on a narrow table
    # of all classes, then handed back to each class (rows keep their order).
    keys = pl.concat([df.select("server", "conn", "kind", "ts", "file_seq", "line")
                      for df in classes.values()])
    keys = keys.with_columns(
        (pl.col("file_seq").cast(pl.Int64) * POS_FILE_SHIFT + pl.col("line")).alias("pos"),
        pl.col("conn").fill_null(UNKNOWN_ID).alias("conn_key"),
    )
    connect = pl.col("kind") == "CONNECT"
    # A session is named by the position of its open line (unique, unlike timestamps);
    # ordered within each connection only: no sort of the whole table.
    keys = keys.select(
        "pos", "conn_key",
        pl.when(connect).then(pl.col("pos")).forward_fill()
        .over("server", "conn_key", order_by="pos").fill_null(0).alias("session_key"),
        pl.when(connect).then(pl.col("ts")).forward_fill()
        .over("server", "conn_key", order_by="pos").alias("session_start"),
    )
    out, start = {}, 0
    for name, df in classes.items():
        out[name] = df.hstack(keys.slice(start, df.height))
        start += df.height
    return out


CONNECTION_SOURCES = ("kind", "conn", "client_ip", "server_ip", "ssl", "fd", "ts", "close_code",
                      "tls_version", "oid", "internal", "session_start")


def _connections(classes: dict[str, pl.DataFrame]) -> pl.DataFrame:
    kind = pl.col("kind")
    client = pl.concat([
        df.select(*SESSION_KEY, *(c for c in CONNECTION_SOURCES if c in df.columns))
        .filter(pl.col("conn").is_not_null())
        for df in classes.values()], how="diagonal_relaxed")
    first = lambda expr: expr.drop_nulls().first()  # noqa: E731
    return client.group_by(*SESSION_KEY).agg(
        pl.col("conn").first(),
        first(pl.when(kind == "CONNECT").then(pl.col("client_ip"))).alias("client_ip"),
        first(pl.when(kind == "CONNECT").then(pl.col("server_ip"))).alias("server_ip"),
        first(pl.when(kind == "CONNECT").then(pl.col("ssl"))).alias("ssl"),
        first(pl.when(kind == "CONNECT").then(pl.col("fd"))).alias("fd"),
        first(pl.when(kind == "HAPROXY").then(pl.col("client_ip"))).alias("proxied_ip"),
        first(pl.when(kind == "CLOSE").then(pl.col("ts"))).alias("closed"),
        first(pl.when(kind == "CLOSE").then(pl.col("close_code"))).alias("close_code"),
        first(pl.when(kind == "TLS").then(pl.col("tls_version"))).alias("tls"),
        ((kind == "EXT") & (pl.col("oid") == STARTTLS_OID)).any().alias("starttls"),
        ((kind == "BIND") & ~pl.col("internal")).sum().cast(pl.Int64).alias("binds"),
        (kind.is_in([*PAIRED_VERBS, *LONE_VERBS]) & ~pl.col("internal")).sum()
        .cast(pl.Int64).alias("operations"),
        pl.col("ts").min().alias("first_seen"),
        pl.col("ts").max().alias("last_seen"),
        pl.col("session_start").first().alias("opened"),
    ).with_columns(
        # HAProxy: the real client is the address the proxy reported (§4.2)
        pl.coalesce("proxied_ip", "client_ip").alias("client_ip"),
        ((pl.col("client_ip") == "local") | pl.col("server_ip").str.starts_with("/"))
        .fill_null(False).alias("ldapi"),
    )


def _keyed(df: pl.DataFrame) -> pl.DataFrame:
    keys = [*SESSION_KEY, "internal", "op_key", "op_internal_key", "op_nested_key"]
    # Client op numbers are unique within a session; internal ids repeat, so internal
    # operations pair in order of appearance (the n-th request with the n-th RESULT).
    df = df.with_columns(
        pl.col("op").fill_null(UNKNOWN_ID).alias("op_key"),
        pl.col("op_internal").fill_null(UNKNOWN_ID).alias("op_internal_key"),
        pl.col("op_nested").fill_null(UNKNOWN_ID).alias("op_nested_key"),
        pl.lit(0, pl.Int64).alias("rank"),
    )
    if not df["internal"].any():
        return df
    internal = df.filter(pl.col("internal")).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over(keys).alias("rank"))
    return pl.concat([df.filter(~pl.col("internal")), internal], rechunk=False)


def _join_operations(classes: dict[str, pl.DataFrame]) -> pl.DataFrame:
    ids = [*SESSION_KEY, "internal", "conn", "op", "op_internal", "op_nested", "ts", "file",
           "line", "pos"]
    kind = pl.col("kind")
    requests = _keyed(classes["request"].select(*ids, "kind", *REQUEST_FIELDS)
                      ).select(*OP_KEY, *ids[4:], kind.alias("verb"), *REQUEST_FIELDS)
    results = _keyed(classes["result"].select(*ids, "kind", "dn", "text", *RESULT_FIELDS)
                     ).select(
        *OP_KEY,
        pl.col("conn").alias("r_conn"), pl.col("op").alias("r_op"),
        pl.col("op_internal").alias("r_op_internal"), pl.col("op_nested").alias("r_op_nested"),
        pl.col("ts").alias("result_ts"), pl.col("file").alias("result_file"),
        pl.col("line").alias("result_line"), pl.col("pos").alias("result_pos"),
        pl.col("dn").alias("result_dn"), pl.col("text").alias("result_text"), *RESULT_FIELDS,
    )
    paired = requests.join(results, on=list(OP_KEY), how="full", coalesce=True)
    paired = paired.with_columns(
        pl.coalesce("conn", "r_conn").alias("conn"),
        pl.coalesce("op", "r_op").alias("op"),
        pl.coalesce("op_internal", "r_op_internal").alias("op_internal"),
        pl.coalesce("op_nested", "r_op_nested").alias("op_nested"),
        # a RESULT without its request still says what it answered, by its tag
        pl.coalesce("verb", pl.col("tag").replace_strict(TAG_VERBS, default=None,
                                                        return_dtype=pl.String)).alias("verb"),
    ).drop("r_conn", "r_op", "r_op_internal", "r_op_nested")
    lone = classes["lone"].select(
        *SESSION_KEY, "internal", "conn", "op", "op_internal", "op_nested",
        pl.col("kind").alias("verb"), "ts", "file", "line", "pos", "targetop", "msgid",
        "nentries", "etime",
    )
    ops = pl.concat([paired, lone], how="diagonal_relaxed")
    return _mark_abandoned(ops)


def _mark_abandoned(ops: pl.DataFrame) -> pl.DataFrame:
    targets = ops.filter((pl.col("verb") == "ABANDON") & ~pl.col("internal")).select(
        *SESSION_KEY, pl.col("targetop").cast(pl.Int64, strict=False).alias("op"),
    ).drop_nulls("op").unique()
    # ABANDON is rare: the exact join runs only on rows whose op number is some target's
    candidates = ops.select(*SESSION_KEY, "op").with_row_index("row")\
        .filter(pl.col("op").is_in(targets["op"].unique().implode()))
    rows = candidates.join(targets, on=[*SESSION_KEY, "op"], how="semi")["row"]
    abandoned = pl.Series("abandoned", [], dtype=pl.Boolean).extend_constant(False, ops.height)
    if rows.len():
        abandoned = abandoned.scatter(rows, True)
    return ops.with_columns((pl.lit(abandoned) & (pl.col("verb") != "ABANDON")).alias("abandoned"))


def _with_identity(ops: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    # Identity follows operation numbers, not line order: a client sends nothing while a
    # BIND is in progress (RFC 4511 §4.2.1), so every op numbered above a BIND was sent
    # after its response, even when the server logged that op before the BIND's RESULT.
    bound = pl.when(pl.col("err") == 0).then(pl.coalesce("result_dn", "dn")).otherwise(pl.lit(""))
    bind_changes = ops.filter(
        (pl.col("verb") == "BIND") & pl.col("result_pos").is_not_null() & ~pl.col("internal")
    ).select(*SESSION_KEY, pl.col("op").alias("change_op"), bound.alias("identity"))
    # AUTOBIND and certificate binds have no op: they hold from the last op logged before them
    requests = ops.filter(pl.col("pos").is_not_null() & ~pl.col("internal")).select(
        *SESSION_KEY, "pos", pl.col("op").alias("change_op")).sort("pos")
    other_changes = other.filter(
        (pl.col("kind") == "AUTOBIND") | ((pl.col("kind") == "TLS") & pl.col("dn").is_not_null())
    ).select(*SESSION_KEY, "pos", pl.col("dn").alias("identity")).sort("pos").join_asof(
        requests, on="pos", by=list(SESSION_KEY), strategy="backward", check_sortedness=False,
    ).select(*SESSION_KEY, pl.col("change_op").fill_null(UNKNOWN_ID), "identity")
    changes = pl.concat([bind_changes, other_changes]).sort("change_op")
    # the as-of join runs on a narrow copy of the keys; its answer goes back by row number
    issued = ops.select(*SESSION_KEY, pl.col("op").fill_null(UNKNOWN_ID).alias("issued_op"))\
        .with_row_index("row").sort("issued_op")
    found = issued.join_asof(
        changes, left_on="issued_op", right_on="change_op", by=list(SESSION_KEY),
        strategy="backward", allow_exact_matches=False,
        check_sortedness=False,  # both sorted on the op number above; groups are not checked
    ).sort("row")["identity"]
    start = pl.when(pl.col("session_key") != 0).then(pl.lit(""))  # opened in the window: anonymous
    identity = pl.coalesce(pl.lit(found), start)
    return ops.with_columns(
        pl.when((pl.col("verb") == "BIND") & pl.col("result_pos").is_not_null())
        .then(bound)   # a BIND carries the identity it established
        .otherwise(identity).alias("bind_dn")
    )


def _with_context(ops: pl.DataFrame, connections: pl.DataFrame) -> pl.DataFrame:
    duration = (pl.col("closed") - pl.col("opened")) / 1e9
    context = connections.select(*SESSION_KEY, "client_ip", "tls", "ldapi", "ssl", "starttls",
                                 duration.alias("conn_duration"), pl.col("opened").alias("session"))
    return ops.join(context, on=list(SESSION_KEY), how="left")


def shape_key(filt: pl.Expr) -> pl.Expr:
    """A cheap, vectorised refinement of the fingerprint: equal keys, equal fingerprints.

    Every run of value characters after ``=`` becomes ``?`` (``*`` and parentheses
    stay), except objectClass values, which the fingerprint keeps; filters long
    enough to have been cut by the server keep their length class apart.
    """
    protected = filt.str.replace_all(r"(?i)(\(objectclass)=", "${1}\x01")
    masked = protected.str.replace_all(r"=[^()*]+", "=?")
    return masked + pl.when(filt.str.len_chars() >= SERVER_CUT).then(pl.lit("#cut")).otherwise(
        pl.lit(""))


def _with_fingerprints(ops: pl.DataFrame, sort_operands: bool) -> pl.DataFrame:
    # Fingerprint one filter per shape (filters differ mostly in their values), map back.
    distinct = ops.filter(pl.col("verb") == "SRCH").select(pl.col("filter").unique()).drop_nulls()
    keyed = distinct.with_columns(shape_key(pl.col("filter")).alias("key"))
    shapes = keyed.group_by("key").agg(pl.col("filter").min().alias("example"))
    prints = [fingerprint(f, sort_operands) for f in shapes["example"].to_list()]
    shapes = shapes.select("key", pl.Series("print", prints, dtype=pl.String),
                           pl.Series("print_id", [fingerprint_id(p) for p in prints],
                                     dtype=pl.String))
    lookup = keyed.join(shapes, on="key").select("filter", "print", "print_id")
    ops = ops.join(lookup, on="filter", how="left")  # a join, not a Python dict: many filters
    notes = pl.col("notes").fill_null("")
    is_search = pl.col("verb") == "SRCH"
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
    utc = pl.Datetime("ns", "UTC")
    return ops.with_columns(
        pl.col("session").cast(utc),
        pl.col("ts").cast(utc), pl.col("result_ts").cast(utc),
        pl.lit(None, pl.String).alias("workload"),
    ).select(*OPERATION_COLUMNS, "pos", "result_pos").sort(
        # a total order (pos and result_pos are unique; a RESULT alone has no request
        # position), so files do not depend on the order rows reach this point
        "server", "conn", "session", "ts", "pos", "result_pos", nulls_last=True,
    ).drop("pos", "result_pos")


CONNECTION_COLUMNS = ("server", "session", "conn", "client_ip", "server_ip", "opened", "closed",
                      "close_code", "tls", "ldapi", "ssl", "starttls", "fd", "binds",
                      "operations", "first_seen", "last_seen")


def _connection_columns(conns: pl.DataFrame) -> pl.DataFrame:
    utc = pl.Datetime("ns", "UTC")
    return conns.with_columns(
        pl.col("opened").cast(utc).alias("session"),
        *(pl.col(c).cast(utc) for c in ("opened", "closed", "first_seen", "last_seen")),
    ).select(CONNECTION_COLUMNS).sort("server", "conn", "session", nulls_last=True)
