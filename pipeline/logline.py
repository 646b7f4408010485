"""389 DS text access-log lines → a table of events, one row per line.

The parser is columnar: a block of bytes becomes one polars string column,
and each step below is a vectorised expression over all lines at once.

1. Split on newlines; a capture-free regex (``EVENT_HEAD``) picks the event
   lines, the rest are header, blank or reject.
2. Cut the timestamp at fixed positions (hi-res or seconds-only form) and
   convert it to UTC nanoseconds with the line's own offset.
3. Cut ``conn=N op=M`` and the next word from a short window after ``conn=``;
   internal and nested ids take a general (slower) way. What is left is the *body*.
4. The body's first word decides the kind; each kind's fields come from a
   regex run only over the rows of that kind: first a strict pattern for the
   usual layout (``FAST_PATTERNS``; RESULT is cut at spaces instead), then
   the general pattern (``KIND_PATTERNS``) for the rows it left.

Rows that no pattern matches become rejects with a reason; no line is ever
dropped. Capture groups cost time in proportion to the text they span, so
they run on as few rows and as few bytes as possible.

>>> r = parse_lines(b'[21/Apr/2009:11:39:51 -0700] conn=11 op=2 fd=608 closed - U1\\n',
...                 server="ds1", file="access")
>>> r.events.select("kind", "conn", "op", "fd", "close_code").row(0)
('CLOSE', 11, 2, 608, 'U1')
>>> r.counts
{'total': 1, 'parsed': 1, 'rejected': 0, 'header': 0, 'blank': 0}
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from .errors import LogParseError
from .schema import (
    EVENT_SCHEMA,
    REJECT_SCHEMA,
    REJECT_TEXT_LIMIT,
    conform,
)

Errors = Literal["raise", "collect", "ignore"]

# The frame every event line shares; checked with a capture-free regex (fast DFA).
EVENT_HEAD = (
    r"^\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?:\.\d{9})? [+-]\d{4}\] "
    r"conn=(?:\d+(?: \(Internal\))?|Internal(?:\(\d+\))?) "
    r"(?:op=-?\d+(?:\(\d+\)\(\d+\))? )?\S"
)
HIRES_BODY_AT = 39   # len("[21/Apr/2023:10:11:12.123456789 +1200] ")
SECONDS_BODY_AT = 29  # len("[21/Apr/2009:11:39:51 -0700] ")
TRUNCATION_LIMIT = 2040  # the server cuts events at 2048 bytes and appends "..."

_END = r"\s*$"  # lines keep their newline; also tolerates \r\n
_AUTHZ = r'(?: authzid="(?P<authzid>.*?)")?'
_MSG = r"(?:, (?P<text>.*?))?"

# One regex per kind, matched against the body (named groups become columns).
KIND_PATTERNS = MappingProxyType({
    "CONNECT": r"^fd=(?P<fd>\d+) slot=\d+ (?P<ssl>SSL )?connection from (?P<client_ip>\S+)"
               r" to (?P<server_ip>.*?)" + _END,
    "CLOSE": r"^fd=(?P<fd>\d+) (?:Disconnect - |closed ?(?:- )?)?(?P<close_reason>.*?)"
             r"(?: - )?(?P<close_code>[A-Z]\d)" + _END,   # the code is always last
    "HAPROXY": r"^fd=(?P<fd>\d+) HAProxy new_address_from=(?P<client_ip>\S+)"
               r" to new_address_dest=(?P<server_ip>\S+)" + _END,
    "TLS": r"^(?P<text>(?P<tls_version>(?:TLS|SSL)[\d.]*)?.*?(?: client bound as (?P<dn>.*?))?)"
           + _END,
    "AUTOBIND": r'^AUTOBIND dn="(?P<dn>.*)"' + _END,
    "BIND": r'^BIND dn="(?P<dn>.*?)"(?: method=(?P<method>\S+?) version=(?P<version>\d+)'
            r"(?: mech=(?P<mech>[^\s,]+))?)?" + _AUTHZ + _MSG + _END,
    "SRCH": r'^SRCH (?:base|dn)="(?P<base>.*?)"(?: scope=(?P<scope>\d+) filter="(?P<filter>.*?)"'
            r'(?: attrs=(?:(?P<attrs_all>ALL)|"(?P<attrs>[^"]*)"?))?)?'
            r"(?: options=(?P<options>\S+))?" + _AUTHZ + _MSG + _END,
    "ADD": r'^ADD dn="(?P<dn>.*?)"' + _AUTHZ + _MSG + _END,
    "MOD": r'^MOD dn="(?P<dn>.*?)"' + _AUTHZ + _MSG + _END,
    "DEL": r'^DEL dn="(?P<dn>.*?)"' + _AUTHZ + _MSG + _END,
    "MODRDN": r'^MODRDN dn="(?P<dn>.*?)" newrdn="(?P<newrdn>.*?)"'
              r'(?: newsuperior="(?P<newsuperior>.*?)")?' + _AUTHZ + _MSG + _END,
    "CMP": r'^CMP dn="(?P<dn>.*?)"(?: attr="(?P<attr>.*?)")?' + _AUTHZ + _MSG + _END,
    "EXT": r'^EXT oid="(?P<oid>.*?)"(?: name="(?P<name>.*?)")?' + _AUTHZ + _MSG + _END,
    "EXT_INFO": r'^EXT_INFO (?P<text>(?:name="(?P<name>.*?)")?.*?)' + _END,
    "ABANDON": r"^ABANDON targetop=(?P<targetop>.*?) msgid=(?P<msgid>-?\d+)"
               r"(?: nentries=(?P<nentries>\d+))?(?: etime=(?P<etime>[\d.]+))?"
               r'(?: sid="(?P<sid>.*?)")?' + _END,
    "UNBIND": r"^UNBIND(?:, (?P<text>.*?))?" + _END,
    "UNPROCESSED": r"^UNPROCESSED OPERATION(?: - (?P<text>.*?))?" + _END,
    "ENTRY": r'^ENTRY dn="(?P<dn>.*)"' + _END,
    "REFERRAL": r"^REFERRAL(?P<text>.*?)" + _END,
    "VLV": r"^VLV (?P<text>.*?)" + _END,
    "SORT": r"^SORT (?P<text>.*?)" + _END,
    "STAT": r"^STAT (?P<text>.*?)" + _END,
    # the timing keys always come in this order when present (§7.1), whatever the version
    "RESULT": r"^RESULT err=(?P<err>-?\d+) tag=(?P<tag>\d+) nentries=(?P<nentries>-?\d+)"
              r"(?: wqtime=(?P<wqtime>[\d.]+))?(?: wtime=(?P<wtime>[\d.]+))?"
              r"(?: optime=(?P<optime>[\d.]+))?(?: writetime=(?P<writetime>[\d.]+))?"
              r"(?: etime=(?P<etime>[\d.]+))?",
})

# The other RESULT segments come in several orders (389ds-access-log.md §7.1), so each is
# found by its key; `guard` is a cheap substring test that skips rows without it.
RESULT_FIELDS = (
    ("notes", " notes=", r" notes=([A-Z](?:,[A-Z])*)"),
    ("details", " details=", r' details="(.*?)"'),
    ("csn", " csn=", r" csn=(\S+)"),
    ("pr_idx", " pr_idx=", r" pr_idx=(-?\d+)"),
    ("pr_cookie", " pr_cookie=", r" pr_cookie=(-?\d+)"),
    ("sid", ' sid="', r' sid="(.*?)"'),
    ("dn", ' dn="', r' dn="(.*)"\s*$'),
    # free text: " - text" after the key=value segments, or ", SASL bind in progress"
    ("text", " - ", r'^RESULT(?: [a-z_]+=(?:"[^"]*"|\S+))* - (.*?)(?: sid="[^"]*")?\s*$'),
    ("text", ", ", r"^RESULT[^,]*?, (SASL bind in progress)"),
)
TIME_FIELDS = ("wqtime", "wtime", "optime", "writetime", "etime")

# Strict patterns for the common layouts of the busiest kinds. A value runs to the
# next quote instead of to whatever the rest of the line allows, which lets the regex
# engine capture in one pass: two to three times faster than the general pattern.
# Where a strict pattern matches, the general one gives the same fields (the first
# quote is also the lazy match's first try); rows it does not match take the general
# pattern. tests/test_logline.py checks that equivalence line by line.
FAST_PATTERNS = MappingProxyType({
    "SRCH": r'^SRCH base="(?P<base>[^"]*)" scope=(?P<scope>\d+) filter="(?P<filter>[^"]*)"'
            r' attrs=(?:(?P<attrs_all>ALL)|"(?P<attrs>[^"]*)")(?: options=(?P<options>\S+))?\n$',
    "BIND": r'^BIND dn="(?P<dn>[^"]*)" method=(?P<method>\S+) version=(?P<version>\d+)'
            r"(?: mech=(?P<mech>[^\s,]+))?\n$",
    "CONNECT": r"^fd=(?P<fd>\d+) slot=\d+ (?P<ssl>SSL )?connection from (?P<client_ip>\S+)"
               r" to (?P<server_ip>\S+)\n$",
    "CLOSE": r"^fd=(?P<fd>\d+) Disconnect - (?P<close_reason>[^\n]*) - (?P<close_code>[A-Z]\d)\n$",
    "UNBIND": r"^UNBIND\n$",
    "ADD": r'^ADD dn="(?P<dn>[^"]*)"\n$',
    "MOD": r'^MOD dn="(?P<dn>[^"]*)"\n$',
    "DEL": r'^DEL dn="(?P<dn>[^"]*)"\n$',
})
# The usual RESULT layout of 389 DS 1.4.3 to 3.x, checked before it is cut at spaces;
# the segments after etime (notes, details, dn, ...) go to RESULT_FIELDS.
RESULT_LAYOUT = (r"^RESULT err=\d+ tag=\d+ nentries=\d+ wtime=[\d.]+ optime=[\d.]+ etime=[\d.]+"
                 r"(?: [^\n]*)?\n$")
RESULT_SPLIT = ("err", "tag", "nentries", "wtime", "optime", "etime")
# What usually follows etime, in this order; a strict pattern, as in FAST_PATTERNS.
RESULT_TAIL = (r'^RESULT(?: notes=(?P<notes>[A-Z](?:,[A-Z])*))?(?: details="(?P<details>[^"]*)")?'
               r"(?: pr_idx=(?P<pr_idx>-?\d+) pr_cookie=(?P<pr_cookie>-?\d+))?"
               r'(?: csn=(?P<csn>\S+))?(?: dn="(?P<dn>[^"]*)")?$')
# RESULT_FIELDS look for their keys anywhere, so a quoted value that contains one of
# these would give other fields there: such rows take RESULT_FIELDS.
RESULT_TAIL_SUSPECT = (r' notes=| details=| csn=| pr_idx=| pr_cookie=| sid="| - '
                       r"|, SASL bind in progress")

# Kind of a body from its first word; "fd=" lines and TLS lines are settled later.
FD_LINE, MAYBE_TLS = "fd=", "TLS?"
WORD_KINDS = MappingProxyType({
    **{k: k for k in (
        "BIND", "SRCH", "ADD", "MOD", "DEL", "MODRDN", "CMP", "EXT", "EXT_INFO", "ABANDON",
        "UNBIND", "UNPROCESSED", "RESULT", "ENTRY", "REFERRAL", "VLV", "SORT", "STAT",
        "AUTOBIND",
    )},
    "fd": FD_LINE, "TLS": MAYBE_TLS, "SSL": MAYBE_TLS, "Netscape": MAYBE_TLS,
})

INT_FIELDS = ("fd", "version", "scope", "msgid", "err", "tag", "nentries", "pr_idx", "pr_cookie")


@dataclass(frozen=True)
class ParseResult:
    """What one block of log text became.

    Attributes:
        events: one row per parsed line (``schema.EVENT_SCHEMA``).
        rejects: one row per line that did not parse (``schema.REJECT_SCHEMA``).
        counts: line accounting, ``total = parsed + rejected + header + blank``.
        carry: bytes after the last newline when the block was not final.
    """

    events: pl.DataFrame
    rejects: pl.DataFrame
    counts: dict[str, int]
    carry: bytes = b""


def split_lines(data: bytes) -> tuple[pl.Series, bytes]:
    """Cut a block into lines (newlines kept) without a Python loop.

    Returns the complete lines and the bytes after the last newline.

    >>> lines, rest = split_lines(b"a\\nbc\\nd")
    >>> lines.to_list(), rest
    (['a\\n', 'bc\\n'], b'd')
    """
    text = _lines_of(data)
    if text is None:  # invalid UTF-8 (client-supplied bytes): keep the lines, lossily
        data = data.decode("utf-8", "replace").encode("utf-8")
        text = _lines_of(data)
        if text is None:
            raise LogParseError("lossy UTF-8 decoding still gave invalid UTF-8")
    cut = data.rfind(b"\n") + 1
    return text, data[cut:]


def _lines_of(data: bytes) -> pl.Series | None:
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    binary = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    try:  # polars validates UTF-8 in bulk; the common case costs no Python decode
        return pl.Series("line", pl.from_arrow(binary)).cast(pl.String)
    except pl.exceptions.ComputeError:
        return None


def parse_lines(
    data: bytes,
    *,
    server: str,
    file: str,
    file_seq: int = 0,
    first_line: int = 1,
    final: bool = True,
    errors: Errors = "collect",
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

    Returns:
        A ``ParseResult``.
    """
    lines, tail = split_lines(data)
    carry = b""
    if tail:
        if final:
            lines = pl.concat([lines, pl.Series("line", [tail.decode("utf-8", "replace")])])
        else:
            carry = tail
    df = pl.DataFrame({"line_text": lines}).with_row_index("idx")
    df = df.with_columns((pl.col("idx").cast(pl.Int64) + first_line).alias("line"))
    # checked with a capture-free regex; only the other lines need a closer look
    is_event = df.select(pl.col("line_text").str.contains(EVENT_HEAD)).to_series()
    if tail and final:  # a last line without its newline: the file was cut or is being written
        is_event = is_event.scatter(df.height - 1, False)
    others = df.filter(~is_event).with_columns(_classify(pl.col("line_text")).alias("cls"))
    if tail and final:
        others = others.with_columns(
            pl.when(pl.col("idx") == df.height - 1).then(pl.lit("truncated"))
            .otherwise(pl.col("cls")).alias("cls")
        )
    events, kind_rejects = _parse_events(df if is_event.all() else df.filter(is_event))
    events = events.with_columns(
        server=pl.lit(server), file=pl.lit(file), file_seq=pl.lit(file_seq, pl.Int32)
    )
    rejects = pl.concat([
        _rejects_of(others.filter(pl.col("cls") == "junk"),
                    "not an access-log event: expected '[timestamp] conn=N ...'"),
        _rejects_of(others.filter(pl.col("cls") == "truncated"),
                    "truncated last line: no newline (file being written or cut)"),
        kind_rejects,
    ]).sort("line")
    counts = {
        "total": df.height,
        "parsed": events.height,
        "rejected": rejects.height,
        "header": int((others["cls"] == "header").sum()),
        "blank": int((others["cls"] == "blank").sum()),
    }
    if rejects.height and errors == "raise":
        first = rejects.row(0, named=True)
        raise LogParseError(
            f"unparsable line: {first['text'][:200]!r} ({server}:{file} line {first['line']}): "
            f"{first['reason']}"
        )
    rejects = rejects.with_columns(server=pl.lit(server), file=pl.lit(file))
    if errors == "ignore":
        rejects = rejects.clear()
    return ParseResult(
        events=events,
        rejects=conform(rejects, REJECT_SCHEMA),
        counts=counts,
        carry=carry,
    )


def _classify(line: pl.Expr) -> pl.Expr:
    # for lines that are not events
    stripped = line.str.strip_chars_end("\r\n")
    return (
        pl.when(stripped.str.strip_chars() == "").then(pl.lit("blank"))
        .when(stripped.str.starts_with("\t")).then(pl.lit("header"))  # title block (§1)
        .otherwise(pl.lit("junk"))
    )


def _rejects_of(df: pl.DataFrame, reason: str) -> pl.DataFrame:
    return df.select(
        "line",
        pl.col("line_text").str.strip_chars_end("\r\n").str.slice(0, REJECT_TEXT_LIMIT)
        .alias("text"),
        pl.lit(reason).alias("reason"),
    )


def _parse_events(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    df = _head_columns(events)
    parsed: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    texts = df.select("idx", "line_text")  # only rejects need the raw line again
    df = df.drop("line_text")
    for (kind,), part in df.partition_by("kind", as_dict=True, maintain_order=False).items():
        if kind is None:
            rejects.append(_body_rejects(part, texts, "unknown event keyword"))
            continue
        for resolved, group in _resolve_kind(kind, part):
            if resolved is None:
                rejects.append(_body_rejects(group, texts, "unknown event keyword"))
                continue
            done, bad = _kind_fields(resolved, group)
            parsed.extend(done)
            if bad.height:
                rejects.append(_body_rejects(bad, texts, f"malformed {resolved} line"))
    # Row order inside a block does not matter downstream (stage B sorts), so
    # the kinds are stacked as they are: no sort, no re-layout of the columns.
    events = pl.concat(parsed, rechunk=False) if parsed else pl.DataFrame(schema=dict(EVENT_SCHEMA))
    reject_df = (
        pl.concat(rejects) if rejects else pl.DataFrame(schema={"line": pl.Int64,
                                                                 "text": pl.String,
                                                                 "reason": pl.String})
    )
    return events, reject_df


def _head_columns(events: pl.DataFrame) -> pl.DataFrame:
    """Timestamp, ids and body of every event line (steps 2 and 3 of the module doc)."""
    line = pl.col("line_text")
    hires = events.select(line.str.slice(21, 1) == ".").to_series()
    # A file keeps one timestamp form, so the offsets are constants in the common case.
    if hires.all():
        hires_expr, body_at = pl.lit(True), pl.lit(HIRES_BODY_AT)
    elif not hires.any():
        hires_expr, body_at = pl.lit(False), pl.lit(SECONDS_BODY_AT)
    else:  # a column, so that it follows the rows through filters
        events = events.with_columns(hires.alias("hires"))
        hires_expr = pl.col("hires")
        body_at = pl.when(hires_expr).then(HIRES_BODY_AT).otherwise(SECONDS_BODY_AT)
    long = events.select(line.str.len_bytes() >= TRUNCATION_LIMIT).to_series()
    truncated = (pl.lit(long) & line.str.contains(r"\.\.\.\r?\n?$")) if long.any() \
        else pl.lit(False)
    df = events.with_columns(line.str.slice(body_at - 7, 5).alias("tz"),
                             truncated.alias("truncated"))
    df = df.with_columns(_timestamp(line, hires_expr, _utc_offset_minutes(df["tz"])).alias("ts"))
    df = _plain_ids(df, body_at + 5)
    plain = df["body_at"].is_not_null()
    if not plain.all():  # the rest take the general (slower) way
        general = _general_ids(df.filter(~plain).drop("conn", "op", "body_at"), body_at + 5)
        df = pl.concat([df.filter(plain), general], how="diagonal")
    body = pl.when(pl.col("body_at").is_not_null()) \
        .then(line.str.slice(pl.col("body_at"))).otherwise(pl.col("body")) \
        if "body" in df.columns else line.str.slice(pl.col("body_at"))
    kind = pl.col("word").replace_strict(dict(WORD_KINDS), default=None)
    df = df.with_columns(body.alias("body"), kind.alias("kind"))
    unsure = df["kind"].is_null()  # no whole word in the window, or not a plain keyword
    if unsure.any():
        rows = unsure.arg_true()
        df = df.with_columns(df["kind"].scatter(rows, df[rows].select(_kind(pl.col("body")))
                                                .to_series()))
    return df.drop("body_at", "hires", "word", strict=False)


# Ids of a plain line: "conn=N op=M " or "conn=N " (no op), and the first word after
# them, from a short window after "conn=" cut at spaces (short strings are stored inline:
# no copy of the whole line). A word counts only if a space ends it inside the window.
def _plain_ids(df: pl.DataFrame, conn_at: pl.Expr) -> pl.DataFrame:
    words = df.select(pl.col("line_text").str.slice(conn_at, 40).str.split_exact(" ", 3),
                      conn_at.alias("conn_at")).unnest("line_text")
    conn_at = pl.col("conn_at")  # a constant, or per row when the timestamp forms mix
    w0, w1, w2, w3 = (pl.col(f"field_{i}") for i in range(4))
    has_op = w1.str.starts_with("op=")
    words = words.with_columns(
        w0.cast(pl.Int64, strict=False).alias("conn"),
        has_op.alias("has_op"),
        pl.when(has_op).then(w1.str.slice(3).cast(pl.Int64, strict=False)).alias("op"),
    )
    plain = (pl.col("conn").is_not_null() & w1.is_not_null() & ~w1.str.starts_with("(")
             & (~pl.col("has_op") | pl.col("op").is_not_null()))
    words = words.select(
        "conn", "op",
        pl.lit(False).alias("internal"),
        pl.lit(None, pl.Int64).alias("op_internal"),
        pl.lit(None, pl.Int64).alias("op_nested"),
        pl.when(plain).then(
            conn_at + w0.str.len_bytes() + 1
            + pl.when("has_op").then(w1.str.len_bytes() + 1).otherwise(0)
        ).alias("body_at"),
        pl.when(plain & pl.col("has_op") & w3.is_not_null()).then(w2)
        .when(plain & ~pl.col("has_op") & w2.is_not_null()).then(w1).alias("word"),
    )
    return pl.concat([df, words], how="horizontal")


def _general_ids(df: pl.DataFrame, conn_at: pl.Expr) -> pl.DataFrame:
    # conn=Internal(N), conn=N (Internal), op=O(i)(n) and anything else EVENT_HEAD admits
    line = pl.col("line_text")
    df = df.with_columns(line.str.slice(conn_at).alias("rest"))
    rest = pl.col("rest")
    conn_end = rest.str.find(" ", literal=True)
    df = df.with_columns(
        rest.str.slice(0, conn_end).alias("conn_tok"),
        rest.str.slice(conn_end + 1).alias("rest"),
    )
    marker = rest.str.starts_with("(Internal) ")
    df = df.with_columns(
        pl.when(marker).then(rest.str.slice(11)).otherwise(rest).alias("rest"),
        (pl.col("conn_tok").str.starts_with("Internal") | marker).alias("internal"),
    )
    has_op = rest.str.starts_with("op=")
    op_end = rest.str.find(" ", literal=True)
    df = df.with_columns(
        pl.col("conn_tok").cast(pl.Int64, strict=False).alias("conn"),
        pl.when(has_op).then(rest.str.slice(3, op_end - 3)).alias("op_tok"),
        pl.when(has_op).then(rest.str.slice(op_end + 1)).otherwise(rest).alias("body"),
    )
    return df.with_columns(*_op_columns(df["op_tok"])).drop("rest", "conn_tok", "op_tok")


def _timestamp(line: pl.Expr, hires: pl.Expr, offset_min: pl.Expr) -> pl.Expr:
    # strptime caches its results, and whole seconds repeat for many lines.
    local = line.str.slice(1, 20).str.strptime(
        pl.Datetime("ns"), "%d/%b/%Y:%H:%M:%S", strict=False, cache=True
    ).dt.epoch("ns")
    nanos = pl.when(hires).then(line.str.slice(22, 9).cast(pl.Int64, strict=False)).otherwise(0)
    return local + nanos - offset_min * 60_000_000_000


def _utc_offset_minutes(tz: pl.Series) -> pl.Expr:
    """``+hhmm``/``-hhmm`` as minutes; a scalar when the block has one offset (usual)."""
    if tz.len() and (tz == tz[0]).all():
        tz = tz.head(1)
    hhmm = tz.cast(pl.Int64, strict=False)  # "+0530" -> 530, "-0500" -> -500
    minutes = hhmm.sign() * ((hhmm.abs() // 100) * 60 + hhmm.abs() % 100)
    return pl.lit(minutes[0]) if minutes.len() == 1 else pl.lit(minutes)


def _kind(body: pl.Expr) -> pl.Expr:
    # The first word decides, except for "fd=" and TLS lines, which _resolve_kind
    # settles on their (few) rows only.
    word = body.str.extract(r"^([A-Za-z_]+)", 1)
    return word.replace_strict(dict(WORD_KINDS), default=None)


def _resolve_kind(kind: str, part: pl.DataFrame) -> list[tuple[str | None, pl.DataFrame]]:
    body = pl.col("body")
    if kind == FD_LINE:
        connect = part.select(body.str.contains(r"^fd=\d+ slot=\d+ (?:SSL )?connection from "))
        haproxy = part.select(body.str.contains(r"^fd=\d+ HAProxy "))
        connect, haproxy = connect.to_series(), haproxy.to_series() & ~connect.to_series()
        groups = [("CONNECT", part.filter(connect)), ("HAPROXY", part.filter(haproxy)),
                  ("CLOSE", part.filter(~connect & ~haproxy))]
        return [(k, g.with_columns(kind=pl.lit(k))) for k, g in groups if g.height]
    if kind == MAYBE_TLS:
        tls = part.select(body.str.contains(
            r"^(?:(?:TLS|SSL)[\d.]+ |Netscape Portable Runtime error |SSL failed)")).to_series()
        groups = [("TLS", part.filter(tls)), (None, part.filter(~tls))]
        return [(k, g.with_columns(kind=pl.lit(k, pl.String))) for k, g in groups if g.height]
    return [(kind, part)]


def _kind_fields(kind: str, part: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """The fields of one kind's rows: the strict pattern first, the general one for the rest.

    Returns the parsed tables (in ``EVENT_SCHEMA``) and the rows no pattern matched.
    """
    done: list[pl.DataFrame] = []
    if kind == "RESULT":
        matched, part = _split_result(part)
        if matched.height:
            done.append(conform(_finish_kind(matched, kind), EVENT_SCHEMA))
    for pattern in (FAST_PATTERNS.get(kind), KIND_PATTERNS[kind]):
        if pattern is None or not part.height:
            continue
        # an empty group: "" when the pattern matched, null when it did not
        fields = part.select(pl.col("body").str.extract_groups("(?P<matched>)" + pattern)) \
            .unnest("body")
        ok = fields["matched"].is_not_null()
        fields = fields.drop("matched")
        matched, fields = (part, fields) if ok.all() else (part.filter(ok), fields.filter(ok))
        part = part.filter(~ok)
        if matched.height:
            matched = pl.concat([matched, fields], how="horizontal")
            if kind == "RESULT":
                matched = _result_fields(matched)
            done.append(conform(_finish_kind(matched, kind), EVENT_SCHEMA))
    return done, part


def _split_result(part: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """RESULT rows of the usual layout, cut at spaces (faster than capture groups).

    Returns the rows with their fields and the rows of another layout.
    """
    ok = part.select(pl.col("body").str.contains(RESULT_LAYOUT)).to_series()
    matched, rest = (part, part.clear()) if ok.all() else (part.filter(ok), part.filter(~ok))
    if not matched.height:
        return matched, rest
    pieces = matched.select(
        pl.col("body").str.strip_chars_end("\n").str.splitn(" ", len(RESULT_SPLIT) + 2)
    ).unnest("body")
    values = [
        pieces[f"field_{i + 1}"].str.slice(len(name) + 1).alias(name)
        for i, name in enumerate(RESULT_SPLIT)
    ]
    # the rest, behind the keyword, as RESULT_FIELDS expect it (they skip key=value words)
    tail = ("RESULT " + pieces[f"field_{len(RESULT_SPLIT) + 1}"]).alias("body")
    matched = matched.drop("body").with_columns(*values, tail)
    has_tail = matched["body"].is_not_null()
    if not has_tail.any():
        return matched.drop("body"), rest
    tails = matched.filter(has_tail)
    fields = tails.select(pl.col("body").str.extract_groups("(?P<matched>)" + RESULT_TAIL))\
        .unnest("body")
    quoted = pl.any_horizontal(
        pl.col(c).str.contains(RESULT_TAIL_SUSPECT).fill_null(False) for c in ("details", "dn"))
    ok = fields.select(pl.col("matched").is_not_null() & ~quoted).to_series()
    fields = fields.drop("matched")
    return pl.concat([
        matched.filter(~has_tail).drop("body"),
        pl.concat([tails.filter(ok), fields.filter(ok)], how="horizontal").drop("body"),
        _result_fields(tails.filter(~ok)).drop("body"),
    ], how="diagonal"), rest


def _op_columns(op_tok: pl.Series) -> list[pl.Expr]:
    op = pl.col("op_tok")
    if not op_tok.str.contains("(", literal=True).any():
        return [op.cast(pl.Int64, strict=False).alias("op"),
                pl.lit(None, pl.Int64).alias("op_internal"),
                pl.lit(None, pl.Int64).alias("op_nested")]
    has_nest = op.str.contains("(", literal=True)
    nested = op.str.extract_groups(r"^-?\d+\((?P<i>\d+)\)\((?P<n>\d+)\)$")
    return [
        pl.when(has_nest).then(op.str.extract(r"^(-?\d+)", 1)).otherwise(op)
        .cast(pl.Int64, strict=False).alias("op"),
        pl.when(has_nest).then(nested.struct.field("i")).cast(pl.Int64, strict=False)
        .alias("op_internal"),
        pl.when(has_nest).then(nested.struct.field("n")).cast(pl.Int64, strict=False)
        .alias("op_nested"),
    ]


def _result_fields(part: pl.DataFrame) -> pl.DataFrame:
    body = pl.col("body")
    found: dict[str, pl.Series] = {}
    for name, guard, pattern in RESULT_FIELDS:
        mask = part["body"].str.contains(guard, literal=True)
        if not mask.any():
            continue
        if mask.all():  # the usual timing keys: no need to filter and scatter
            column = part.select(body.str.extract(pattern, 1)).to_series().rename(name)
            found[name] = found[name].fill_null(column) if name in found else column
            continue
        values = part.filter(mask).select(body.str.extract(pattern, 1)).to_series()
        column = pl.Series(name, [None] * part.height, dtype=pl.String).scatter(
            mask.arg_true(), values
        )
        found[name] = found[name].fill_null(column) if name in found else column
    return part.drop([c for c in found if c in part.columns]).with_columns(
        [s.alias(n) for n, s in found.items()]
    )


def _etime(value: pl.Series) -> pl.Series:
    # 1.4.0–1.4.2 (and ABANDON always) print a zero then nine digits: the last nine are the ns.
    length = value.str.len_bytes()
    longest = length.max()
    if not longest or longest < 12:  # too short for "0." and ten digits
        return value.cast(pl.Float64, strict=False)
    dot = value.str.find(".", literal=True)
    ten = (length - dot) == 11
    if ten.any():
        value = pl.select(pl.when(ten).then(value.str.slice(0, dot + 1) + value.str.slice(-9))
                          .otherwise(value)).to_series()
    return value.cast(pl.Float64, strict=False)


def _finish_kind(part: pl.DataFrame, kind: str) -> pl.DataFrame:
    exprs: list[pl.Expr] = []
    for name in INT_FIELDS:
        if name in part.columns:
            exprs.append(pl.col(name).cast(pl.Int64, strict=False))
    for name in TIME_FIELDS:
        if name in part.columns:
            exprs.append(pl.lit(_etime(part[name])).alias(name))
    if "ssl" in part.columns:
        exprs.append(pl.col("ssl").is_not_null())
    if "attrs_all" in part.columns:
        exprs.append(pl.coalesce("attrs_all", "attrs").alias("attrs"))
    if kind in ("VLV", "SORT", "STAT", "TLS", "REFERRAL", "EXT_INFO") and "text" in part.columns:
        exprs.append(pl.col("text").str.strip_chars_end())
    if exprs:
        part = part.with_columns(exprs)
    return part.drop(
        [c for c in ("body", "line_text", "attrs_all", "idx", "cls") if c in part.columns]
    )


def _body_rejects(part: pl.DataFrame, texts: pl.DataFrame, reason: str) -> pl.DataFrame:
    return part.join(texts, on="idx", how="left").select(
        "line",
        pl.col("line_text").str.strip_chars_end("\r\n").str.slice(0, REJECT_TEXT_LIMIT)
        .alias("text"),
        (pl.lit(reason + ": ") + pl.col("body").str.extract(r"^(\S{0,40})", 1)).alias("reason"),
    )
