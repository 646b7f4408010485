"""The compiled tokenizer's answer as one polars table of events, for the tests'
assertions: what each line became, column by column. A run never builds this table:
its parse tasks hand the tokenizer's Arrow classes to the shuffle as they are
(``pipeline.engine.logline.tokenize``, ``pipeline.engine.stages.parse_task``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import polars as pl

from pipeline import _core
from pipeline.engine.enrich import shuffle_errors
from pipeline.engine.logline import Tokens, reject_table, tokenize, tokenize_json
from pipeline.engine.shuffle import Piece, read_pieces

# One row per parsed line. Fields that a kind does not carry are null.
EVENT_SCHEMA = {
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
}


@dataclass(frozen=True)
class Parsed:
    """What one block of log text became.

    Attributes:
        classes: the events of each class (``schema.EVENT_CLASSES``), with provenance.
        rejects: one row per line that did not parse (``schema.REJECT_SCHEMA``).
        counts: line accounting, ``total = parsed + rejected + header + blank``.
        carry: bytes after the last newline when the block was not final.
    """

    classes: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    counts: dict[str, int]
    carry: bytes = b""

    @cached_property
    def events(self) -> pl.DataFrame:
        """Every event in one table (``EVENT_SCHEMA``), in line order."""
        frames = [df.select((pl.col(c) if c in df.columns else pl.lit(None)).cast(t).alias(c)
                            for c, t in EVENT_SCHEMA.items()) for df in self.classes.values()]
        if not frames:  # no line was an event
            return pl.DataFrame(schema=EVENT_SCHEMA)
        return pl.concat(frames).sort("line")


def parse_lines(data: bytes, *, server: str, file: str, file_seq: int = 0,
                first_line: int = 1, final: bool = True, strict: bool = True) -> Parsed:
    """A newline-aligned block of a text log, tokenized (``final``: a last line without
    newline is a reject, else it is the ``carry``; ``strict``: take the strict paths)."""
    tokens = tokenize(data, first_line=first_line, final=final, strict=strict)
    return _parsed(tokens, data, server, file, file_seq, final)


def parse_json_lines(data: bytes, *, server: str, file: str, file_seq: int = 0,
                     first_line: int = 1) -> Parsed:
    """A whole JSON access log, tokenized."""
    return _parsed(tokenize_json(data, first_line=first_line), data, server, file, file_seq,
                   True)


def _parsed(tokens: Tokens, data: bytes, server: str, file: str, file_seq: int,
            final: bool) -> Parsed:
    provenance = {"server": pl.lit(server), "file": pl.lit(file),
                  "file_seq": pl.lit(file_seq, pl.Int32)}
    tables = {}
    for name, table in tokens.classes.items():
        df = pl.DataFrame(table)
        if df.height:
            tables[name] = df.with_columns(**provenance).select(
                pl.col(c).cast(t) for c, t in EVENT_SCHEMA.items() if c in df.columns
                or c in provenance)
    return Parsed(tables, reject_table(tokens.rejects, server, file), tokens.counts,
                  bytes(data[tokens.carry_from:]) if not final else b"")


def read_bucket(cls: str, found: list[Piece], subs: range, offsets: dict[int, int]
                ) -> pl.DataFrame | None:
    """A bucket's events of one class in the sub-buckets ``subs``, decoded as one polars
    table of the class's columns (those a file left out are nulls; its provenance fills
    server, file and file_seq), with absolute line numbers; None: no events. A run's join
    tasks decode inside the core's join (``_core.join_pieces``); this is what they decode,
    read through the same ranges (``shuffle.read_pieces``)."""
    parts = read_pieces(found, subs, offsets)
    if not parts:
        return None
    with shuffle_errors():
        table = pl.DataFrame(_core.shuffle_decode(parts, cls))
    return table if table.height else None
