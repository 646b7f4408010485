"""Prometheus text exposition of a run's aggregates (for a textfile collector).

Label sets are bounded: server, workload class and verb come from the
configuration and the protocol; bind DNs and fingerprints appear only as the
top N, the rest summed under ``other``. Label values are escaped as the
exposition format requires (backslash, double quote, newline).

>>> escape_label('a"b\\\\c\\nd')
'a\\\\"b\\\\\\\\c\\\\nd'
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ..tables import histogram
from ..tables.aggregate import PROM_LE, le_column
from ..tables.frames import Table, height
from ..tables.frames import columns as names

PREFIX = "dsaccess"
LE = PROM_LE
TOP_N = 20
OTHER = "other"


def escape_label(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def _num(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return format(value, ".9g")


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> str:
        full = f"{PREFIX}_{name}"
        self.lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
        return full

    def sample(self, name: str, labels: dict[str, Any], value: float | int) -> None:
        self.lines.append(f"{name}{_labels(**labels)} {_num(value)}")


def render_prometheus(summary: dict[str, Any], tables: dict[str, Table],
                      histocrutch: bool = False) -> str:
    """The ``metrics.prom`` text (deterministic: families and samples sorted)."""
    w = _Writer()
    servers = summary["servers"]
    name = w.family("log_lines_total", "counter", "Access-log lines read, by outcome.")
    for server, s in servers.items():
        for kind in ("parsed", "outside_window", "rejected", "header", "blank"):
            w.sample(name, {"server": server, "kind": kind}, int(s["lines"][kind]))
    name = w.family("restarts_total", "counter", "Server starts seen in the logs.")
    for server, s in servers.items():
        w.sample(name, {"server": server}, int(s["restarts"]))
    name = w.family("connections_total", "counter", "Connections opened.")
    for server, s in servers.items():
        w.sample(name, {"server": server}, int(s["connections"]))
    name = w.family("results_total", "counter", "RESULT lines, by LDAP result code.")
    for server, s in servers.items():
        for err, count in s["results"]["by_err"].items():
            w.sample(name, {"server": server, "err": err}, int(count))
    name = w.family("unindexed_searches_total", "counter",
                    "Searches with notes=A (full) or notes=U (partial).")
    for server, s in servers.items():
        w.sample(name, {"server": server, "kind": "full"}, int(s["searches"]["unindexed"]))
        w.sample(name, {"server": server, "kind": "partial"},
                 int(s["searches"]["partially_unindexed"]))
    work = tables.get("workloads")
    if work is not None and height(work):
        _operations(w, work, histocrutch)
        _waits(w, work)
        _top_bind_dns(w, work)
    fps = tables.get("fingerprints")
    if fps is not None and fps.height:
        _top_fingerprints(w, fps)
    return "\n".join(w.lines) + "\n"


def _nulls_last(key: tuple[object, ...]) -> tuple[tuple[bool, str], ...]:
    """A sort key for label tuples where a value may be missing (a RESULT whose request
    was never seen has no verb)."""
    return tuple((v is None, "" if v is None else str(v)) for v in key)


def _operations(w: _Writer, work: Table, histocrutch: bool) -> None:
    keys = ["server", "workload", "verb"]
    ops = work.lazy().group_by(keys).agg(pl.col("count").sum(), pl.col("etime_sum_ns").sum()) \
        .sort(keys).collect()
    name = w.family("operations_total", "counter", "Client operations, by workload class and verb.")
    for r in ops.iter_rows(named=True):
        w.sample(name, {k: r[k] for k in keys}, int(r["count"]))
    cumulative = _cumulative(work, keys)
    sums = {tuple(r[k] for k in keys): float(r["etime_sum_ns"]) / 1e9
            for r in ops.iter_rows(named=True)}
    name = w.family("operation_etime_seconds", "histogram",
                    "etime of client operations with a RESULT.")
    for key in sorted(cumulative, key=_nulls_last):
        labels = dict(zip(keys, key, strict=True))
        counts, total = cumulative[key]
        for le, count in zip(LE, counts, strict=True):
            w.sample(f"{name}_bucket", {**labels, "le": _num(le)}, count)
        w.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, total)
        w.sample(f"{name}_sum", labels, float(sums.get(key, 0.0)))
        w.sample(f"{name}_count", labels, total)
    if histocrutch:  # one gauge per bucket, for stores without a histogram type
        for i, le in enumerate((*LE, None)):
            suffix = "inf" if le is None else _num(le).replace(".", "_")
            gauge = w.family(f"operation_etime_seconds_bucket_le_{suffix}", "gauge",
                             f"Operations with etime <= {'+Inf' if le is None else _num(le)} s.")
            for key in sorted(cumulative, key=_nulls_last):
                counts, total = cumulative[key]
                w.sample(gauge, dict(zip(keys, key, strict=True)),
                         total if le is None else counts[i])


def _waits(w: _Writer, work: Table) -> None:
    """wtime of client operations per server and workload class: how long they waited for
    a worker (a histogram from the workloads' exact ``wtime_le_*`` counters; outputs
    written before them have none)."""
    columns = [le_column(le, "wtime") for le in LE]
    if not all(c in names(work) for c in [*columns, "wtime_count", "wtime_sum_ns"]):
        return
    keys = ["server", "workload"]
    rows = work.lazy().group_by(keys).agg(
        pl.col(c).sum() for c in [*columns, "wtime_count", "wtime_sum_ns"]).filter(
        pl.col("wtime_count") > 0).collect()
    if not rows.height:
        return
    name = w.family("operation_wtime_seconds", "histogram",
                    "wtime of client operations: how long they waited for a worker thread.")
    for r in sorted(rows.iter_rows(named=True), key=lambda r: _nulls_last((r["server"],
                                                                          r["workload"]))):
        labels = {k: r[k] for k in keys}
        for le, column in zip(LE, columns, strict=True):
            w.sample(f"{name}_bucket", {**labels, "le": _num(le)}, int(r[column]))
        w.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, int(r["wtime_count"]))
        w.sample(f"{name}_sum", labels, float(r["wtime_sum_ns"]) / 1e9)
        w.sample(f"{name}_count", labels, int(r["wtime_count"]))


def _cumulative(work: Table, keys: list[str]
                ) -> dict[tuple[Any, ...], tuple[list[int], int]]:
    """Per key: the count of etimes <= each ``le``, and of all etimes. Exact from the
    workloads' ``etime_le_*`` counters; outputs written before them fall back to the
    histogram, where a value within 1% below a bound may land above it."""
    columns = [le_column(le) for le in LE]
    if all(c in names(work) for c in columns):
        # each row's etimes counted from its histogram's counts, without a row per bucket
        exact = work.lazy().group_by(keys).agg(
            *(pl.col(c).sum() for c in columns),
            pl.col("etime_hist_count").list.sum().sum().alias("_total")).collect()
        return {tuple(r[:len(keys)]): (list(r[len(keys):-1]), int(r[-1]))
                for r in exact.iter_rows() if r[-1]}
    hist = histogram.from_lists(work, list(keys), "etime").group_by(*keys, "bucket").agg(
        pl.col("count").sum())
    hist = hist.with_columns(histogram.representative(pl.col("bucket")).alias("value"))
    out = {}
    for key, part in hist.partition_by(keys, as_dict=True).items():
        values, counts = part["value"].to_list(), part["count"].to_list()
        out[key] = ([sum(c for v, c in zip(values, counts, strict=True) if v <= le)
                     for le in LE], sum(counts))
    return out


def _top_bind_dns(w: _Writer, work: Table) -> None:
    per = work.lazy().group_by("server", "bind_dn").agg(pl.col("count").sum()).collect()
    name = w.family("bind_dn_operations_total", "counter",
                    f"Client operations of the top {TOP_N} bind DNs per server; the rest as "
                    f"'{OTHER}'.")
    for (server,), part in sorted(per.partition_by("server", as_dict=True).items()):
        ranked = part.sort("count", "bind_dn", descending=[True, False], nulls_last=True)
        for r in ranked.head(TOP_N).iter_rows(named=True):
            dn = "(unknown)" if r["bind_dn"] is None else r["bind_dn"]
            w.sample(name, {"server": server, "bind_dn": dn}, int(r["count"]))
        rest = int(ranked.slice(TOP_N)["count"].sum())
        if rest:
            w.sample(name, {"server": server, "bind_dn": OTHER}, rest)


def _top_fingerprints(w: _Writer, fps: pl.DataFrame) -> None:
    ranked = fps.sort("etime_sum_ns", "fingerprint", descending=[True, False])
    name = w.family("fingerprint_etime_seconds_total", "counter",
                    f"Total etime of the top {TOP_N} search fingerprints; the rest as '{OTHER}'.")
    for r in ranked.head(TOP_N).iter_rows(named=True):
        w.sample(name, {"fingerprint_id": r["fingerprint_id"], "fingerprint": r["fingerprint"]},
                 float(r["etime_sum_ns"]) / 1e9)
    rest = ranked.slice(TOP_N)["etime_sum_ns"].sum()
    if rest:
        w.sample(name, {"fingerprint_id": OTHER, "fingerprint": OTHER}, float(rest) / 1e9)
