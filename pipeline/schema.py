"""Column names and types: the contract between the stages.

Every stage imports its column names from here, so a rename happens once.
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl
import pyarrow as pa

from . import _core

# Event kinds: the first keyword of a line after its ids (389ds-access-log.md §15.4).
REQUEST_VERBS = ("BIND", "SRCH", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT")
OTHER_OP_VERBS = ("ABANDON", "UNBIND")
PAIRED_VERBS = (*REQUEST_VERBS, "UNPROCESSED")  # requests that get a RESULT
SUMMARY_VERBS = REQUEST_VERBS + OTHER_OP_VERBS
KINDS = (
    "CONNECT", "CLOSE", "TLS", "AUTOBIND", "HAPROXY",
    *REQUEST_VERBS, *OTHER_OP_VERBS,
    "EXT_INFO", "UNPROCESSED", "RESULT", "ENTRY", "REFERRAL", "VLV", "SORT", "STAT",
)

# One row per parsed line. Fields that a kind does not carry are null.
EVENT_SCHEMA = MappingProxyType({
    "server": pl.String,
    "file": pl.String,
    "file_seq": pl.Int32,       # order of the file within its server (rotation order)
    "line": pl.Int64,           # 1-based line number within the file
    "ts": pl.Int64,             # UTC nanoseconds since the epoch
    "tz": pl.String,            # the line's own UTC offset, e.g. "-0500"
    "kind": pl.String,
    "conn": pl.Int64,           # null for conn=Internal(N) / conn=Internal
    "internal": pl.Boolean,
    "op": pl.Int64,
    "op_internal": pl.Int64,    # the (i) of op=O(i)(n)
    "op_nested": pl.Int64,      # the (n) of op=O(i)(n)
    "fd": pl.Int64,
    "client_ip": pl.String,
    "server_ip": pl.String,
    "ssl": pl.Boolean,
    "close_code": pl.String,
    "close_reason": pl.String,
    "tls_version": pl.String,
    "dn": pl.String,
    "method": pl.String,
    "version": pl.Int64,
    "mech": pl.String,
    "base": pl.String,
    "scope": pl.Int64,
    "filter": pl.String,
    "attrs": pl.String,
    "options": pl.String,
    "authzid": pl.String,
    "newrdn": pl.String,
    "newsuperior": pl.String,
    "attr": pl.String,
    "oid": pl.String,
    "name": pl.String,
    "targetop": pl.String,
    "msgid": pl.Int64,
    "err": pl.Int64,
    "tag": pl.Int64,
    "nentries": pl.Int64,
    "wqtime": pl.Float64,
    "wtime": pl.Float64,
    "optime": pl.Float64,
    "writetime": pl.Float64,
    "etime": pl.Float64,
    "notes": pl.String,         # comma-separated letters as logged, e.g. "U,P"
    "details": pl.String,
    "csn": pl.String,
    "pr_idx": pl.Int64,
    "pr_cookie": pl.Int64,
    "sid": pl.String,
    "wbusy": pl.Int64,          # busy workers when the operation was queued (3.2.1+) ...
    "wmax": pl.Int64,           # ... of the pool's workers
    "wqdepth": pl.Int64,        # operations waiting in the work queue then
    "text": pl.String,          # trailing free text (", msg" or " - msg") and rare-kind bodies
    "truncated": pl.Boolean,    # the server cut the line at its 2048-byte limit
})
EVENT_COLUMNS = tuple(EVENT_SCHEMA)

# Events by what the join does with them. Most fields are null for most kinds, so the
# shuffle stores each class with only the columns the join reads from it: the compiled
# core owns that layout (``shuffle::class_schemas``), in the order it takes the classes.
LONE_VERBS = ("ABANDON", "UNBIND")   # operations that never get a RESULT
EVENT_CLASSES = MappingProxyType({name: tuple(pa.schema(schema).names)
                                  for name, schema in _core.event_classes().items()})


def event_class(kind: pl.Expr) -> pl.Expr:
    """The ``EVENT_CLASSES`` name of each event kind."""
    return (pl.when(kind.is_in(PAIRED_VERBS)).then(pl.lit("request"))
            .when(kind == "RESULT").then(pl.lit("result"))
            .when(kind.is_in(LONE_VERBS)).then(pl.lit("lone"))
            .otherwise(pl.lit("other")))


def split_classes(events: pl.DataFrame, narrow: bool = True) -> dict[str, pl.DataFrame]:
    """Events → one table per ``EVENT_CLASSES`` entry, rows in the events' order.

    ``narrow``: with that entry's columns only (the shuffle's layout), an empty table for
    a class without events; otherwise with every column, and classes without events left
    out.
    """
    parts = events.with_columns(event_class(pl.col("kind")).alias("_class")).partition_by(
        "_class", as_dict=True, include_key=False, maintain_order=True)
    if not narrow:
        return {name: parts[(name,)] for name in EVENT_CLASSES if (name,) in parts}
    return {name: parts[(name,)].select(columns) if (name,) in parts
            else empty_class(name) for name, columns in EVENT_CLASSES.items()}


def class_schema(name: str) -> MappingProxyType:
    """The columns and types one event class keeps in the shuffle."""
    return MappingProxyType({c: EVENT_SCHEMA[c] for c in EVENT_CLASSES[name]})


def empty_class(name: str) -> pl.DataFrame:
    """A table of one event class with no rows."""
    return pl.DataFrame(schema=dict(class_schema(name)))


REJECT_SCHEMA = MappingProxyType({
    "server": pl.String,
    "file": pl.String,
    "line": pl.Int64,
    "text": pl.String,
    "reason": pl.String,
})

# Per-file line accounting: total = parsed + rejected + header + blank.
COUNT_SCHEMA = MappingProxyType({
    "server": pl.String,
    "file": pl.String,
    "total": pl.Int64,
    "parsed": pl.Int64,
    "rejected": pl.Int64,
    "header": pl.Int64,
    "blank": pl.Int64,
})

REJECT_TEXT_LIMIT = 2048  # rejects keep at most this many characters of the line


def empty_events() -> pl.DataFrame:
    """An events table with no rows and the full schema."""
    return pl.DataFrame(schema=dict(EVENT_SCHEMA))


def conform(df: pl.DataFrame, schema: MappingProxyType) -> pl.DataFrame:
    """Add missing columns as nulls, cast, and order columns as ``schema`` says."""
    exprs = [
        (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    ]
    return df.select(exprs)
