"""389 DS's cn=monitor, read live: parse its entries, classify its connections into the
workload classes, and lay out the exporter's metrics (the exporter does the LDAP and HTTP).

A ``connection`` value of 389 DS 1.4 to 3.x reads (``conntable.c``)::

    fd:opentime:opsinitiated:opscompleted:flags:binddn:maxthreadsstate:maxthreadscount:
    maxthreadsblocked:connid:ip=ADDRESS

An anonymous connection's DN is written ``NULLDN``. The bind DN and an IPv6 address can
hold ``:``, so the value is cut from both ends:
``ip=`` last, five fields first, the three max-threads fields and the connection id
before ``ip=`` (older servers print fewer of them), and the DN is what is left.

>>> c = parse_connection("64:20261201130949Z:5:4:-:uid=svc-a,dc=x:0:0:0:12:ip=::1")
>>> c["fd"], c["opened"], c["ops_initiated"], c["ops_pending"], c["bind_dn"], c["client_ip"]
(64, 1796130589, 5, 1, 'uid=svc-a,dc=x', '::1')
>>> parse_connection("not a connection") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from ..workload import UNCLASSIFIED, Rules, classify

STAMP = re.compile(r"^\d{14}Z$")
# numeric attributes of cn=monitor, its snmp entry and each backend's monitor entry
# attribute → metric name (Prometheus conventions: words, units; counters get _total)
SERVER_COUNTERS = {"totalconnections": "connections_opened", "opsinitiated":
                   "operations_initiated", "opscompleted": "operations_completed",
                   "entriessent": "entries_sent", "bytessent": "sent_bytes"}
SERVER_GAUGES = {"threads": "threads", "currentconnections": "current_connections",
                 "currentconnectionsatmaxthreads": "connections_at_max_threads",
                 "maxthreadsperconnhits": "max_threads_per_connection_hits",
                 "readwaiters": "read_waiters", "dtablesize": "descriptor_table_size",
                 # 389 DS 3.2.1 and its backports (monitor.c): the worker pool itself
                 "currentworkqueue": "work_queue", "maxworkqueue": "work_queue_max",
                 "currentbusyworkers": "busy_workers", "maxbusyworkers": "busy_workers_max"}
BACKEND_COUNTERS = {"entrycachehits": "entry_cache_hits", "entrycachetries":
                    "entry_cache_tries", "dncachehits": "dn_cache_hits",
                    "dncachetries": "dn_cache_tries"}
BACKEND_GAUGES = {"currententrycachesize": "entry_cache_size_bytes",
                  "maxentrycachesize": "entry_cache_max_size_bytes",
                  "currententrycachecount": "entry_cache_entries",
                  "currentdncachesize": "dn_cache_size_bytes",
                  "maxdncachesize": "dn_cache_max_size_bytes",
                  "currentdncachecount": "dn_cache_entries"}
AGE_BUCKETS = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0)
OPS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 100.0, 1000.0, 10000.0)


def _stamp(text: str) -> int | None:
    if not STAMP.match(text):
        return None
    return int(datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC).timestamp())


def parse_connection(value: str) -> dict[str, Any] | None:
    """One ``connection`` value → its fields, or None for a layout this does not know."""
    head, sep, ip = value.rpartition(":ip=")
    if not sep:
        head, ip = value, ""
    fields = head.split(":")
    if len(fields) < 6:
        return None
    try:
        fd, opened, initiated, completed = (int(fields[0]), _stamp(fields[1]), int(fields[2]),
                                            int(fields[3]))
    except ValueError:
        return None
    if opened is None or initiated < 0 or completed < 0:
        return None
    rest = fields[5:]
    # the tail: up to three max-threads fields and the connection id, all numbers
    tail = 0
    while tail < 4 and len(rest) - tail > 1 and rest[-1 - tail].lstrip("-").isdigit():
        tail += 1
    conn_id = int(rest[-1]) if tail == 4 else None
    bind_dn = ":".join(rest[: len(rest) - tail]) if tail else ":".join(rest)
    if bind_dn == "NULLDN":  # how the server writes an anonymous connection
        bind_dn = ""
    return {"fd": fd, "opened": opened, "ops_initiated": initiated, "ops_completed": completed,
            "ops_pending": max(0, initiated - completed), "flags": fields[4],
            "bind_dn": bind_dn, "conn_id": conn_id, "client_ip": ip}


def numbers(entry: dict[str, list[bytes]], names: Any) -> dict[str, float]:
    """The named attributes of an entry that hold one number (missing or odd: left out)."""
    lower = {k.lower(): v for k, v in entry.items()}
    out = {}
    for name in names:
        values = lower.get(name)
        if values and len(values) == 1:
            try:
                out[name] = float(values[0])
            except ValueError:
                continue
    return out


@dataclass
class ServerReading:
    """One scrape of one server: what it said, or why it could not be read."""

    server: str
    ok: bool
    seconds: float
    error: str | None = None
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    backends: dict[str, dict[str, float]] = field(default_factory=dict)
    connections: pl.DataFrame | None = None
    parse_errors: int = 0
    at: float = 0.0
    timed_out: bool = False  # the server did not answer in time (a busy pool does that)

    @property
    def backlog(self) -> float | None:
        """Operations initiated and not completed, server-wide (None: not both read)."""
        c = self.counters
        if "opsinitiated" not in c or "opscompleted" not in c:
            return None
        return max(0.0, c["opsinitiated"] - c["opscompleted"])


def read_monitor(server: str, monitor: dict[str, list[bytes]], snmp: dict[str, list[bytes]],
                 backends: dict[str, dict[str, list[bytes]]], now: float,
                 rules: Rules, seconds: float) -> ServerReading:
    """The entries of one scrape → a reading, its connections classified by the rules."""
    rows, errors = [], 0
    for value in monitor.get("connection", []):
        row = parse_connection(value.decode("utf-8", "replace"))
        if row is None:
            errors += 1
        else:
            rows.append(row)
    schema = {"fd": pl.Int64, "opened": pl.Int64, "ops_initiated": pl.Int64,
              "ops_completed": pl.Int64, "ops_pending": pl.Int64, "flags": pl.String,
              "bind_dn": pl.String, "conn_id": pl.Int64, "client_ip": pl.String}
    conns = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.lit(server).alias("server"),
        (pl.lit(now) - pl.col("opened")).clip(lower_bound=0).cast(pl.Float64)
        .alias("conn_duration"),
        pl.lit(None, pl.String).alias("tls"))  # cn=monitor does not say
    conns = classify(conns, rules, live=True) if rules else conns.with_columns(
        pl.lit(UNCLASSIFIED).alias("workload"))
    # every snmp attribute counts up since the start, but "connections" (open now)
    snmp_counters = numbers(snmp, tuple(k.lower() for k in snmp if k.lower() != "connections"))
    return ServerReading(
        server=server, ok=True, seconds=seconds,
        gauges=numbers(monitor, SERVER_GAUGES),
        counters={**numbers(monitor, SERVER_COUNTERS),
                  **{f"snmp_{k}": v for k, v in snmp_counters.items()}},
        backends={name: numbers(entry, {**BACKEND_COUNTERS, **BACKEND_GAUGES})
                  for name, entry in backends.items()},
        connections=conns, parse_errors=errors, at=now)


def by_workload(conns: pl.DataFrame) -> pl.DataFrame:
    """Per workload class: connections, pending operations, and cumulative histogram counts
    of connection age (``age_le_*``) and of operations per connection (``ops_le_*``)."""
    return conns.group_by("workload").agg(
        pl.len().alias("connections"), pl.col("ops_pending").sum(),
        pl.col("conn_duration").sum().alias("age_sum"),
        pl.col("ops_initiated").sum().alias("ops_sum"),
        *((pl.col("conn_duration") <= le).sum().alias(f"age_le_{le:g}") for le in AGE_BUCKETS),
        *((pl.col("ops_initiated") <= le).sum().alias(f"ops_le_{le:g}") for le in OPS_BUCKETS),
    ).sort("workload")
