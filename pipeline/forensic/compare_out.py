"""``dsaccess compare``'s files and text: read two outputs, write ``compare.json``, a
``compare_<dimension>.parquet`` per dimension and ``compare.html`` into OUT (staged, then
swapped in, as run and merge do), or print the ranked lists."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import polars as pl

from ..names import ms
from ..outputs import files
from ..outputs.render import CSP, GUARD, STYLE
from ..outputs.report import load_output
from .compare import MIN_COUNT, RANKED, Threshold, check_comparable, compare, crossed, hours, ranked

FORMAT = "dsaccess-compare/1"
SHOWN = 25  # rows of each ranked list in compare.json, the page and the text


def run_compare(base: Path, new: Path, thresholds: list[Threshold],
                min_count: int = MIN_COUNT) -> dict[str, Any]:
    """Compare two outputs: the tables by dimension and the document of compare.json."""
    (bs, bt, bi), (ns, nt, ni) = load_output(base), load_output(new)
    check_comparable(bi, ni, (str(base), str(new)))
    tables = compare((bs, bt), (ns, nt))
    doc = {
        "format": FORMAT, "base": str(base), "new": str(new), "min_count": min_count,
        "hours": {"base": hours(bs), "new": hours(ns)},
        "time_range": {"base": bs["time_range"], "new": ns["time_range"]},
        "regressions": {d: _rows(ranked(tables[d], min_count)) for d in RANKED},
        "improvements": {d: _rows(ranked(tables[d], min_count, better=True)) for d in RANKED},
        "appeared": {d: t.filter(pl.col("status") == "appeared").height
                     for d, t in tables.items()},
        "vanished": {d: t.filter(pl.col("status") == "vanished").height
                     for d, t in tables.items()},
        "crossed": crossed(tables, thresholds, min_count),
        "thresholds": [f"{t.metric}>{t.ratio:g}x" for t in thresholds],
    }
    return {"doc": doc, "tables": tables}


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    keep = ["key", "status", "base_count", "new_count", "base_rate", "new_rate",
            "base_p95", "new_p95", "p95_ratio", "base_etime_per_hour", "new_etime_per_hour",
            "etime_delta", "base_unindexed_share", "new_unindexed_share"]
    if not df.height:
        return []
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.head(SHOWN).select(keep).iter_rows(named=True)]


def write_compare(out: Path, result: dict[str, Any]) -> None:
    staging = files.staging_dir(out)
    try:
        files.write_json(result["doc"], staging / "compare.json")
        for dimension, table in result["tables"].items():
            files.write_parquet(table, staging / f"compare_{dimension}.parquet")
        files.write_text(render_page(result["doc"]), staging / "compare.html")
        files.publish(staging, out)
    except BaseException:
        files.discard(staging)
        raise


def text(doc: dict[str, Any]) -> str:
    """The ranked lists, for the terminal."""
    lines = [f"{doc['new']} against {doc['base']} (per hour: {doc['hours']['new']:.2f} h "
             f"against {doc['hours']['base']:.2f} h)"]
    for title in ("regressions", "improvements"):
        for dimension, rows in doc[title].items():
            lines.append(f"{title} by {dimension.replace('_', ' ')} (etime per hour added "
                         f"or saved; at least {doc['min_count']} operations):")
            lines += [f"  {_change(r)}  {r['key'] or '(anonymous)'}" for r in rows[:5]]
            if not rows:
                lines.append("  none")
    appeared = ", ".join(f"{d} {n}" for d, n in doc["appeared"].items() if n)
    vanished = ", ".join(f"{d} {n}" for d, n in doc["vanished"].items() if n)
    lines.append(f"appeared: {appeared or 'none'}; vanished: {vanished or 'none'}")
    return "\n".join(lines) + "\n"


def _change(r: dict[str, Any]) -> str:
    p95 = (f"p95 {ms(r['base_p95'])} → {ms(r['new_p95'])} ms" if r["status"] == "both"
           else r["status"])
    return (f"{r['etime_delta']:+,.1f} s/h etime, {r['base_rate']:,.0f} → "
            f"{r['new_rate']:,.0f} ops/h, {p95}")


def render_page(doc: dict[str, Any]) -> str:
    """compare.html: the ranked lists with side-by-side bars of etime per hour (base grey,
    new coloured), offline, in the report's look."""
    def section(title: str, rows: list[dict[str, Any]], colour: str) -> str:
        if not rows:
            return f"<h3>{title}</h3><p>None.</p>"
        top = max(max(r["base_etime_per_hour"], r["new_etime_per_hour"]) for r in rows) or 1.0
        body = "".join(
            "<tr>"
            f"<td class='t'>{html.escape(r['key'] or '(anonymous)')}</td>"
            f"<td class='t'>{html.escape(r['status'])}</td>"
            f"<td class='n'>{r['base_count']:,}</td><td class='n'>{r['new_count']:,}</td>"
            f"<td class='n'>{ms(r['base_p95'])}</td><td class='n'>{ms(r['new_p95'])}</td>"
            f"<td class='n'>{r['etime_delta']:+,.1f}</td>"
            f"<td class='bars'>{_bar(r['base_etime_per_hour'], top, '#aaa')}"
            f"{_bar(r['new_etime_per_hour'], top, colour)}</td></tr>" for r in rows)
        head = "".join(f"<th>{h}</th>" for h in (
            "key", "status", "base ops", "new ops", "base p95 (ms)",
            "new p95 (ms)", "etime Δ (s/h)", "etime per hour: base, new"))
        return f"<h3>{title}</h3><table class='compare'><tr>{head}</tr>{body}</table>"

    summary = html.escape(text(doc)).replace("\n", "<br>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        "<title>dsaccess compare</title>",
        f"<style>{STYLE}.bars{{width:320px}}.bar{{height:7px;margin:1px 0}}</style>",
        f"<script>{GUARD}</script></head><body>",
        "<h1>389 Directory Server access: two periods compared</h1>",
        '<pre id="report-errors"></pre>',
        f"<p>{summary}</p>",
        "<h2>Thresholds crossed</h2><ul>" + "".join(
            f"<li>{html.escape(c)}</li>" for c in doc["crossed"]) + "</ul>"
        if doc["crossed"] else "",
        *(f"<h2>By {d.replace('_', ' ')}</h2>"
          + section("Regressions", doc["regressions"][d], "#d62728")
          + section("Improvements", doc["improvements"][d], "#2ca02c") for d in RANKED),
        "</body></html>"])


def _bar(value: float, top: float, colour: str) -> str:
    width = max(1.0, 300 * value / top) if value > 0 else 0.0
    return f"<div class='bar' style='width:{width:.0f}px;background:{colour}'></div>"
