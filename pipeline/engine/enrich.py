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

from .. import _core
from ..errors import ShuffleError
from ..tables import aggregate
from ..workload import Rules
from .schema import EVENT_CLASSES

# a bucket's events of one class as the shuffle files hold them: per file, its header,
# the bytes of some of its batches, the lines before its chunk in its file, its name
Pieces = list[tuple[bytes, bytes, int, str]]

# the "class" of the parse tasks' routed files (``rust/core/src/route.rs``): text logs'
# lines, whole, which the join task tokenizes
ROUTED = "route"


@dataclass(frozen=True)
class Joined:
    """A bucket's task done by the compiled core (``join_pieces``): its operations and
    connections to write, its partial aggregates (``aggregate.from_core``), the rows each
    workload rule failed on, how many events it joined and the seconds decoding took."""

    operations: pl.DataFrame
    connections: pl.DataFrame
    partial: aggregate.Counts
    tables: dict[str, pl.DataFrame]
    rule_errors: dict[str, int]
    events: int
    decode_seconds: float
    # what the core's tokenizer found in the routed lines (``_core.join_pieces``)
    lines: dict[str, Any]


def join_pieces(pieces: Mapping[str, Pieces], *, sort_operands: bool = False,
                workloads: Rules = (), load_period: int = 60,
                window: tuple[int | None, int | None] = (None, None),
                aggregates: bool = True) -> Joined:
    """A bucket's events as they are in the shuffle files (per class, the pieces
    ``shuffle.read_pieces`` gives; a missing class has none; ``shuffle.ROUTED``: the
    pieces of the parse tasks' routed lines, tokenized here), decoded, joined, classified
    by ``workloads`` and aggregated (``load_period``: the load table's period in seconds)
    in one call into the compiled core. Events outside ``window`` (since, until in ns) are
    connections' context: they give identities and clients and are not counted. Without
    ``aggregates`` (a trace), the partials are empty."""
    with shuffle_errors():
        ops, conns, tables, summary, failures, events, seconds, lines = _core.join_pieces(
            [pieces.get(name, []) for name in EVENT_CLASSES],
            routed=list(pieces.get(ROUTED, [])), sort_operands=sort_operands,
            rules=list(workloads) or None, load_period_s=load_period, window=window,
            aggregates=aggregates)
    partial, partial_tables = aggregate.from_core(tables, summary) if aggregates else ({}, {})
    return Joined(pl.DataFrame(ops), _connection_columns(pl.DataFrame(conns)), partial,
                  partial_tables, dict(failures), events, seconds, lines)


@contextmanager
def shuffle_errors(source: str = "") -> Iterator[None]:
    """A shuffle file the core cannot read (its message names the file, or ``source``
    does) is a ``ShuffleError``, which adds the fix: the run fails with that message, not
    as an internal error."""
    try:
        yield
    except _core.ShuffleFileError as e:
        raise ShuffleError(f"{source}: {e}" if source else str(e)) from None


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
