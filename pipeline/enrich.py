"""Within one bucket: sessions, request↔RESULT join, bind identity, context.

The join is compiled (``rust/core/src/join.rs``, through ``pipeline._core``): it pairs
the bucket's lines into operations and connections, and ``rust/core/src/operations.rs``
gathers each operation's columns from its lines and connection and fingerprints its
search filter (each distinct filter once). Their module documentation states the rules
(sessions at each ``connection from`` line, pairing by (session, op ids) in the server's
writing order, identity by op numbers, which line gives which column). A bucket's task
is one call (``join_pieces``, ``rust/core/src/bucket.rs``): its shuffled events are
decoded, joined, classified and aggregated without leaving the core.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl

from . import _core, aggregate
from .errors import ShuffleError
from .schema import (
    EVENT_CLASSES,
    arrow_class_schema,
    class_schema,
    conform,
    empty_class,
    split_classes,
)
from .workload import Rules

# a bucket's events of one class as the shuffle files hold them: per file, its header,
# the bytes of some of its batches, the lines before its chunk in its file, its name
Pieces = list[tuple[bytes, bytes, int, str]]


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


def enrich_classes(classes: Mapping[str, pl.DataFrame], *, sort_operands: bool = False
                   ) -> Enriched:
    """``enrich`` for events already split as ``schema.split_classes`` does (the shuffle's
    layout); a missing class has no events."""
    tables = {name: conform(classes[name], class_schema(name)).rechunk() if name in classes
              else empty_class(name) for name in EVENT_CLASSES}
    columns, connections = _core.join_bucket(
        tables["request"], tables["result"], tables["lone"], tables["other"],
        sort_operands=sort_operands)
    return _enriched(columns, connections)


@dataclass(frozen=True)
class Joined:
    """A bucket's task done by the compiled core (``join_pieces``): its operations and
    connections to write, its partial aggregates (``aggregate.partials``), the rows each
    workload rule failed on, how many events it joined and the seconds decoding took."""

    operations: pl.DataFrame
    connections: pl.DataFrame
    partial: aggregate.Counts
    tables: dict[str, pl.DataFrame]
    rule_errors: dict[str, int]
    events: int
    decode_seconds: float


def join_pieces(pieces: Mapping[str, Pieces], *, sort_operands: bool = False,
                workloads: Rules = (), load_period: int = 60) -> Joined:
    """A bucket's events as they are in the shuffle files (per class, the pieces
    ``shuffle.read_pieces`` gives; a missing class has none), decoded, joined, classified
    by ``workloads`` and aggregated (``load_period``: the load table's period in seconds)
    in one call into the compiled core."""
    with shuffle_errors():
        ops, conns, tables, summary, failures, events, seconds = _core.join_pieces(
            [pieces.get(name, []) for name in EVENT_CLASSES],
            [arrow_class_schema(name) for name in EVENT_CLASSES], sort_operands=sort_operands,
            rules=list(workloads) or None, load_period_s=load_period)
    partial, partial_tables = aggregate.from_core(tables, summary)
    return Joined(pl.DataFrame(ops), _connection_columns(pl.DataFrame(conns)), partial,
                  partial_tables, dict(failures), events, seconds)


@contextmanager
def shuffle_errors() -> Iterator[None]:
    """A shuffle file the core cannot decode (its message names the file) is a
    ``ShuffleError``, which adds the fix: the run fails with that message, not as an
    internal error."""
    try:
        yield
    except _core.ShuffleFileError as e:
        raise ShuffleError(str(e)) from None


def _enriched(columns: list[Any], connections: Any) -> Enriched:
    # imported column by column: what a partial aggregate keeps of one column (an example
    # filter) then keeps only that column's memory alive, not the whole table's
    ops = pl.concat([pl.DataFrame(c) for c in columns], how="horizontal")
    return Enriched(operations=ops, connections=_connection_columns(pl.DataFrame(connections)))


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
