"""389 DS 3.x JSON access log (``json`` and ``json-pretty``) → the same events table.

JSON logs carry named fields, so there is no grammar to apply: each object is
mapped onto the text parser's columns (389ds-access-log.md §11). Events are
rare enough in JSON fleets today that a per-object Python loop is fine.

>>> r = parse_json_lines(b'{"local_time":"2025-07-28T23:41:31.354305288 +0000",'
...     b'"operation":"SEARCH","key":"1753746090-1","conn_id":1,"op_id":7,'
...     b'"base_dn":"dc=example,dc=com","scope":2,"filter":"(idontexist=*)"}\\n',
...     server="ds3", file="access")
>>> r.events.select("kind", "conn", "op", "base", "scope", "filter").row(0)
('SRCH', 1, 7, 'dc=example,dc=com', 2, '(idontexist=*)')
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from types import MappingProxyType
from typing import Any

import polars as pl

from .errors import LogParseError
from .logline import Errors, ParseResult
from .schema import EVENT_SCHEMA, REJECT_SCHEMA, REJECT_TEXT_LIMIT, conform

# JSON "operation" → our kind.
OPERATION_KINDS = MappingProxyType({
    "CONNECTION": "CONNECT", "DISCONNECT": "CLOSE", "HAPROXY": "HAPROXY",
    "TLS_INFO": "TLS", "TLS_CLIENT_INFO": "TLS", "AUTOBIND": "AUTOBIND",
    "BIND": "BIND", "SEARCH": "SRCH", "ADD": "ADD", "MODIFY": "MOD", "DELETE": "DEL",
    "MODRDN": "MODRDN", "COMPARE": "CMP", "EXTENDED_OP": "EXT",
    "EXTENDED_OP_INFO": "EXT_INFO", "ABANDON": "ABANDON", "UNBIND": "UNBIND",
    "RESULT": "RESULT", "ENTRY": "ENTRY", "REFERRAL": "REFERRAL", "VLV": "VLV",
    "SORT": "SORT", "STAT": "STAT", "ERROR": "UNPROCESSED",
    # generic error events overwrite "operation" with the legacy verb (§11.3)
    "SRCH": "SRCH", "MOD": "MOD", "DEL": "DEL", "CMP": "CMP", "EXT": "EXT",
})

# JSON key → our column, for keys whose meaning is the same everywhere.
RENAMES = MappingProxyType({
    "fd": "fd", "client_ip": "client_ip", "server_ip": "server_ip", "tls_version": "tls_version",
    "bind_dn": "dn", "target_dn": "dn", "base_dn": "base", "scope": "scope", "filter": "filter",
    "version": "version", "method": "method", "mech": "mech", "authzid": "authzid",
    "newrdn": "newrdn", "newsup": "newsuperior", "cmp_attr": "attr", "oid": "oid",
    "name": "name", "target_op": "targetop", "msgid": "msgid", "err": "err", "tag": "tag",
    "nentries": "nentries", "csn": "csn", "pr_idx": "pr_idx", "pr_cookie": "pr_cookie",
    "sid": "sid", "msg": "text",
})
TIME_KEYS = ("wqtime", "wtime", "optime", "writetime", "etime")
_LOCAL_TIME = re.compile(r"^(?P<t>.*?)(?:\.(?P<ns>\d{9}))? (?P<tz>[+-]\d{4})$")
_CLOSE_CODE = re.compile(r"(?:^|- )([A-Z]\d)\s*$")


def is_json_log(head: bytes) -> bool:
    """Whether a file's first non-blank bytes open a JSON object.

    >>> is_json_log(b'\\n{"header": {}}'), is_json_log(b'[26/Nov/2026:16:20:10 +0000] conn=1')
    (True, False)
    """
    return head.lstrip()[:1] == b"{"


def parse_json_lines(
    data: bytes, *, server: str, file: str, file_seq: int = 0, first_line: int = 1,
    errors: Errors = "collect",
) -> ParseResult:
    """Parse a whole JSON access log (one object per line, or pretty-printed).

    Args:
        data: the file's bytes.
        server, file, file_seq, first_line: provenance, as for ``parse_lines``.
        errors: as for ``parse_lines``.

    Returns:
        A ``ParseResult``; a line belonging to an object that is not valid
        JSON (for example cut at 2048 bytes, ending in ``...}``) is a reject.
    """
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    counts = {"total": 0, "parsed": 0, "rejected": 0, "header": 0, "blank": 0}
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    counts["total"] = len(lines)
    pending: list[str] = []
    start = 0
    depth = 0
    for i, raw in enumerate(lines):
        line_no = first_line + i
        stripped = raw.strip()
        if not pending:
            if not stripped:
                counts["blank"] += 1
                continue
            start = line_no
        elif raw.startswith("{"):  # a new top-level object: the pending one was broken
            for k, text in enumerate(pending):
                rejects.append({"line": start + k, "text": text,
                                "reason": "JSON event without its closing brace"})
            pending, depth, start = [], 0, line_no
        # One line that opens and closes an object is one event (the `json` format), even
        # where a value was cut inside its quotes; json-pretty objects span lines until
        # their braces balance.
        whole_line = not pending and stripped.startswith("{") and stripped.endswith("}")
        pending.append(raw)
        depth += _depth_change(raw)
        if not whole_line and depth > 0 and i + 1 < len(lines):
            continue
        chunk = "\n".join(pending)
        n_lines = len(pending)
        pending, depth = [], 0
        try:
            obj = json.loads(chunk)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            reason = f"invalid JSON event: {e}"
            if chunk.rstrip().endswith("...}"):
                reason = "JSON event cut at the server's 2048-byte limit"
            for k in range(n_lines):
                rejects.append({"line": start + k, "text": lines[start - first_line + k],
                                "reason": reason})
            continue
        if "header" in obj:
            counts["header"] += n_lines
            continue
        row, problem = _event_row(obj)
        if problem:
            for k in range(n_lines):
                rejects.append({"line": start + k, "text": lines[start - first_line + k],
                                "reason": problem})
            continue
        problem = _wrong_type(row)
        if problem:
            for k in range(n_lines):
                rejects.append({"line": start + k, "text": lines[start - first_line + k],
                                "reason": problem})
            continue
        row["line"] = start
        rows.append(row)
        counts["parsed"] += n_lines  # lines, not events: a json-pretty event spans several
    counts["rejected"] = len(rejects)
    if rejects and errors == "raise":
        r = rejects[0]
        raise LogParseError(f"unparsable JSON event ({server}:{file} line {r['line']}): "
                            f"{r['reason']}")
    events = pl.DataFrame(rows, schema_overrides={k: v for k, v in EVENT_SCHEMA.items()
                                                  if any(k in r for r in rows)},
                          infer_schema_length=None) if rows else pl.DataFrame()
    events = conform(events.with_columns(server=pl.lit(server), file=pl.lit(file),
                                         file_seq=pl.lit(file_seq, pl.Int32)), EVENT_SCHEMA)
    reject_df = pl.DataFrame(rejects, schema={"line": pl.Int64, "text": pl.String,
                                              "reason": pl.String})
    reject_df = reject_df.with_columns(
        pl.col("text").str.slice(0, REJECT_TEXT_LIMIT), server=pl.lit(server), file=pl.lit(file)
    )
    if errors == "ignore":
        reject_df = reject_df.clear()
    return ParseResult.of_events(events, conform(reject_df, REJECT_SCHEMA), counts)


_PYTHON_TYPES = MappingProxyType({pl.Int64: (int,), pl.Int32: (int,), pl.String: (str,),
                                  pl.Float64: (float, int), pl.Boolean: (bool,)})


def _wrong_type(row: dict[str, Any]) -> str | None:
    """Why a value does not fit its column (e.g. ``"conn_id":"x"``), or None."""
    for key, value in row.items():
        if value is None or key not in EVENT_SCHEMA:
            continue
        kinds = _PYTHON_TYPES[EVENT_SCHEMA[key]]
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            return f"wrong type for {key}: {type(value).__name__} {str(value)[:40]!r}"
        if isinstance(value, int) and not -2**63 <= value < 2**63:
            return f"wrong type for {key}: {value} does not fit 64 bits"
    return None


def _depth_change(line: str) -> int:
    # Braces inside strings are rare in these logs but do occur in filters; skip quoted text.
    depth, in_str, escaped = 0, False, False
    for ch in line:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
    return depth


def _event_row(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    operation = obj.get("operation")
    kind = OPERATION_KINDS.get(str(operation))
    if kind is None:
        return {}, f"unknown JSON operation: {operation!r}"
    ts_tz = _timestamp(str(obj.get("local_time", "")))
    if ts_tz is None:
        return {}, f"bad local_time: {obj.get('local_time')!r}"
    internal = bool(obj.get("internal_op"))
    conn = obj.get("conn_id")
    row: dict[str, Any] = {
        "kind": kind, "ts": ts_tz[0], "tz": ts_tz[1],
        "conn": None if internal and conn == 0 else conn,
        "internal": internal, "op": obj.get("op_id"),
        "op_internal": obj.get("op_internal_id"),
        "op_nested": obj.get("op_internal_nested_count"),
        "truncated": False,
    }
    for key, column in RENAMES.items():
        if key in obj and not isinstance(obj[key], (list, dict)):
            row[column] = obj[key]
    for key in ("method", "targetop"):  # strings in the text format, sometimes ints in JSON
        if row.get(key) is not None:
            row[key] = str(row[key])
    for key in TIME_KEYS:
        if key in obj:
            row[key] = _seconds(str(obj[key]))
    if kind == "CONNECT":
        row["ssl"] = bool(obj.get("tls"))
    if kind == "HAPROXY":
        row["client_ip"], row["server_ip"] = obj.get("haproxy_ip"), obj.get("haproxy_destip")
    if kind == "CLOSE":
        reason = str(obj.get("close_reason", ""))
        m = _CLOSE_CODE.search(reason)
        row["close_code"] = m.group(1) if m else None
        row["close_reason"] = reason[: m.start()].rstrip(" -") if m else reason
        if obj.get("close_error"):
            row["close_reason"] = f"{obj['close_error']} - {row['close_reason']}"
    if kind == "SRCH":
        attrs = obj.get("attrs")
        row["attrs"] = "ALL" if attrs is None else " ".join(str(a) for a in attrs)
        if obj.get("psearch"):
            row["options"] = "persistent"
    if kind == "RESULT" and isinstance(obj.get("notes"), list):
        letters = [str(n.get("note", "")) for n in obj["notes"] if isinstance(n, dict)]
        row["notes"] = ",".join(letters)
        row["details"] = ",".join(str(n.get("description", "")) for n in obj["notes"]
                                  if isinstance(n, dict))
    if kind == "RESULT":
        # 3.x logs the bound DN on BIND results only; msg " - text" is the result text.
        text = row.get("text")
        if isinstance(text, str):
            text = text.removeprefix(" - ").strip()
            row["text"] = text or None
            if row["text"] == "SASL bind in progress" and obj.get("err") != 14:
                row["text"] = None  # the success branch reuses this message (§11.3)
        if "bind_dn" not in obj:
            row.pop("dn", None)
        row.pop("client_ip", None)
    if kind == "TLS":
        row["text"] = " ".join(str(obj[k]) for k in ("tls_version", "keysize", "cipher")
                               if k in obj)
        if obj.get("client_dn"):
            row["dn"] = obj["client_dn"]
    return row, None


def _timestamp(value: str) -> tuple[int, str] | None:
    m = _LOCAL_TIME.match(value)
    if not m:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%d/%b/%Y:%H:%M:%S"):
        try:
            local = datetime.strptime(m["t"], fmt)
            break
        except ValueError:
            continue
    else:
        return None
    tz = m["tz"]
    offset = (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 60 + int(tz[3:5]))
    # local wall time as if UTC, then shift by the offset
    seconds = int((local - datetime(1970, 1, 1)).total_seconds()) - offset * 60
    return seconds * 1_000_000_000 + int(m["ns"] or 0), tz


def _seconds(value: str) -> float | None:
    try:
        whole, _, frac = value.partition(".")
        if len(frac) == 10:  # the ABANDON etime keeps the old 10-digit form (§7.3)
            frac = frac[1:]
        return float(f"{whole}.{frac}" if frac else whole)
    except ValueError:
        return None
