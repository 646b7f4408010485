"""``dsaccess trace``: what one identity, client, connection or entry did, across the
fleet, in time order, from a run's operations table (``trace``) or from the logs
(``run.trace_logs``, whose tasks call ``select`` on each bucket's joined operations).

The selectors are ANDed; each repeated is ORed. The cheap ones (server, time, verb, err,
etime) are pushed down to the Parquet scan; DNs are compared as LDAP compares them
(``dn.canonical``) and addresses by network, each once per distinct value, and then
pushed down as a list of the values that match. Every matched operation's connection
brings its open and close and its BINDs, as context rows (``match`` false), so each
line reads with the identity and client it had. From logs, the selectors that follow a
connection first tell which connections to read at all (``suspects``,
``connections_to_read``).
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .. import _core
from ..errors import ConfigError
from ..names import err_name, scope_name, when
from ..tables import dn as dns
from ..tables import offsets

# the columns of a trace row, in order (the contract of --format jsonl/csv/parquet)
COLUMNS = ("time", "local_time", "server", "conn", "op", "verb", "bind_dn", "client_ip",
           "target", "scope", "filter", "err", "etime", "wtime", "match", "file", "line")
CONTEXT_VERBS = ("BIND",)  # a matched operation's connection shows these too
# the operations' columns a trace reads (of some sixty: the scan reads only these), with
# their types (operations.jsonl carries times as ISO text)
READ = {"server": pl.String, "session": pl.String, "conn": pl.Int64, "op": pl.Int64,
        "verb": pl.String, "ts": pl.String, "result_ts": pl.String, "bind_dn": pl.String,
        "client_ip": pl.String, "dn": pl.String, "base": pl.String, "scope": pl.Int64,
        "filter": pl.String, "err": pl.Int64, "etime": pl.Float64, "wtime": pl.Float64,
        "internal": pl.Boolean, "file": pl.String, "line": pl.Int64,
        "result_file": pl.String, "result_line": pl.Int64}
TIMES = ("session", "ts", "result_ts")


@dataclass(frozen=True)
class Selectors:
    bind_dns: tuple[str, ...] = ()
    client_ips: tuple[str, ...] = ()        # addresses or networks (CIDR)
    conns: tuple[tuple[str, int], ...] = ()  # (server, conn)
    targets: tuple[str, ...] = ()
    subtree: bool = False
    filter_values: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    errs: tuple[int, ...] = ()
    min_etime: float | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    servers: tuple[str, ...] = ()

    def check(self) -> Selectors:
        """Each value is what its flag takes, or a usage error naming the flag."""
        for value in (*self.bind_dns, *self.targets):
            problem = dn_problem(value)
            if problem:
                flag = "--bind-dn" if value in self.bind_dns else "--target"
                raise ConfigError(f"{flag}: not a DN: {value!r} ({problem})")
        for value in self.client_ips:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ConfigError(f"--client-ip: not an address or a network: {value!r} "
                                  "(use 10.1.2.3 or 10.1.2.0/24)") from None
        if self.subtree and not self.targets:
            raise ConfigError("--subtree: needs --target DN (the entry whose subtree)")
        if self.min_etime is not None and self.min_etime < 0:
            raise ConfigError(f"--min-etime: seconds, not negative: {self.min_etime}")
        return self


ESCAPE = re.compile(r'\\(?:[0-9A-Fa-f]{2}|[ "#+,;<=>\\])')


def dn_problem(text: str) -> str | None:
    """Why ``text`` is not an RFC 4514 DN, or None.

    >>> dn_problem("uid=a,ou=People,dc=x"), dn_problem(r"cn=a\\,b,dc=x"), dn_problem("")
    (None, None, None)
    >>> dn_problem(r"cn=a\\q,dc=x"), dn_problem("nobody")
    ('a bad escape at character 5', "'nobody' has no '='")
    """
    at = 0
    while (at := text.find("\\", at)) >= 0:
        if not ESCAPE.match(text, at):
            return f"a bad escape at character {at + 1}"
        at += 3 if re.match(r"\\[0-9A-Fa-f]{2}", text[at:]) else 2
    plain = ESCAPE.sub("x", text)
    for rdn in filter(None, (p.strip() for p in plain.split(","))) if text else ():
        if "=" not in rdn:
            return f"{rdn!r} has no '='"
    return None


def parse_conn(text: str) -> tuple[str, int]:
    """``SERVER:CONN`` → (server, conn), or a usage error."""
    server, sep, conn = text.rpartition(":")
    if not sep or not server or not conn.isdigit():
        raise ConfigError(f"--conn: not SERVER:CONN: {text!r} (for example ds1:1234)")
    return server, int(conn)


# the selectors whose matches a few lines of their connection give away, by their key
# among `suspects`' answers
FOLLOWED = {"bind_dn": "bind_dns", "client_ip": "client_ips", "filter_value": "filter_values",
            "target": "targets", "verb": "verbs", "err": "errs"}
# verbs and result codes on nearly every connection: following them would narrow nothing,
# and the first pass would read most lines
EVERYWHERE = {"verb": {"BIND", "SRCH", "UNBIND"}, "err": {0}}


def followed(sel: Selectors) -> list[str]:
    """The keys of ``FOLLOWED`` whose selectors are given and narrow the connections, and
    ``time`` for a window (the connections with a line in it)."""
    return [key for key, name in FOLLOWED.items() if getattr(sel, name)
            and not {_upper(v) for v in getattr(sel, name)} & EVERYWHERE.get(key, set())] \
        + (["time"] if sel.since_ns is not None or sel.until_ns is not None else [])


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def suspects(data: bytes, sel: Selectors) -> dict[str, list[int]]:
    """The client connections of a block of a text log that may hold a match, per selector
    ``followed`` (``rust/core/src/trace.rs``: a superset, found without tokenizing)."""
    keys = followed(sel)
    return _core.trace_suspects(
        data, bind_dns=list(sel.bind_dns), networks=list(sel.client_ips),
        filter_values=list(sel.filter_values), targets=list(sel.targets), subtree=sel.subtree,
        verbs=[v.upper() for v in sel.verbs] if "verb" in keys else [],
        errs=list(sel.errs) if "err" in keys else [], since=sel.since_ns, until=sel.until_ns)


def needs_suspects(sel: Selectors) -> bool:
    """Whether a selector narrows the connections, so a first pass finds which to read."""
    return bool(followed(sel))


def connections_to_read(server: str, found: list[dict[str, list[int]] | None],
                        sel: Selectors) -> list[int] | None:
    """The connections of ``server`` whose lines a trace from logs reads: those every
    selector ``followed`` may match, per ``found`` (each block's ``suspects``; None for a
    block that cannot say, a JSON log), and ``--conn``'s; None: every line."""
    picks: list[set[int]] = []
    if sel.conns:
        picks.append({c for s, c in sel.conns if s == server})
    if not any(f is None for f in found):
        picks += [set().union(*(f[key] for f in found if f is not None))
                  for key in followed(sel)]
    return sorted(set.intersection(*picks)) if picks else None


def is_output(path: Path) -> bool:
    """Whether ``path`` is a run's (or a merge's) output folder, not logs."""
    return (path / "run.json").is_file()


def operations_of(out: Path) -> pl.LazyFrame:
    """A run's operations (the columns ``READ``), as a lazy scan; a clear error when it
    has none."""
    if not (out / "run.json").exists():
        raise ConfigError(f"not the output of dsaccess run: {out} (no run.json)")
    if (out / "operations").is_dir():
        return pl.scan_parquet(out / "operations" / "**" / "*.parquet",
                               hive_partitioning=True).select(list(READ))
    if (out / "operations.jsonl").exists():
        return pl.scan_ndjson(out / "operations.jsonl", schema_overrides=READ).select(
            list(READ)).with_columns(pl.col(c).str.to_datetime(time_unit="ns", time_zone="UTC")
                                     for c in TIMES)
    raise ConfigError(f"{out} keeps no operations (run with --operations none, or a merge): "
                      "trace reads a run made with --operations parquet or jsonl")


def trace(out: Path, sel: Selectors) -> pl.DataFrame:
    """The matching operations of ``out`` and their connections' context, in time order
    (``COLUMNS``)."""
    conns = out / "connections.parquet"
    rows = select(operations_of(out), pl.scan_parquet(conns) if conns.exists() else None, sel)
    info = json.loads((out / "run.json").read_text())
    return with_local_times(rows, info.get("utc_offsets", {}))


def select(ops: pl.LazyFrame, connections: pl.LazyFrame | None, sel: Selectors
           ) -> pl.DataFrame:
    """The operations of ``ops`` that ``sel`` selects, with their connections' BINDs and,
    from ``connections`` (the connections table), their opens and closes, in time order
    (``COLUMNS`` but ``local_time``). Whole connections are in ``ops``: a run's table, or
    the buckets of a trace from logs."""
    ops = ops.filter(~pl.col("internal"))
    matched = ops.filter(_pushed(ops, sel)).collect()
    keys = matched.select("server", "session", "conn").unique()
    if not keys.height:
        return no_rows()
    # (the servers and numbers first: the scan skips the rest before the join)
    context = ops.filter(pl.col("verb").is_in(CONTEXT_VERBS)
                         & pl.col("server").is_in(keys["server"].unique().to_list())
                         & pl.col("conn").is_in(keys["conn"].unique().to_list())).join(
        keys.lazy(), on=["server", "session", "conn"], how="semi").collect()
    rows = pl.concat([matched.with_columns(pl.lit(True).alias("match")),
                      context.with_columns(pl.lit(False).alias("match"))], how="diagonal")
    rows = rows.unique(["server", "session", "conn", "op", "line"], keep="first",
                       maintain_order=True)
    return in_order(pl.concat([_op_rows(rows), _connection_rows(connections, keys)],
                              how="vertical"))


def in_order(rows: pl.DataFrame) -> pl.DataFrame:
    """A trace's rows in time order (and by server, connection, operation at one time)."""
    return rows.sort("time", "server", "conn", "op", nulls_last=True, maintain_order=True)


def with_local_times(rows: pl.DataFrame, utc_offsets: dict[str, list[Any]]) -> pl.DataFrame:
    """``rows`` with ``local_time``: each row's time as its server wrote it, ISO 8601 at
    the server's UTC offset then (``utc_offsets``: per server, the runs of one offset, as
    run.json keeps them); null where they were not recorded (a run made before)."""
    by_server = {s: offsets.merge(r) for s, r in utc_offsets.items()}
    tz = offsets.offset_at(rows, by_server)
    return rows.with_columns(offsets.local_text(pl.col("time"), pl.lit(tz)).alias("local_time"))


def _pushed(ops: pl.LazyFrame, sel: Selectors) -> pl.Expr:
    """One predicate: every selector given, each a list of values the scan can test."""
    parts: list[pl.Expr] = []
    when = pl.coalesce("ts", "result_ts")
    if sel.servers:
        parts.append(pl.col("server").is_in(sel.servers))
    if sel.since_ns is not None:
        parts.append(when >= _time(sel.since_ns))
    if sel.until_ns is not None:
        parts.append(when < _time(sel.until_ns))
    if sel.verbs:
        parts.append(pl.col("verb").is_in([v.upper() for v in sel.verbs]))
    if sel.errs:
        parts.append(pl.col("err").is_in(list(sel.errs)))
    if sel.min_etime is not None:
        parts.append(pl.col("etime") >= sel.min_etime)
    if sel.conns:
        parts.append(pl.any_horizontal(*((pl.col("server") == s) & (pl.col("conn") == c)
                                         for s, c in sel.conns)))
    if sel.bind_dns:
        wanted = {dns.canonical(d) for d in sel.bind_dns}
        issued = _spellings(ops, "bind_dn", lambda d: d in wanted)
        tried = _spellings(ops.filter(pl.col("verb") == "BIND"), "dn", lambda d: d in wanted)
        parts.append(pl.col("bind_dn").is_in(issued)
                     | ((pl.col("verb") == "BIND") & pl.col("dn").is_in(tried)))
    if sel.targets:
        wanted = {dns.canonical(d) for d in sel.targets}

        def under(d: str) -> bool:
            return d in wanted or (sel.subtree and any(d.endswith("," + w) for w in wanted))
        parts.append(pl.col("dn").is_in(_spellings(ops, "dn", under))
                     | pl.col("base").is_in(_spellings(ops, "base", under)))
    if sel.client_ips:
        networks = [ipaddress.ip_network(v, strict=False) for v in sel.client_ips]

        def inside(ip: str) -> bool:
            address = _address(ip)
            return address is not None and any(address in n for n in networks)
        parts.append(pl.col("client_ip").is_in(
            [ip for ip in _distinct(ops, "client_ip") if inside(ip)]))
    if sel.filter_values:
        text = pl.col("filter").str.to_lowercase()
        parts.append(pl.any_horizontal(*(text.str.contains(v.lower(), literal=True)
                                         for v in sel.filter_values)))
    return pl.all_horizontal(parts) if parts else pl.lit(True)


def _spellings(ops: pl.LazyFrame, column: str, keep: Any) -> list[str]:
    """The spellings in ``column`` whose LDAP comparison form ``keep`` accepts."""
    spelled = _distinct(ops, column)
    return [s for s, c in zip(spelled, dns.canonical_column(pl.Series(spelled, dtype=pl.String))
                              .to_list(), strict=True) if keep(c)]


def _distinct(ops: pl.LazyFrame, column: str) -> list[str]:
    """The values of ``column``, each once (a selector is tested per value, not per row)."""
    return ops.select(pl.col(column).unique()).collect()[column].drop_nulls().to_list()


def _address(text: str) -> Any:
    try:
        return ipaddress.ip_address(text)
    except ValueError:  # "local" (LDAPI), or an address the log cut
        return None


def _time(ns: int) -> pl.Expr:
    """UTC nanoseconds as a literal of the operations' time type (every digit kept: a
    Python datetime would cut to microseconds)."""
    return pl.lit(ns, pl.Int64).cast(pl.Datetime("ns", "UTC"))


def no_rows() -> pl.DataFrame:
    """A trace that matched nothing (``COLUMNS`` but ``local_time``)."""
    return pl.DataFrame(schema=_schema())


def _schema() -> dict[str, Any]:
    return {"time": pl.Datetime("ns", "UTC"), "server": pl.String, "conn": pl.Int64,
            "op": pl.Int64, "verb": pl.String, "bind_dn": pl.String, "client_ip": pl.String,
            "target": pl.String, "scope": pl.String, "filter": pl.String, "err": pl.String,
            "etime": pl.Float64, "wtime": pl.Float64, "match": pl.Boolean, "file": pl.String,
            "line": pl.Int64}


def _op_rows(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(
        pl.coalesce("ts", "result_ts").alias("time"), "server", "conn", "op", "verb",
        "bind_dn", "client_ip", pl.coalesce("dn", "base").alias("target"),
        _named(rows, "scope", scope_name), "filter", _named(rows, "err", err_name),
        "etime", "wtime", "match", pl.coalesce("file", "result_file").alias("file"),
        pl.coalesce("line", "result_line").alias("line")).cast(_schema())


def _named(rows: pl.DataFrame, column: str, name: Any) -> pl.Expr:
    """``column``'s values by their names: ``name`` called once per distinct value, not per
    row (a trace of a busy identity has millions)."""
    values = rows[column].drop_nulls().unique().to_list()
    return pl.col(column).replace_strict({v: name(v) for v in values}, default=None,
                                         return_dtype=pl.String)


def _connection_rows(connections: pl.LazyFrame | None, keys: pl.DataFrame) -> pl.DataFrame:
    """A CONNECT row at each matched connection's open and a CLOSE row at its close (with
    the close code), from the connections table."""
    if connections is None:
        return no_rows()
    conns = connections.join(keys.lazy(), on=["server", "session", "conn"], how="semi").collect()
    both = []
    for verb, at, code in (("CONNECT", "opened", None), ("CLOSE", "closed", "close_code")):
        part = conns.filter(pl.col(at).is_not_null()).select(
            pl.col(at).alias("time"), "server", "conn", pl.lit(None, pl.Int64).alias("op"),
            pl.lit(verb).alias("verb"), pl.lit(None, pl.String).alias("bind_dn"), "client_ip",
            pl.lit(None, pl.String).alias("target"), pl.lit(None, pl.String).alias("scope"),
            pl.lit(None, pl.String).alias("filter"),
            (pl.col(code) if code else pl.lit(None, pl.String)).alias("err"),
            pl.lit(None, pl.Float64).alias("etime"), pl.lit(None, pl.Float64).alias("wtime"),
            pl.lit(False).alias("match"), pl.lit(None, pl.String).alias("file"),
            pl.lit(None, pl.Int64).alias("line"))
        both.append(part.cast(_schema()))
    return pl.concat(both)


def closing_line(rows: pl.DataFrame) -> str:
    """``12 operations on 3 servers, 2026-11-26 16:20:10.475 to 16:22:38.851 UTC``."""
    matched = rows.filter(pl.col("match"))
    if not matched.height:
        return "no operation matched"
    first, last = (matched["time"].min(), matched["time"].max())
    servers = matched["server"].n_unique()
    return (f"{matched.height:,} operation{'s' * (matched.height != 1)} on {servers} "
            f"server{'s' * (servers != 1)}, {when(_iso(first))} to {when(_iso(last))} UTC "
            f"({rows.height - matched.height:,} context rows: opens, closes, BINDs)")


def _iso(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_rows(rows: pl.DataFrame, form: str, path: Path | None) -> None:
    """The rows as jsonl or csv (to standard output without ``path``) or parquet."""
    out = rows.select(COLUMNS)
    if form == "parquet":
        out.write_parquet(path)
    elif path is not None:
        out.write_csv(path) if form == "csv" else out.write_ndjson(path)
    else:
        sys.stdout.write(out.write_csv() if form == "csv" else out.write_ndjson())

