"""389 DS text access-log lines → a table of events, one row per line.

The tokenizer is compiled (``rust/core``, through ``pipeline._core``): one pass over
the bytes, with the GIL released, straight into Arrow columns that polars takes
without a copy.

1. Lines end at ``\\n``; invalid UTF-8 (client-supplied bytes) is kept lossily.
2. The frame ``[timestamp] conn=N [(Internal)] [op=M[(i)(n)]]`` gives the UTC time
   in nanoseconds (with the line's own offset), the ids and where the body starts.
   A line shaped otherwise is a header (starts with a tab), blank, or a reject.
3. The body's first word decides the kind. The usual layouts of the busy kinds
   take a strict hand-written path; every other layout the general pattern of its
   kind (389ds-access-log.md, all versions). Both give the same fields where both
   apply: ``tests/test_logline.py`` checks that line by line.

Rows that no pattern matches, impossible timestamps (``31/Feb``) and values that do
not fit their column (ids over 64 bits, a timing over 10^9 s) become rejects with a
reason; no line is ever dropped.

>>> r = parse_lines(b'[21/Apr/2009:11:39:51 -0700] conn=11 op=2 fd=608 closed - U1\\n',
...                 server="ds1", file="access")
>>> r.events.select("kind", "conn", "op", "fd", "close_code").row(0)
('CLOSE', 11, 2, 608, 'U1')
>>> r.counts
{'total': 1, 'parsed': 1, 'rejected': 0, 'header': 0, 'blank': 0}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import polars as pl

from . import _core
from .errors import LogParseError
from .schema import EVENT_SCHEMA, REJECT_SCHEMA, conform, split_classes

Errors = Literal["raise", "collect", "ignore"]


@dataclass(frozen=True)
class ParseResult:
    """What one block of log text became.

    Attributes:
        classes: the events of each class (``schema.EVENT_CLASSES``: what the join does
            with them), each table with the id columns and every other column that
            has a value in that class, in line order.
        rejects: one row per line that did not parse (``schema.REJECT_SCHEMA``).
        counts: line accounting, ``total = parsed + rejected + header + blank``.
        carry: bytes after the last newline when the block was not final.
    """

    classes: Mapping[str, pl.DataFrame]
    rejects: pl.DataFrame
    counts: dict[str, int]
    carry: bytes = b""

    @cached_property
    def events(self) -> pl.DataFrame:
        """Every event in one table (``schema.EVENT_SCHEMA``), in line order."""
        frames = [conform(df, EVENT_SCHEMA) for df in self.classes.values()]
        if not frames:  # no line was an event
            return pl.DataFrame(schema=dict(EVENT_SCHEMA))
        return pl.concat(frames).sort("line")

    @classmethod
    def of_events(cls, events: pl.DataFrame, rejects: pl.DataFrame,
                  counts: dict[str, int]) -> ParseResult:
        """A result from one table of events (``schema.EVENT_SCHEMA``)."""
        return cls(split_classes(events, narrow=False), rejects, counts)


@dataclass(frozen=True)
class Tokens:
    """The compiled tokenizer's answer, still in Arrow (what stage A hands on as it is).

    Attributes:
        classes: the events of each class as Arrow tables (PyCapsule streams), without
            the server, file and file order columns.
        rejects: the rejected lines (line, text, reason), an Arrow table.
        counts: line accounting, ``total = parsed + rejected + header + blank``.
        carry_from: where the bytes after the last newline begin when not final.
        unknown_fields: RESULT fields no column reads (a newer server's), by name, with
            how many events had each; those events are kept.
        utc_offsets: the UTC offsets the events' timestamps were written with, as runs
            ``(offset, first_ns, last_ns)`` in time order (``offsets.py``).
    """

    classes: Mapping[str, object]
    rejects: object
    counts: dict[str, int]
    carry_from: int
    unknown_fields: dict[str, int]
    utc_offsets: list[tuple[str, int, int]]


def tokenize(data: bytes, *, first_line: int = 1, final: bool = True,
             strict: bool = True, connections: list[int] | None = None) -> Tokens:
    """Tokenize a newline-aligned block (arguments as for ``parse_lines``); with
    ``connections``, only those client connections' events (the others' lines are
    counted ``skipped``)."""
    classes, rejects, counts, carry_from, _, unknown, offsets = _core.tokenize_text(
        bytes(data), first_line=first_line, final_block=final, strict=strict,
        connections=connections)
    return Tokens(classes, rejects, counts, carry_from, unknown, offsets)


def tokenize_json(data: bytes, *, first_line: int = 1) -> Tokens:
    """Tokenize a whole 3.x JSON access log (``json`` or ``json-pretty``) into the same
    classes, rejects and line accounting as a text block (``rust/core/src/json.rs``)."""
    classes, rejects, counts, carry_from, _, unknown, offsets = _core.tokenize_json(
        bytes(data), first_line=first_line)
    return Tokens(classes, rejects, counts, carry_from, unknown, offsets)


def reject_table(rejects: object, server: str, file: str) -> pl.DataFrame:
    """The tokenizer's rejects as ``schema.REJECT_SCHEMA`` rows."""
    df = pl.DataFrame(rejects).with_columns(server=pl.lit(server), file=pl.lit(file))
    return df.select(pl.col(name).cast(dtype) for name, dtype in REJECT_SCHEMA.items())


def parse_lines(
    data: bytes,
    *,
    server: str,
    file: str,
    file_seq: int = 0,
    first_line: int = 1,
    final: bool = True,
    errors: Errors = "collect",
    strict: bool = True,
) -> ParseResult:
    """Parse a newline-aligned block of a text access log.

    Args:
        data: raw bytes; lines end with ``\\n``.
        server: server name recorded on every row.
        file: file name recorded on every row.
        file_seq: the file's position in its server's rotation order.
        first_line: the line number of the block's first line.
        final: the block ends its file, so a last line without a newline is a
            reject (a file still being written); otherwise it is returned as ``carry``.
        errors: ``"collect"`` keeps rejects, ``"ignore"`` only counts them,
            ``"raise"`` raises ``LogParseError`` on the first one.
        strict: take the strict paths for the usual layouts (``False``: the general
            patterns only, to check that both agree).

    Returns:
        A ``ParseResult``; events come in line order.
    """
    tokens = tokenize(data, first_line=first_line, final=final, strict=strict)
    return tokens_result(tokens, data, server=server, file=file, file_seq=file_seq,
                         final=final, errors=errors)


def tokens_result(tokens: Tokens, data: bytes, *, server: str, file: str, file_seq: int,
                  final: bool, errors: Errors) -> ParseResult:
    """A tokenizer's answer as polars tables with their provenance (``parse_lines``)."""
    rejects = reject_table(tokens.rejects, server, file)
    if rejects.height and errors == "raise":
        first = rejects.row(0, named=True)
        raise LogParseError(
            f"unparsable line: {first['text'][:200]!r} ({server}:{file} line {first['line']}): "
            f"{first['reason']}"
        )
    provenance = {"server": pl.lit(server), "file": pl.lit(file),
                  "file_seq": pl.lit(file_seq, pl.Int32)}
    tables = {}
    for name, table in tokens.classes.items():
        df = pl.DataFrame(table)
        if df.height:
            df = df.with_columns(**provenance)
            tables[name] = df.select(
                pl.col(c).cast(dtype) for c, dtype in EVENT_SCHEMA.items() if c in df.columns)
    return ParseResult(
        classes=tables,
        rejects=rejects.clear() if errors == "ignore" else rejects,
        counts=tokens.counts,
        carry=bytes(data[tokens.carry_from:]) if not final else b"",
    )
