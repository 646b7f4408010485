"""389 DS text access-log lines → a table of events, one row per line.

The parser is columnar: a block of bytes becomes one polars string column,
and each step below is a vectorised expression over all lines at once.

1. Split on newlines; classify each line as header (title lines start with a
   tab), blank, event (it matches ``EVENT_HEAD``) or reject.
2. Cut the timestamp at fixed positions (hi-res or seconds-only form) and
   convert it to UTC nanoseconds with the line's own offset.
3. Peel off ``conn=``, the optional ``(Internal)`` marker and ``op=`` with
   ``str.find``/``str.slice``; what is left is the *body*.
4. The body's first word decides the kind; each kind's fields come from one
   regex run only over the rows of that kind (``KIND_PATTERNS``).

Rows whose kind regex does not match become rejects with a reason; no line is
ever dropped. Capture-group regexes are the slow part, so they run on as few
rows as possible: one per kind, and the optional RESULT fields only on rows
that contain their key.

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

# Kind of a body from its first word.
FIRST_WORD_KINDS = MappingProxyType({
    k: k for k in (
        "BIND", "SRCH", "ADD", "MOD", "DEL", "MODRDN", "CMP", "EXT", "EXT_INFO", "ABANDON",
        "UNBIND", "UNPROCESSED", "RESULT", "ENTRY", "REFERRAL", "VLV", "SORT", "STAT",
        "AUTOBIND",
    )
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
    df = df.with_columns(
        (pl.col("idx").cast(pl.Int64) + first_line).alias("line"),
        _classify(pl.col("line_text")).alias("cls"),
    )
    if tail and final:  # a last line without its newline: the file was cut or is being written
        last = df.height - 1
        df = df.with_columns(
            pl.when(pl.col("idx") == last).then(pl.lit("truncated")).otherwise(pl.col("cls"))
            .alias("cls")
        )
    events, kind_rejects = _parse_events(
        df.filter(pl.col("cls") == "event").with_columns(
            server=pl.lit(server), file=pl.lit(file), file_seq=pl.lit(file_seq, pl.Int32)
        )
    )
    rejects = pl.concat([
        _rejects_of(df.filter(pl.col("cls") == "junk"),
                    "not an access-log event: expected '[timestamp] conn=N ...'"),
        _rejects_of(df.filter(pl.col("cls") == "truncated"),
                    "truncated last line: no newline (file being written or cut)"),
        kind_rejects,
    ]).sort("line")
    counts = {
        "total": df.height,
        "parsed": events.height,
        "rejected": rejects.height,
        "header": int((df["cls"] == "header").sum()),
        "blank": int((df["cls"] == "blank").sum()),
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
    stripped = line.str.strip_chars_end("\r\n")
    return (
        pl.when(line.str.contains(EVENT_HEAD)).then(pl.lit("event"))
        .when(stripped.str.strip_chars() == "").then(pl.lit("blank"))
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
    df = events.lazy()  # one plan: polars shares the repeated sub-expressions
    line = pl.col("line_text")
    hires = line.str.slice(21, 1) == "."
    body_at = pl.when(hires).then(HIRES_BODY_AT).otherwise(SECONDS_BODY_AT)
    df = df.with_columns(
        _timestamp(line, hires).alias("ts"),
        line.str.slice(pl.when(hires).then(32).otherwise(22), 5).alias("tz"),
        line.str.slice(body_at + 5).alias("after_conn"),
        (line.str.len_bytes() >= TRUNCATION_LIMIT)
        .and_(line.str.contains(r"\.\.\.\r?\n?$")).alias("truncated"),
    )
    after = pl.col("after_conn")
    conn_end = after.str.find(" ")
    df = df.with_columns(
        after.str.slice(0, conn_end).alias("conn_tok"),
        after.str.slice(conn_end + 1).alias("rest"),
    )
    rest = pl.col("rest")
    marker = rest.str.starts_with("(Internal) ")
    df = df.with_columns(
        pl.when(marker).then(rest.str.slice(11)).otherwise(rest).alias("rest"),
        (pl.col("conn_tok").str.starts_with("Internal") | marker).alias("internal"),
        pl.col("conn_tok").cast(pl.Int64, strict=False).alias("conn"),
    )
    has_op = rest.str.starts_with("op=")
    op_end = rest.str.find(" ")
    df = df.with_columns(
        pl.when(has_op).then(rest.str.slice(3, op_end - 3)).alias("op_tok"),
        pl.when(has_op).then(rest.str.slice(op_end + 1)).otherwise(rest).alias("body"),
    )
    df = df.with_columns(_kind(pl.col("body")).alias("kind"), *_op_columns())
    df = df.drop("after_conn", "conn_tok", "rest", "op_tok").collect()

    parsed: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    texts = df.select("idx", "line_text")  # only rejects need the raw line again
    df = df.drop("line_text")
    for (kind,), part in df.partition_by("kind", as_dict=True, maintain_order=False).items():
        if kind is None:
            rejects.append(_body_rejects(part, texts, "unknown event keyword"))
            continue
        pattern = "(?P<matched>)" + KIND_PATTERNS[kind]  # an empty group: "" when it matched
        fields = part.select(pl.col("body").str.extract_groups(pattern)).unnest("body")
        ok = fields["matched"].is_not_null()
        fields = fields.drop("matched")
        if not ok.all():
            rejects.append(_body_rejects(part.filter(~ok), texts, f"malformed {kind} line"))
            part, fields = part.filter(ok), fields.filter(ok)
        part = pl.concat([part, fields], how="horizontal")
        if kind == "RESULT":
            part = _result_fields(part)
        parsed.append(conform(_finish_kind(part, kind), EVENT_SCHEMA))
    # Row order inside a block does not matter downstream (stage B sorts), so
    # the kinds are stacked as they are: no sort, no re-layout of the columns.
    events = pl.concat(parsed, rechunk=False) if parsed else pl.DataFrame(schema=dict(EVENT_SCHEMA))
    reject_df = (
        pl.concat(rejects) if rejects else pl.DataFrame(schema={"line": pl.Int64,
                                                                 "text": pl.String,
                                                                 "reason": pl.String})
    )
    return events, reject_df


def _timestamp(line: pl.Expr, hires: pl.Expr) -> pl.Expr:
    # strptime caches its results, and whole seconds repeat for many lines.
    local = line.str.slice(1, 20).str.strptime(
        pl.Datetime("ns"), "%d/%b/%Y:%H:%M:%S", strict=False, cache=True
    ).dt.epoch("ns")
    nanos = pl.when(hires).then(line.str.slice(22, 9).cast(pl.Int64, strict=False)).otherwise(0)
    tz = line.str.slice(pl.when(hires).then(32).otherwise(22), 5)
    sign = pl.when(tz.str.slice(0, 1) == "-").then(-1).otherwise(1)
    offset_min = sign * (
        tz.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
        + tz.str.slice(3, 2).cast(pl.Int64, strict=False)
    )
    return local + nanos - offset_min * 60_000_000_000


def _kind(body: pl.Expr) -> pl.Expr:
    word = body.str.extract(r"^([A-Za-z_]+)", 1)
    return (
        pl.when(body.str.starts_with("fd="))
        .then(
            pl.when(body.str.contains(r"^fd=\d+ slot=\d+ (?:SSL )?connection from "))
            .then(pl.lit("CONNECT"))
            .when(body.str.contains(r"^fd=\d+ HAProxy ")).then(pl.lit("HAPROXY"))
            .otherwise(pl.lit("CLOSE"))
        )
        .when(body.str.contains(
            r"^(?:(?:TLS|SSL)[\d.]+ |Netscape Portable Runtime error |SSL failed)"))
        .then(pl.lit("TLS"))
        .otherwise(word.replace_strict(dict(FIRST_WORD_KINDS), default=None))
    )


def _op_columns() -> list[pl.Expr]:
    op_tok = pl.col("op_tok")
    has_nest = op_tok.str.contains(r"\(")
    nested = op_tok.str.extract_groups(r"^-?\d+\((?P<i>\d+)\)\((?P<n>\d+)\)$")
    return [
        pl.when(has_nest).then(op_tok.str.extract(r"^(-?\d+)", 1)).otherwise(op_tok)
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


def _etime(value: pl.Expr) -> pl.Expr:
    # 1.4.0–1.4.2 (and ABANDON always) print a zero then nine digits: the last nine are the ns.
    ten = value.str.contains(r"^\d+\.\d{10}$")
    fixed = value.str.extract(r"^(\d+\.)", 1) + value.str.slice(-9)
    return pl.when(ten).then(fixed).otherwise(value).cast(pl.Float64, strict=False)


def _finish_kind(part: pl.DataFrame, kind: str) -> pl.DataFrame:
    exprs: list[pl.Expr] = []
    for name in INT_FIELDS:
        if name in part.columns:
            exprs.append(pl.col(name).cast(pl.Int64, strict=False))
    for name in TIME_FIELDS:
        if name in part.columns:
            exprs.append(_etime(pl.col(name)).alias(name))
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
