"""The capacity report: aggregate tables → one self-contained HTML page.

Charts are drawn by plotly.js, inlined (no CDN, no network): the page carries
a Content-Security-Policy that forbids every fetch, and records script errors
and policy violations in ``#report-errors`` so a browser test can read them.
Every value that comes from the logs is HTML-escaped before it reaches the
page, whether in a table or a chart label.
"""

from __future__ import annotations

import html
import json
from typing import Any

import polars as pl

from . import histogram
from .errors import FilterParseError
from .ldapfilter import Compare, Extensible, Node, Present, Substring, parse_filter

TOP = 15
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:; connect-src 'none'")
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 3em;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;vertical-align:top}
td.t,th.t{text-align:left;min-width:14em;max-width:60em;word-break:break-all}
.chart{width:100%;height:380px}.kpi{display:inline-block;margin:0 2em 1em 0}
.kpi b{display:block;font-size:20px}.flag{color:#b00;font-weight:bold}
#report-errors:empty{display:none}#report-errors{color:#b00;border:1px solid #b00}
"""
# Collects script errors and blocked fetches before anything else runs.
GUARD = """
window.__errors=[];function __err(m){window.__errors.push(String(m));
var e=document.getElementById('report-errors');if(e)e.textContent=window.__errors.join('\\n');}
window.addEventListener('error',function(e){__err(e.message)});
document.addEventListener('securitypolicyviolation',function(e){__err('blocked: '+e.blockedURI)});
var __ce=console.error;console.error=function(){__err(Array.from(arguments).join(' '));
__ce.apply(console,arguments)};
"""
DRAW = """
var D=JSON.parse(document.getElementById('report-data').textContent);
var cfg={displaylogo:false,responsive:true,modeBarButtonsToRemove:['sendDataToCloud']};
var drawn=0;
D.charts.forEach(function(c){var el=document.getElementById(c.id);
  if(!el)return;Plotly.newPlot(el,c.data,c.layout,cfg);drawn++;});
document.body.setAttribute('data-charts-drawn',String(drawn));
"""


def render_html(summary: dict[str, Any], tables: dict[str, pl.DataFrame],
                info: dict[str, Any], plotly_js: str, show_examples: bool = False) -> str:
    """The report page (a string; the shell writes it).

    Args:
        show_examples: show one raw example filter per fingerprint. Off by default:
            filter values are identities, and reports travel further than logs.
    """
    charts: list[dict[str, Any]] = []
    sections = [
        _accounting(summary, info),
        _load(tables, charts),
        _latency(tables, charts),
        _fingerprints(tables, charts, show_examples),
        _workloads(tables, charts),
        _errors(summary, tables, charts),
        _connections(tables, charts),
        _unindexed(tables),
    ]
    data = json.dumps({"charts": charts}, separators=(",", ":"), sort_keys=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    first, last = summary["time_range"]["first"], summary["time_range"]["last"]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>dsaccess report {_e(first or '')} – {_e(last or '')}</title>",
        f"<style>{STYLE}</style>", f"<script>{GUARD}</script>",
        f"<script>{plotly_js}</script>", "</head><body>",
        "<h1>389 Directory Server access: capacity report</h1>",
        '<pre id="report-errors"></pre>', *sections,
        f'<script type="application/json" id="report-data">{data}</script>',
        f"<script>{DRAW}</script>", "</body></html>",
    ])


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _label(value: Any) -> str:
    # chart labels: escaped like HTML (plotly reads a few tags), cut to a readable length
    text = "(anonymous)" if value == "" else ("(unknown)" if value is None else str(value))
    text = text if len(text) <= 90 else text[:87] + "..."
    return html.escape(text, quote=False)


def _table(headers: list[str], rows: list[list[Any]], text_cols: int = 1,
           element_id: str = "") -> str:
    ident = f' id="{element_id}"' if element_id else ""
    head = "".join(f'<th class="{"t" if i < text_cols else ""}">{_e(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"t" if i < text_cols else ""}">{_cell(v)}</td>'
                         for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, _Raw):
        return value.html
    return _e(value)


class _Raw:
    def __init__(self, html_text: str) -> None:
        self.html = html_text


def _chart(charts: list[dict[str, Any]], chart_id: str, data: list[dict[str, Any]],
           layout: dict[str, Any]) -> str:
    charts.append({"id": chart_id, "data": data,
                   "layout": {"margin": {"l": 60, "r": 20, "t": 40, "b": 60}, **layout}})
    return f'<div class="chart" id="{chart_id}"></div>'


def _accounting(summary: dict[str, Any], info: dict[str, Any]) -> str:
    lines = summary["lines"]
    kpis = [("lines", lines["total"]), ("parsed", lines["parsed"]),
            ("rejected", lines["rejected"]), ("connections", summary["connections"]),
            ("operations", summary["operations"]["total"]), ("restarts", summary["restarts"]),
            ("unmatched requests", summary["unmatched"]["requests"]),
            ("unmatched results", summary["unmatched"]["results"])]
    cards = "".join(f'<div class="kpi" id="kpi-{_e(k.replace(" ", "-"))}">{_e(k)}'
                    f"<b>{v:,}</b></div>" for k, v in kpis)
    rows = [[name, s["lines"]["total"], s["lines"]["rejected"], s["connections"],
             s["operations"]["total"], s["restarts"], s["time_range"]["first"] or "",
             s["time_range"]["last"] or ""] for name, s in summary["servers"].items()]
    files = [[f["server"], f["file"], f["bytes"]] for f in info.get("inputs", [])]
    problems = "".join(f"<li>{_e(p)}</li>" for p in summary.get("problems", []))
    return "".join([
        "<h2>Run</h2>",
        f"<p>From {_e(summary['time_range']['first'])} to "
        f"{_e(summary['time_range']['last'])} (UTC).</p>", cards,
        _table(["server", "lines", "rejected", "connections", "operations", "restarts",
                "first", "last"], rows, element_id="servers"),
        f"<ul>{problems}</ul>" if problems else "",
        "<details><summary>input files</summary>" +
        _table(["server", "file", "bytes"], files, 2) + "</details>" if files else "",
    ])


def _load(tables: dict[str, pl.DataFrame], charts: list[dict[str, Any]]) -> str:
    series = tables.get("timeseries")
    if series is None or not series.height:
        return ""
    per_server = series.group_by("server", "minute").agg(pl.col("count").sum()).sort("minute")
    restarts = tables.get("restarts")
    shapes, notes = [], []
    if restarts is not None:
        for server, ts in restarts.select("server", "ts").iter_rows():
            stamp = ts.isoformat()
            shapes.append({"type": "line", "x0": stamp, "x1": stamp, "yref": "paper", "y0": 0,
                           "y1": 1, "line": {"dash": "dot", "color": "#b00"}})
            notes.append({"x": stamp, "yref": "paper", "y": 1, "text": f"restart {_label(server)}",
                          "showarrow": False, "font": {"color": "#b00", "size": 10}})
    traces = [{"type": "scatter", "mode": "lines", "name": _label(server),
               "x": [m.isoformat() for m in part["minute"]],
               "y": [round(c / 60, 3) for c in part["count"]]}
              for (server,), part in per_server.partition_by("server", as_dict=True,
                                                             maintain_order=True).items()]
    by_verb = series.group_by("verb", "minute").agg(pl.col("count").sum()).sort("minute")
    verb_traces = [{"type": "scatter", "mode": "lines", "stackgroup": "v", "name": _label(verb),
                    "x": [m.isoformat() for m in part["minute"]],
                    "y": [round(c / 60, 3) for c in part["count"]]}
                   for (verb,), part in sorted(by_verb.partition_by("verb", as_dict=True).items(),
                                               key=lambda kv: str(kv[0][0]))]
    return "".join([
        "<h2>Load</h2>",
        _chart(charts, "chart-ops-server", traces,
               {"title": {"text": "operations per second, per server"},
                "shapes": shapes, "annotations": notes, "yaxis": {"title": "ops/s"}}),
        _chart(charts, "chart-ops-verb", verb_traces,
               {"title": {"text": "operations per second, by verb"},
                "yaxis": {"title": "ops/s"}}),
    ])


def _latency(tables: dict[str, pl.DataFrame], charts: list[dict[str, Any]]) -> str:
    series = tables.get("timeseries")
    if series is None or "etime_hist_bucket" not in series.columns or not series.height:
        return ""
    hist = histogram.from_lists(series, ["minute"], "etime")
    hist = hist.group_by("minute", "bucket").agg(pl.col("count").sum())
    pct = histogram.percentiles(hist, ["minute"]).sort("minute")
    x = [m.isoformat() for m in pct["minute"]]
    traces = [{"type": "scatter", "mode": "lines", "name": name, "x": x,
               "y": [None if v is None else round(v * 1000, 3) for v in pct[name]]}
              for name in ("p50", "p95", "p99")]
    return "<h2>Latency</h2>" + _chart(
        charts, "chart-latency", traces,
        {"title": {"text": "etime percentiles per minute, all servers (ms)"},
         "yaxis": {"title": "ms", "type": "log"}})


def _fingerprints(tables: dict[str, pl.DataFrame], charts: list[dict[str, Any]],
                  show_examples: bool) -> str:
    fps = tables.get("fingerprints")
    if fps is None or not fps.height:
        return ""
    out = ["<h2>Search fingerprints</h2>"]
    for order, title, chart_id in (("etime_sum", "total etime (s)", "chart-fp-etime"),
                                   ("count", "searches", "chart-fp-count")):
        top = fps.sort(order, "fingerprint", descending=[True, False]).head(TOP)
        labels = [("⚠ " if u else "") + _label(f)
                  for f, u in zip(top["fingerprint"], top["unindexed"], strict=True)]
        out.append(_chart(charts, chart_id, [{
            "type": "bar", "orientation": "h", "y": labels[::-1],
            "x": [round(float(v), 6) for v in top[order]][::-1],
            "marker": {"color": ["#c33" if u else "#47a" for u in top["unindexed"]][::-1]}}],
            {"title": {"text": f"top fingerprints by {title} (⚠ unindexed)"},
             "margin": {"l": 420, "r": 20, "t": 40, "b": 40}}))
    top = fps.sort("etime_sum", "fingerprint", descending=[True, False]).head(TOP * 2)
    flag = '<span class="flag">A</span> '
    rows = [[_Raw((flag if r["unindexed"] else "") + _e(r["fingerprint"])),
             r["count"], r["errors"], r["unindexed"], r["partially_unindexed"], r["paged"],
             float(r["etime_sum"]), _ms(r["etime_p50"]), _ms(r["etime_p95"]),
             _ms(r["etime_p99"]), r["bind_dns"],
             r["example"] if show_examples else "(hidden; --show-examples)",
             r["example_base"], r["example_scope"]]
            for r in top.iter_rows(named=True)]
    out.append(_table(["fingerprint", "count", "errors", "unindexed", "partially", "paged",
                       "etime s", "p50 ms", "p95 ms", "p99 ms", "bind DNs", "example filter",
                       "base", "scope"], rows, element_id="fingerprints"))
    return "".join(out)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def _workloads(tables: dict[str, pl.DataFrame], charts: list[dict[str, Any]]) -> str:
    work = tables.get("workloads")
    if work is None or not work.height:
        return ""
    classes = work.group_by("workload").agg(pl.col("count").sum(), pl.col("etime_sum").sum()) \
        .sort("workload")
    labels = [_label(w) for w in classes["workload"]]
    dns = work.group_by("bind_dn").agg(pl.col("count").sum(), pl.col("etime_sum").sum()) \
        .sort("count", "bind_dn", descending=[True, False], nulls_last=True).head(TOP)
    return "".join([
        "<h2>Workloads and identities</h2>",
        _chart(charts, "chart-workloads", [
            {"type": "pie", "labels": labels, "values": classes["count"].to_list(),
             "domain": {"column": 0}, "name": "operations", "title": {"text": "operations"}},
            {"type": "pie", "labels": labels,
             "values": [round(v, 6) for v in classes["etime_sum"]], "domain": {"column": 1},
             "name": "etime", "title": {"text": "total etime"}}],
            {"title": {"text": "workload classes: share of operations and of etime"},
             "grid": {"rows": 1, "columns": 2}}),
        _chart(charts, "chart-binddns", [
            {"type": "bar", "orientation": "h", "name": "operations",
             "y": [_label(d) for d in dns["bind_dn"]][::-1], "x": dns["count"].to_list()[::-1]},
            {"type": "bar", "orientation": "h", "name": "etime s", "xaxis": "x2",
             "y": [_label(d) for d in dns["bind_dn"]][::-1],
             "x": [round(v, 4) for v in dns["etime_sum"]][::-1]}],
            {"title": {"text": "top bind DNs: operations and total etime"},
             "grid": {"rows": 1, "columns": 2, "pattern": "independent"},
             "margin": {"l": 330, "r": 20, "t": 40, "b": 40}}),
    ])


def _errors(summary: dict[str, Any], tables: dict[str, pl.DataFrame],
            charts: list[dict[str, Any]]) -> str:
    codes = {k: v for k, v in summary["results"]["by_err"].items() if k != "0"}
    out = ["<h2>Errors</h2>"]
    if codes:
        out.append(_chart(charts, "chart-errors", [{
            "type": "bar", "x": [f"err={k}" for k in codes], "y": list(codes.values())}],
            {"title": {"text": "results by error code (err=0 left out)"}}))
    work = tables.get("workloads")
    if work is not None and work.height:
        failed = work.filter((pl.col("verb") == "BIND") & (pl.col("errors") > 0)).group_by(
            "bind_dn").agg(pl.col("errors").sum(), pl.col("count").sum()) \
            .sort("errors", "bind_dn", descending=[True, False], nulls_last=True).head(TOP)
        out.append("<p>Failed binds by DN</p>" + _table(
            ["bind DN", "failed", "binds"],
            [[_label(r["bind_dn"]), r["errors"], r["count"]] for r in failed.iter_rows(named=True)],
            element_id="failed-binds"))
    return "".join(out)


def _connections(tables: dict[str, pl.DataFrame], charts: list[dict[str, Any]]) -> str:
    clients = tables.get("clients")
    if clients is None or not clients.height:
        return ""
    codes = clients.group_by("close_code").agg(pl.col("connections").sum()) \
        .sort("connections", descending=True)
    transport = clients.group_by("transport").agg(pl.col("connections").sum()).sort("transport")
    ips = clients.group_by("client_ip").agg(pl.col("connections").sum(),
                                            pl.col("operations").sum()) \
        .sort("connections", "client_ip", descending=[True, False], nulls_last=True).head(TOP)
    return "".join([
        "<h2>Connections</h2>",
        _chart(charts, "chart-close-codes", [{
            "type": "bar", "x": [_label(c or "open") for c in codes["close_code"]],
            "y": codes["connections"].to_list()}],
            {"title": {"text": "connection close codes (open: still open at the end)"}}),
        _chart(charts, "chart-transport", [{
            "type": "pie", "labels": [_label(t) for t in transport["transport"]],
            "values": transport["connections"].to_list()}],
            {"title": {"text": "LDAP, LDAPS, StartTLS and LDAPI connections"}}),
        "<p>Top client IPs</p>" + _table(
            ["client IP", "connections", "operations"],
            [[_label(r["client_ip"]), r["connections"], r["operations"]]
             for r in ips.iter_rows(named=True)], element_id="clients"),
    ])


INDEX_TYPES = {"=": "eq", ">=": "eq", "<=": "eq", "~=": "approx"}


def index_candidates(filt: str | None) -> str:
    """Which attributes a slow filter would want indexed, and how.

    >>> index_candidates("(&(objectClass=person)(description=*finance*))")
    'description: sub'
    >>> index_candidates("(|(cn=a)(telephoneNumber=*))")
    'cn: eq; telephoneNumber: pres'
    """
    if not filt:
        return ""
    try:
        node = parse_filter(filt)
    except FilterParseError:
        return ""
    found: dict[str, set[str]] = {}
    _walk(node, found)
    return "; ".join(f"{a}: {', '.join(sorted(t))}" for a, t in sorted(
        found.items(), key=lambda kv: kv[0].lower()))


def _walk(node: Node, found: dict[str, set[str]]) -> None:
    children = getattr(node, "children", None)
    if children is not None:
        for child in children:
            _walk(child, found)
        return
    child = getattr(node, "child", None)
    if child is not None:
        _walk(child, found)
        return
    attr = getattr(node, "attr", "")
    if not attr or attr.lower() == "objectclass":
        return  # objectClass is always indexed
    kind = ("pres" if isinstance(node, Present) else "sub" if isinstance(node, Substring)
            else f"matching rule {node.rule}" if isinstance(node, Extensible)
            else INDEX_TYPES.get(node.op, "eq") if isinstance(node, Compare) else "eq")
    found.setdefault(attr, set()).add(kind)


def _unindexed(tables: dict[str, pl.DataFrame]) -> str:
    fps = tables.get("fingerprints")
    if fps is None or not fps.height:
        return ""
    slow = fps.filter((pl.col("unindexed") > 0) | (pl.col("partially_unindexed") > 0)).sort(
        "etime_sum", "fingerprint", descending=[True, False])
    rows = [[r["fingerprint"], r["unindexed"], r["partially_unindexed"], float(r["etime_sum"]),
             r["example_base"], r["example_scope"], index_candidates(r["example"])]
            for r in slow.iter_rows(named=True)]
    return ("<h2>Unindexed searches</h2><p>notes=A: the whole search was a scan; notes=U: "
            "part of it. Candidates list the attributes of the filter and the index type "
            "each needs (check the attribute's existing indexes first).</p>" +
            _table(["fingerprint", "unindexed (A)", "partially (U)", "etime s", "base",
                    "scope", "index candidates"], rows, element_id="unindexed"))
