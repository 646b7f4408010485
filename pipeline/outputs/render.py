"""The capacity report: aggregate tables → one self-contained HTML page.

Charts are drawn by plotly.js, inlined (no CDN, no network): the page carries
a Content-Security-Policy that forbids every fetch, and records script errors
and policy violations in ``#report-errors`` so a browser test can read them.
Every value that comes from the logs is HTML-escaped before it reaches the
page, whether in a table or a chart label.
"""

from __future__ import annotations

import hashlib
import html
import json
from datetime import timedelta
from typing import Any

import polars as pl

from ..names import close_name, err_name, ms, problem_text, scope_name, when
from ..tables import histogram
from ..tables.aggregate import RUNS
from ..tables.frames import Table, height
from . import views

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
td.n,th.n{white-space:nowrap}.note{color:#555}
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
// what each chart shows, for tests and for the eye: traces with data, and drawn marks
function seen(el){var traces=0,empty=0;(el.data||[]).forEach(function(t){
  if(t.visible===false||t.visible==='legendonly')return;traces++;
  var n=t.type==='pie'?(t.values||[]).length:Math.min((t.x||[]).length,(t.y||[]).length);
  if(!n)empty++;});
  var marks=0,flat=0;el.querySelectorAll('.bars path, .slice path, .scatterlayer .js-line')
  .forEach(function(p){var b=p.getBBox();if(b.width>0&&b.height>0)marks++;else flat++;});
  // a bar trace counts as drawn when its longest bar spans a tenth of the plot area
  var size=el._fullLayout._size,least=Math.min(size.w,size.h)/10;
  var bars=el.querySelectorAll('.barlayer .trace').length,full=0;
  el.querySelectorAll('.barlayer .trace').forEach(function(t){var longest=0;
    t.querySelectorAll('path').forEach(function(p){var b=p.getBBox();
      if(b.width>0&&b.height>0)longest=Math.max(longest,b.width,b.height);});
    if(longest>=least)full++;});
  // axis labels printed over each other (two axes on one place) are not readable
  var overlaps=0;['.xaxislayer-above text','.yaxislayer-above text'].forEach(function(q){
    var boxes=[];el.querySelectorAll(q).forEach(function(t){var r=t.getBoundingClientRect();
      if(r.width>0)boxes.push(r);});
    for(var i=0;i<boxes.length;i++)for(var j=i+1;j<boxes.length;j++){var a=boxes[i],b=boxes[j];
      if(a.left<b.right-1&&b.left<a.right-1&&a.top<b.bottom-1&&b.top<a.bottom-1)overlaps++;}});
  return traces+' '+empty+' '+marks+' '+bars+' '+full+' '+overlaps;}
D.charts.forEach(function(c){var el=document.getElementById(c.id);
  if(!el)return;Plotly.newPlot(el,c.data,c.layout,cfg);drawn++;
  el.setAttribute('data-seen',seen(el));});
document.body.setAttribute('data-charts-drawn',String(drawn));
"""


def render_html(summary: dict[str, Any], tables: dict[str, Table],
                info: dict[str, Any], plotly_js: str, show_examples: bool = False) -> str:
    """The report page (a string; the shell writes it). Times are in milliseconds in every
    table and chart, except the run's window and totals named in seconds.

    Args:
        show_examples: show one raw example filter per fingerprint. Off by default:
            filter values are identities, and reports travel further than logs.
    """
    charts: list[dict[str, Any]] = []
    colours = server_colours(summary["servers"])
    sections = [_accounting(summary, tables, info)]
    first, last = summary["time_range"]["first"], summary["time_range"]["last"]
    if first is not None:  # (a run with no event has the accounting only: nothing to chart)
        sections += [
            _pool(summary, tables, charts, colours),
            _load(summary, tables, charts, colours),
            _latency(tables, charts, colours),
            _fingerprints(tables, charts, show_examples),
            _workloads(tables, charts),
            _by_run(tables),
            _errors(summary, tables, charts),
            _connections(tables, charts),
            _unindexed(tables),
            _slowest(tables, show_examples),
        ]
    data = json.dumps({"charts": charts}, separators=(",", ":"), sort_keys=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    span = f"{when(first)} – {when(last)}" if first is not None else "(no events)"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>dsaccess report {_e(span)}</title>",
        f"<style>{STYLE}</style>", f"<script>{GUARD}</script>",
        f"<script>{plotly_js}</script>", "</head><body>",
        "<h1>389 Directory Server access: capacity report</h1>",
        '<pre id="report-errors"></pre>', *sections,
        f'<script type="application/json" id="report-data">{data}</script>',
        f"<script>{DRAW}</script>", "</body></html>",
    ])


# distinct on white, and for the common colour-vision deficiencies (Tableau 20's strong half
# then its light half)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
           "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")


def server_colours(servers: Any) -> dict[str, str]:
    """One colour per server name, the same in every report (single, merged, any order):
    picked by a stable hash of the name (two of a large fleet may share one)."""
    return {name: PALETTE[int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:4],
                                         "big") % len(PALETTE)] for name in servers}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(text: str) -> str:
    return text if len(text) <= 90 else text[:87] + "..."


def _label(value: Any) -> str:
    # chart labels only: plotly reads a few tags in them, so they are escaped here; table
    # cells get plain text and are escaped once, by _cell
    return html.escape(_short(views.dn_text(value)), quote=False)


def _table(headers: list[str], rows: list[list[Any]], text_cols: int = 1,
           element_id: str = "") -> str:
    ident = f' id="{element_id}"' if element_id else ""
    head = "".join(f'<th class="{"t" if i < text_cols else "n"}">{_e(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"t" if i < text_cols else "n"}">{_cell(v)}</td>'
                         for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
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


def _accounting(summary: dict[str, Any], tables: dict[str, Table],
                info: dict[str, Any]) -> str:
    lines = summary["lines"]
    peak_rate, peak_at = views.fleet_peak_rate(tables)
    kpis = [("lines", f"{lines['total']:,}"), ("parsed", f"{lines['parsed']:,}")]
    if lines["outside_window"]:
        kpis.append(("outside the window", f"{lines['outside_window']:,}"))
    kpis += [
            ("rejected", f"{lines['rejected']:,}"), ("connections", f"{summary['connections']:,}"),
            ("fleet peak concurrent connections", f"{summary['peak_connections']:,}"),
            ("operations", f"{summary['operations']['total']:,}"),
            ("fleet peak ops/s", f"{peak_rate:,.1f}"), ("restarts", f"{summary['restarts']:,}"),
            ("unmatched requests", f"{summary['unmatched']['requests']:,}"),
            ("abandoned by clients", f"{summary.get('abandoned', 0):,}"),
            ("unmatched results", f"{summary['unmatched']['results']:,}")]
    cards = "".join(f'<div class="kpi" id="kpi-{_e(k.replace(" ", "-").replace("/", ""))}">'
                    f"{_e(k)}<b>{v}</b></div>" for k, v in kpis)
    rates = {r["server"]: r for r in views.server_rates(tables).iter_rows(named=True)}
    rows = [[name, s["lines"]["total"], s["lines"]["rejected"], s["connections"],
             s["peak_connections"], s["operations"]["total"],
             rates[name]["peak_rate"] if name in rates else 0.0, s["restarts"],
             *((when(s["time_range"]["first"]), when(s["time_range"]["last"]))
               if s["time_range"]["first"] else ("no events", ""))]
            for name, s in summary["servers"].items()]
    verb_rows = [[r["verb"], r["operations"], r["errors"], ms(r["etime_p95"])]
                 for r in views.verbs(summary, tables).iter_rows(named=True)]
    files = [[f["server"], f["file"], f["bytes"]] for f in info.get("inputs", [])]
    problems = "".join(f"<li>{_e(problem_text(p))}</li>" for p in summary.get("problems", []))
    at = f" (at {_e(views.when_ns(peak_at))})" if peak_at else ""
    return "".join([
        "<h2>Run</h2>",
        f"<p>From {_e(when(summary['time_range']['first']))} to "
        f"{_e(when(summary['time_range']['last']))} (UTC). Fleet peaks are of all servers "
        f"at once: the most connections open at one instant, and the busiest "
        f"{_period_name(tables)}{at}; each server's own peaks are in its row. Times are in "
        "milliseconds.</p>"
        if summary["time_range"]["first"] else
        "<p>No events in the logs read: nothing to chart (see the servers and the problems "
        "below).</p>", cards,
        _table(["server", "lines", "rejected", "connections", "peak concurrent",
                "operations", "peak ops/s", "restarts", "first (UTC)", "last (UTC)"], rows,
               element_id="servers"),
        "<p>Operations by verb</p>",
        _table(["verb", "operations", "errors", "etime p95 (ms)"], verb_rows,
               element_id="verbs"),
        f"<ul>{problems}</ul>" if problems else "",
        "<details><summary>input files</summary>" +
        _table(["server", "file", "bytes"], files, 2) + "</details>" if files else "",
    ])


def _period_name(tables: dict[str, Table]) -> str:
    load = tables.get("load")
    seconds = int(load["seconds"].max()) if load is not None and load.height else 60
    return {1: "second", 60: "minute", 3600: "hour"}.get(seconds, f"{seconds} s")


def _iso(values: pl.Series) -> list[str]:
    return [v.isoformat() for v in values]


def _load(summary: dict[str, Any], tables: dict[str, Table],
          charts: list[dict[str, Any]], colours: dict[str, str]) -> str:
    load = tables.get("load")
    if load is None or not load.height:
        return ""
    period = _period_name(tables)
    traces = [{"type": "scatter", "mode": "lines", "name": _label(server),
               "line": {"color": colours.get(server, "#444"), "width": 1.5},
               "x": _iso(part["start"]), "y": part["rate"].round(3).to_list()}
              for (server,), part in sorted(load.sort("start").partition_by(
                  "server", as_dict=True).items())]
    shapes, restart_trace = _restart_marks(tables, float(load["rate"].max() or 1.0))
    by_verb = views.minute_rates_by_verb(summary, tables)
    verb_traces = [{"type": "scatter", "mode": "lines", "stackgroup": "v", "name": _label(verb),
                    "x": _iso(part["minute"]), "y": [round(r, 3) for r in part["rate"]]}
                   for (verb,), part in sorted(by_verb.partition_by("verb", as_dict=True).items(),
                                               key=lambda kv: str(kv[0][0]))]
    axis = {"title": {"text": "time (UTC)"}}
    return "".join([
        "<h2>Load</h2>",
        _chart(charts, "chart-ops-server", traces + restart_trace,
               {"title": {"text": f"operations per second, per server (per {period}; "
                                  "partial periods over the seconds they cover)"},
                "shapes": shapes, "xaxis": axis, "yaxis": {"title": {"text": "ops/s"}}}),
        _chart(charts, "chart-ops-verb", verb_traces,
               {"title": {"text": "operations per second, by verb (per minute)"},
                "xaxis": axis, "yaxis": {"title": {"text": "ops/s"}}}) if verb_traces else "",
    ])


def _pool(summary: dict[str, Any], tables: dict[str, Table],
          charts: list[dict[str, Any]], colours: dict[str, str]) -> str:
    """Is the worker pool saturated: the sentence, per server the operations in flight
    (max per period) against its workers and the wtime p95 on one time axis, periods with
    saturated seconds shaded, and the servers' figures."""
    pool = tables.get("saturation")
    if pool is None or not pool.height:
        return ""
    per_server = pool.filter(pl.col("server").is_not_null()).sort("start")
    traces: list[dict[str, Any]] = []
    for (server,), part in sorted(per_server.partition_by("server", as_dict=True).items()):
        colour = colours.get(server, "#444")
        x = _iso(part["start"])
        traces.append({"type": "scatter", "mode": "lines", "name": f"{_label(server)} in flight",
                       "line": {"color": colour, "width": 1.5}, "x": x,
                       "y": part["in_flight_max"].to_list()})
        if part["workers"].drop_nulls().len():
            traces.append({"type": "scatter", "mode": "lines", "x": x,
                           "name": f"{_label(server)} workers", "y": part["workers"].to_list(),
                           "line": {"color": colour, "width": 1, "dash": "dash"}})
        traces.append({"type": "scatter", "mode": "lines", "yaxis": "y2", "x": x,
                       "name": f"{_label(server)} wtime p95",
                       "y": [None if v is None else round(v * 1000, 3)
                             for v in part["wtime_p95"]],
                       "line": {"color": colour, "width": 1, "dash": "dot"}})
    seconds = int(pool["seconds"].max() or 1)
    full = per_server.filter(pl.col("saturated_seconds") > 0)
    shapes = [{"type": "rect", "xref": "x", "yref": "paper", "x0": start.isoformat(),
               "x1": (start + timedelta(seconds=seconds)).isoformat(), "y0": 0, "y1": 1,
               "fillcolor": "#d62728", "opacity": 0.15, "line": {"width": 0}}
              for start in full["start"].unique().sort()]
    rows = [[r["server"], r["operations"], r["peak_in_flight"],
             "unknown" if r["workers"] is None else r["workers"], ms(r["wtime_p95"]),
             ms(r["wtime_p99"]), r["waited_10ms"],
             "" if r["waited_10ms_share"] is None else f"{r['waited_10ms_share']:.1%}",
             "unknown" if r["saturated_seconds"] is None else r["saturated_seconds"]]
            for r in views.pool_servers(summary).iter_rows(named=True)]
    return "".join([
        '<h2>Worker pool</h2><p id="pool-sentence">',
        _e(views.pool_sentence(summary, tables)), "</p>",
        _chart(charts, "chart-pool", traces,
               {"title": {"text": f"in flight (max per {_period_name(tables)}) and workers; "
                                  "wtime p95 (ms, right); shaded: pool full, work queued"},
                "shapes": shapes, "xaxis": {"title": {"text": "time (UTC)"}},
                "yaxis": {"title": {"text": "operations in flight"}, "rangemode": "tozero"},
                "yaxis2": {"title": {"text": "wtime p95 (ms)"}, "overlaying": "y",
                           "side": "right", "rangemode": "tozero"}}),
        _table(["server", "operations", "peak in flight", "workers", "wtime p95 (ms)",
                "wtime p99 (ms)", "waited ≥ 10 ms", "share", "saturated (s)"], rows,
               element_id="pool-servers"),
        _who_waited(tables),
        "<p>In flight: each client operation from its RESULT time less its etime to its "
        "RESULT time. Workers and saturated seconds need 389 DS 3.2.1+ with "
        "nsslapd-statlog-level bit 2 (<code>wbusy=N/M wqdepth=N</code>); "
        "<code>nsslapd-threadnumber</code> is the pool's size otherwise.</p>",
    ])


def _who_waited(tables: dict[str, Table]) -> str:
    out = []
    rows = views.who_waited(tables, 5)
    if rows.height:
        out += ["<p>Who waited 10 ms or more for a worker (the most total wait first):</p>",
                _table(["by", "who", "operations", "wtime total (ms)"],
                       [[r["by"], r["who"], r["waited"], ms(r["wtime"])]
                        for r in rows.iter_rows(named=True)], text_cols=2,
                       element_id="who-waited")]
    held = tables.get("pool_held")
    if held is not None and held.height:
        out += ["<p>Who held the pool: the operations that started in its saturated seconds, "
                "by the workers' time they took (optime):</p>",
                _table(["server", "by", "who", "operations", "optime total (ms)"],
                       [[r["server"], r["by"], views.dn_text(r["who"]) if r["by"] == "bind DN"
                         else r["who"], r["operations"], ms(r["optime_sum"])]
                        for r in held.iter_rows(named=True)], text_cols=3,
                       element_id="who-held")]
    return "".join(out)


def _restart_marks(tables: dict[str, Table], top: float
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A dotted line per server start, and one marker per second with starts whose hover
    lists the servers (labels side by side would print over each other)."""
    restarts = tables.get("restarts")
    if restarts is None or not restarts.height:
        return [], []
    shapes = [{"type": "line", "x0": ts.isoformat(), "x1": ts.isoformat(), "yref": "paper",
               "y0": 0, "y1": 1, "line": {"dash": "dot", "color": "#b00", "width": 1}}
              for ts in restarts["ts"]]
    grouped = restarts.group_by(pl.col("ts").dt.truncate("1s").alias("at")).agg(
        pl.col("server").sort()).sort("at")
    marker = {"type": "scatter", "mode": "markers", "name": "restart",
              "marker": {"symbol": "triangle-down", "color": "#b00", "size": 10},
              "x": _iso(grouped["at"]), "y": [round(top * 1.05, 3)] * grouped.height,
              "hovertemplate": "%{text}<extra>restart</extra>",
              "text": [html.escape("restart: " + ", ".join(s), quote=False)
                       for s in grouped["server"]]}
    return shapes, [marker]


def _latency(tables: dict[str, Table], charts: list[dict[str, Any]],
             colours: dict[str, str]) -> str:
    series = tables.get("timeseries")
    if series is None or "etime_hist_bucket" not in series.columns or not series.height:
        return ""
    hist = histogram.from_lists(series, ["server", "minute", "verb"], "etime")
    traces: list[dict[str, Any]] = []
    groups: list[str] = []
    for view, keys in (("all", []), ("server", ["server"]), ("verb", ["verb"])):
        part = hist.group_by(*keys, "minute", "bucket").agg(pl.col("count").sum())
        pct = histogram.percentiles(part, [*keys, "minute"]).sort(*keys, "minute")
        quantiles = ("p50", "p95", "p99") if view == "all" else ("p95",)
        parts = pct.partition_by(keys, as_dict=True) if keys else {("all",): pct}
        for (name,), rows in sorted(parts.items(), key=lambda kv: str(kv[0][0])):
            for q in quantiles:
                trace = {"type": "scatter", "mode": "lines", "x": _iso(rows["minute"]),
                         "y": [None if v is None else round(v * 1000, 3) for v in rows[q]],
                         "name": q if view == "all" else f"{_label(name)} {q}",
                         "visible": view == "all"}
                if view == "server":
                    trace["line"] = {"color": colours.get(name, "#444")}
                traces.append(trace)
                groups.append(view)
    buttons = [{"label": label, "method": "update",
                "args": [{"visible": [g == view for g in groups]}]}
               for view, label in (("all", "all servers: p50, p95, p99"),
                                   ("server", "p95 per server"), ("verb", "p95 per verb"))]
    return "<h2>Latency</h2>" + _chart(
        charts, "chart-latency", traces,
        {"title": {"text": "etime percentiles per minute (ms)"},
         "xaxis": {"title": {"text": "time (UTC)"}},
         "yaxis": {"title": {"text": "etime (ms)"}, "type": "log", "dtick": 1},  # decades
         "updatemenus": [{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left",
                          "y": 1.15, "yanchor": "top"}]})


def _fingerprints(tables: dict[str, Table], charts: list[dict[str, Any]],
                  show_examples: bool) -> str:
    fps = tables.get("fingerprints")
    if fps is None or not fps.height:
        return ""
    out = ["<h2>Search fingerprints</h2>"]
    for order, title, chart_id, scale in (("etime_sum", "total etime (ms)", "chart-fp-etime",
                                           1000.0),
                                          ("count", "searches", "chart-fp-count", 1.0)):
        top = fps.sort(order, "fingerprint", descending=[True, False]).head(TOP)
        labels = [("⚠ " if u else "") + _label(f)
                  for f, u in zip(top["fingerprint"], top["unindexed"], strict=True)]
        out.append(_chart(charts, chart_id, [{
            "type": "bar", "orientation": "h", "y": labels[::-1],
            "x": [round(float(v) * scale, 3) for v in top[order]][::-1],
            "marker": {"color": ["#c33" if u else "#47a" for u in top["unindexed"]][::-1]}}],
            {"title": {"text": f"top fingerprints by {title} (⚠ unindexed)"},
             "xaxis": {"title": {"text": title}},
             "margin": {"l": 420, "r": 20, "t": 40, "b": 50}}))
    top = fps.sort("etime_sum", "fingerprint", descending=[True, False]).head(TOP * 2)
    flag = '<span class="flag">A</span> '
    headers = ["fingerprint", "count", "errors", "unindexed", "partially", "paged",
               "etime total (ms)", "p50 (ms)", "p95 (ms)", "p99 (ms)", "bind DNs"]
    headers += ["example filter", "base", "scope"] if show_examples else []
    rows = [[_Raw((flag if r["unindexed"] else "") + _e(r["fingerprint"])),
             r["count"], r["errors"], r["unindexed"], r["partially_unindexed"], r["paged"],
             ms(float(r["etime_sum"])), ms(r["etime_p50"]), ms(r["etime_p95"]),
             ms(r["etime_p99"]), r["bind_dns"]] +
            ([r["example"], r["example_base"], scope_name(r["example_scope"])]
             if show_examples else [])
            for r in top.iter_rows(named=True)]
    if not show_examples:
        out.append('<p class="note">Example filters, bases and scopes are hidden: their '
                   "values identify people (<code>dsaccess report OUT --show-examples</code> "
                   "shows them).</p>")
    out.append(_table(headers, rows, element_id="fingerprints"))
    return "".join(out)


def _workloads(tables: dict[str, Table], charts: list[dict[str, Any]]) -> str:
    work = tables.get("workloads")
    if work is None or not height(work):
        return ""
    classes = work.lazy().group_by("workload").agg(
        pl.col("count").sum(), views.exact_seconds("etime_sum")).sort("workload").collect()
    labels = [_label(w) for w in classes["workload"]]
    dns = views.bind_dns(tables, TOP)
    names = [_label(d) for d in dns["bind_dn"]][::-1]
    return "".join([
        "<h2>Workloads and identities</h2>",
        _chart(charts, "chart-workloads", [
            {"type": "pie", "labels": labels, "values": classes["count"].to_list(),
             "domain": {"column": 0}, "name": "operations", "title": {"text": "operations"}},
            {"type": "pie", "labels": labels,
             "values": [round(v * 1000, 3) for v in classes["etime_sum"]],
             "domain": {"column": 1}, "name": "etime", "title": {"text": "total etime"}}],
            {"title": {"text": "workload classes: share of operations and of etime"},
             "grid": {"rows": 1, "columns": 2}}),
        # two panels side by side on one y axis (the DNs), each with its own x axis
        _chart(charts, "chart-binddns", [
            {"type": "bar", "orientation": "h", "name": "operations", "y": names,
             "x": dns["count"].to_list()[::-1], "xaxis": "x", "yaxis": "y"},
            {"type": "bar", "orientation": "h", "name": "total etime (ms)", "y": names,
             "x": [round(v * 1000, 3) for v in dns["etime_sum"]][::-1], "xaxis": "x2",
             "yaxis": "y"}],
            {"title": {"text": "top bind DNs: operations and total etime (ms)"},
             "xaxis": {"domain": [0, 0.47], "title": {"text": "operations"}},
             "xaxis2": {"domain": [0.53, 1], "anchor": "y",
                        "title": {"text": "total etime (ms)"}},
             "yaxis": {"automargin": True}, "showlegend": False,
             "margin": {"l": 330, "r": 20, "t": 40, "b": 50}}),
    ])


def _by_run(tables: dict[str, Table], top: int = 10) -> str:
    """A merge of several runs: the top fingerprints (by total etime) and bind DNs (by
    operations) with a column per run, in the runs' order, so a week shows its days."""
    runs = tables.get(RUNS)
    if runs is None or runs["run"].n_unique() < 2:
        return ""
    order = runs.group_by("run").agg(pl.col("first").min()).sort("first", "run")["run"]
    out = ["<h2>By run</h2><p>The merged runs side by side (a run per column, in time "
           "order).</p>"]
    for kind, value, title, fmt in (
            ("fingerprint", "etime_sum", "top search fingerprints: total etime (ms)",
             lambda v: ms(v * 1000)),
            ("bind_dn", "count", "top bind DNs: operations", lambda v: f"{int(v):,}")):
        part = runs.filter(pl.col("kind") == kind)
        keys = part.group_by("key").agg(pl.col(value).sum()).sort(
            [value, "key"], descending=[True, False]).head(top)["key"]
        shown = part.filter(pl.col("key").is_in(keys.implode()))
        wide = {(r["key"], r["run"]): r[value] for r in shown.group_by("key", "run").agg(
            pl.col(value).sum()).iter_rows(named=True)}
        rows = [[k if kind == "fingerprint" else views.dn_text(k),
                 *(fmt(wide[(k, r)]) if (k, r) in wide else "" for r in order)]
                for k in keys]
        out.append(f"<p>{_e(title)}</p>" + _table([kind.replace("_", " "), *order], rows,
                                                  element_id=f"by-run-{kind}"))
    return "".join(out)


def _errors(summary: dict[str, Any], tables: dict[str, Table],
            charts: list[dict[str, Any]]) -> str:
    by_err = summary["results"]["by_err"]
    # failures only: compareTrue/False, referral, saslBindInProgress are outcomes (OK_ERRORS)
    codes = {k: v for k, v in by_err.items() if not views.outcome(k)}
    outcomes = {k: v for k, v in by_err.items() if views.outcome(k) and k != "0"}
    out = ["<h2>Errors</h2>"]
    if codes:
        out.append(_chart(charts, "chart-errors", [{  # across: the names read level
            "type": "bar", "orientation": "h", "y": [err_name(k) for k in codes][::-1],
            "x": list(codes.values())[::-1]}],
            {"title": {"text": "failed results by LDAP result code"},
             "xaxis": {"title": {"text": "results"}}, "yaxis": {"automargin": True}}))
    if outcomes:
        out.append("<p>Not failures (outcomes): " + ", ".join(
            f"{_e(err_name(k))} {v:,}" for k, v in outcomes.items()) + "</p>")
    failed = views.failed_binds(tables, TOP)
    if failed.height:
        out.append("<p>Failed binds by the DN they tried</p>" + _table(
            ["target DN", "result codes", "failed", "binds"],
            [[views.target_text(r["dn"]), r["codes"], r["failed"], r["binds"]]
             for r in failed.iter_rows(named=True)], text_cols=2, element_id="failed-binds"))
    return "".join(out)


def _connections(tables: dict[str, Table], charts: list[dict[str, Any]]) -> str:
    clients = tables.get("clients")
    if clients is None or not clients.height:
        return ""
    codes = clients.group_by("close_code").agg(pl.col("connections").sum()) \
        .sort("connections", descending=True)
    transport = clients.group_by("transport").agg(pl.col("connections").sum()).sort("transport")
    ips = views.client_ips(clients, TOP)
    return "".join([
        "<h2>Connections</h2>",
        _chart(charts, "chart-close-codes", [{
            "type": "bar", "orientation": "h",
            "y": [html.escape(close_name(c), quote=False) for c in codes["close_code"]][::-1],
            "x": codes["connections"].to_list()[::-1]}],
            {"title": {"text": "how connections ended (close codes)"},
             "xaxis": {"title": {"text": "connections"}}, "yaxis": {"automargin": True}}),
        _chart(charts, "chart-transport", [{
            "type": "pie", "labels": [_label(t) for t in transport["transport"]],
            "values": transport["connections"].to_list()}],
            {"title": {"text": "LDAP, LDAPS, StartTLS and LDAPI connections"}}),
        "<p>Top client IPs, by the etime of their operations</p>" + _table(
            ["client IP", "connections", "operations", "etime total (ms)", "unindexed",
             "errors"],
            [["(unknown)" if r["client_ip"] is None else r["client_ip"], r["connections"],
              r["operations"], ms(r["etime_sum"]), r["unindexed"], r["errors"]]
             for r in ips.iter_rows(named=True)], element_id="clients"),
    ])


def _unindexed(tables: dict[str, Table]) -> str:
    fps = tables.get("fingerprints")
    if fps is None or not fps.height:
        return ""
    slow = fps.filter((pl.col("unindexed") > 0) | (pl.col("partially_unindexed") > 0)).sort(
        "unindexed_etime_sum", "partially_unindexed_etime_sum", "fingerprint",
        descending=[True, True, False])
    rows = [[r["fingerprint"], r["unindexed"], ms(float(r["unindexed_etime_sum"])),
             r["partially_unindexed"], ms(float(r["partially_unindexed_etime_sum"])),
             r.get("unindexed_bind_dns", r["bind_dns"])]
            for r in slow.iter_rows(named=True)]
    return ("<h2>Unindexed searches</h2><p>notes=A: the whole search was a scan; notes=U: "
            "part of it. Counts, etimes and bind DNs are those searches' own.</p>" +
            _table(["fingerprint", "unindexed (A)", "A etime total (ms)", "partially (U)",
                    "U etime total (ms)", "bind DNs"], rows, element_id="unindexed")
            + _index_advice(tables))


def _index_advice(tables: dict[str, Table]) -> str:
    rows = views.index_advice(tables)
    if not rows:
        return ""
    return ("<h3>Index advice</h3><p>The attributes the unindexed and partially unindexed "
            "searches test, the index type each needs, and what those searches cost, per "
            f"server. {_e(views.ADVICE_LEGEND)}</p>" +
            _table(["server", "attribute", "index type", "evidence", "fingerprints",
                    "searches (A)", "searches (U)", "etime total (ms)"],
                   [[r["server"], r["attribute"], r["index"], r["evidence"], r["fingerprints"],
                     r["unindexed"], r["partially_unindexed"], ms(float(r["etime"]))]
                    for r in rows], text_cols=5, element_id="indexes"))


def _slowest(tables: dict[str, Table], show_examples: bool) -> str:
    rows = views.slowest(tables, show_examples)
    if not rows:
        return ""
    return ("<h2>Slowest operations</h2><p>The client operations with the longest etime, "
            "slowest first. A search names its base, scope and filter fingerprint.</p>" +
            _table(["server", "time (UTC)", "conn", "op", "verb", "bind DN", "client",
                    "target", "etime (ms)", "wtime (ms)", "err"],
                   [[r["server"], r["time"], str(r["conn"]), str(r["op"]), r["verb"],
                     r["bind_dn"], r["client"], r["target"], ms(r["etime"]), ms(r["wtime"]),
                     "" if r["err"] is None else str(r["err"])] for r in rows],
                   text_cols=8, element_id="slowest"))
