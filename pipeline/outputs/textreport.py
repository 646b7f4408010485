"""``dsaccess report OUT --text``: the familiar logconv summary block, from aggregates."""

from __future__ import annotations

import textwrap
from typing import Any

import polars as pl

from ..names import RESULT_CODES, close_name, when
from ..tables import histogram
from ..tables.frames import Table, columns, height
from . import views

VERB_NAMES = (("SRCH", "Searches"), ("MOD", "Modifications"), ("ADD", "Adds"),
              ("DEL", "Deletes"), ("MODRDN", "Mod RDNs"), ("CMP", "Compares"),
              ("BIND", "Binds"))


def render_text(summary: dict[str, Any], tables: dict[str, Table],
                show_examples: bool = False) -> str:
    """A logconv-like summary (counts, averages, unindexed summary) of the fleet, then the
    same counts per server when there are several; ``show_examples``: under each
    unindexed fingerprint, one raw filter with its base and scope (values identify
    people, so only when asked)."""
    work = tables.get("workloads")
    fps = tables.get("fingerprints")
    averages = []
    if work is not None and height(work):
        averages.append(f"{'Average etime (elapsed time):':31s}{_mean(work, 'etime'):.9f}")
    if fps is not None and fps.height:  # kept per fingerprint only: searches
        for latency, title in (("wtime", "wait time"), ("optime", "op time")):
            averages.append(f"{'Average ' + latency + ' (' + title + '):':31s}"
                            f"{_mean(fps, latency):.9f}  (searches)")
    clients = tables.get("clients")
    out = ["----------- Access Log Output ------------", "",
           *_counts(summary, clients, averages)]
    if "saturation" in summary:
        out += ["", "----- Worker Pool -----", views.pool_sentence(summary, tables)]
    failed = views.failed_binds(tables, 20)
    if failed.height:
        out += ["", "----- Failed Binds by Target DN -----"]
        for r in failed.iter_rows(named=True):
            out.append(f"{r['failed']:>8,} of {r['binds']:<8,} {views.target_text(r['dn'])}  "
                       f"({r['codes']})")
    if clients is not None and clients.height:
        out += ["", "----- Connection Close Codes -----"]
        codes = clients.group_by("close_code").agg(pl.col("connections").sum()).sort(
            "connections", "close_code", descending=[True, False], nulls_last=True)
        for code, count in codes.iter_rows():
            out.append(f"{count:>8,}  {close_name(code)}")
    if fps is not None and fps.height:
        out += ["", "----- Unindexed Search Summary -----"]
        slow = fps.filter(pl.col("unindexed") > 0).sort("unindexed", "fingerprint",
                                                         descending=[True, False]).head(20)
        for r in slow.iter_rows(named=True):
            dns = r.get("unindexed_bind_dns", r["bind_dns"])  # (outputs before they were kept)
            out.append(f"{r['unindexed']:>8,}  {r['fingerprint']}  ({dns} bind DNs)")
            if show_examples:
                out.append(f"{'':10s}e.g. base={r['example_base']!r} scope={r['example_scope']} "
                           f"filter={r['example']!r}")
    advice = views.index_advice(tables)
    if advice:
        out += ["", "----- Index Advice (unindexed searches: attribute, index type) -----"]
        for r in advice:
            out.append(f"{r['etime']:>12.6f}  {r['server']} {r['attribute']} {r['index']}  "
                       f"A {r['unindexed']:,} U {r['partially_unindexed']:,}  {r['evidence']}")
            out.append(f"{'':14s}{r['fingerprints']}")
        out += textwrap.wrap(views.ADVICE_LEGEND, 88)
    slowest = views.slowest(tables, show_examples)
    if slowest:
        out += ["", "----- Slowest Operations (etime) -----"]
        for r in slowest:
            out.append(f"{r['etime']:>12.6f}  {r['time']}  {r['server']} conn={r['conn']} "
                       f"op={r['op']} {r['verb']} {r['bind_dn']}  {r['target']}")
    if len(summary["servers"]) > 1:
        for name, section in summary["servers"].items():
            mine = None if clients is None else clients.filter(pl.col("server") == name)
            out += ["", f"----------- Server {name} ------------", "",
                    *_counts(section, mine, [])]
    return "\n".join(out) + "\n"


def _counts(s: dict[str, Any], clients: pl.DataFrame | None, averages: list[str]) -> list[str]:
    """The counts of a summary section (the fleet's, or a server's), logconv's order.
    Total Operations: every client operation, UNBIND and ABANDON among them."""
    ops = s["operations"]
    out = [f"Start of Logs:    {when(s['time_range']['first'])} UTC",
           f"End of Logs:      {when(s['time_range']['last'])} UTC", "",
           _row("Restarts", s["restarts"]),
           _row("Peak Concurrent Connections", s["peak_connections"]),
           _row("Total Connections", s["connections"])]
    if clients is not None and clients.height:
        by = dict(clients.group_by("transport").agg(pl.col("connections").sum()).iter_rows())
        for transport in ("LDAP", "LDAPI", "LDAPS", "StartTLS"):
            out.append(_row(f" - {transport} Connections", by.get(transport, 0)))
    out += [_row("Total Operations", ops["total"]),
            _row("Total Results", s["results"]["total"]), ""]
    out += [_row(name, ops[verb]) for verb, name in VERB_NAMES]
    out.append("")
    if averages:
        out += [*averages, ""]
    searches = s["searches"]
    out += [_row("Paged Searches", searches["paged"]),
            _row("Unindexed Searches", searches["unindexed"]),
            _row("Unindexed Components", searches["partially_unindexed"]), "",
            _row("Binds", ops["BIND"]), _row("Unbinds", ops["UNBIND"]),
            _row("Abandoned Requests", ops["ABANDON"]),
            _row("Extended Operations", ops["EXT"]), "", "----- Errors -----"]
    for err, count in sorted(s["results"]["by_err"].items(), key=lambda kv: (-kv[1], kv[0])):
        name = RESULT_CODES.get(int(err), "") if err.lstrip("-").isdigit() else ""
        out.append(f"err={err:<6s}{count:>10,}    {name}")
    return out


def _row(name: str, value: int) -> str:
    return f"{name + ':':31s}{value}"


def _mean(work: Table, latency: str) -> float:
    key = [columns(work)[0]]
    if latency == "etime":
        total = histogram.from_lists(work, key, "etime")["count"].sum()
        etime = work.lazy().select(pl.col("etime_sum_ns").sum()).collect().item()
        return float(etime) / 1e9 / total if total else 0.0
    hist = histogram.from_lists(work, key, latency)  # within 1%, from the buckets
    if not hist.height:
        return 0.0
    values = hist.select((histogram.representative(pl.col("bucket")) * pl.col("count")).sum(),
                         pl.col("count").sum())
    return float(values.item(0, 0) / values.item(0, 1))
