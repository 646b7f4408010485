"""389 DS text access-log lines → events in Arrow columns, one row per line.

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

>>> t = tokenize(b'[21/Apr/2009:11:39:51 -0700] conn=11 op=2 fd=608 closed - U1\\n')
>>> pl.DataFrame(t.classes["other"]).select("kind", "conn", "op", "fd", "close_code").row(0)
('CLOSE', 11, 2, 608, 'U1')
>>> t.counts
{'total': 1, 'parsed': 1, 'rejected': 0, 'header': 0, 'blank': 0}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from .. import _core
from .schema import REJECT_SCHEMA


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
             strict: bool = True) -> Tokens:
    """Tokenize a newline-aligned block (``first_line``: the number of its first line;
    ``final``: it ends its file, so a last line without newline is a reject, else it is
    left for the next block, at ``carry_from``; ``strict``: take the strict paths for the
    usual layouts, else the general patterns only, to check that both agree)."""
    classes, rejects, counts, carry_from, _, unknown, offsets = _core.tokenize_text(
        bytes(data), first_line=first_line, final_block=final, strict=strict)
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
