"""The summary printed at the end of ``run`` and ``merge`` (rich tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

TOP = 10


def print_summary(summary: dict[str, Any], tables: dict[str, pl.DataFrame], out: Path,
                  console: Console | None = None) -> None:
    """Accounting first, then the tables an operator looks at first."""
    console = console or Console(highlight=False, soft_wrap=False, width=140)
    lines, ops = summary["lines"], summary["operations"]
    console.print(f"wrote {out}")
    console.print(
        f"lines {lines['total']:,}: parsed {lines['parsed']:,}, rejected {lines['rejected']:,}, "
        f"header {lines['header']:,}, blank {lines['blank']:,}")
    console.print(
        f"servers {len(summary['servers'])}, connections {summary['connections']:,}, restarts "
        f"{summary['restarts']:,}; unmatched requests {summary['unmatched']['requests']:,}, "
        f"results {summary['unmatched']['results']:,}")
    verbs = ", ".join(f"{v} {ops[v]:,}" for v in ops if v != "total" and ops[v])
    console.print(f"operations {ops['total']:,}: {verbs}")
    s = summary["searches"]
    console.print(f"searches: unindexed {s['unindexed']:,}, partially unindexed "
                  f"{s['partially_unindexed']:,}, paged {s['paged']:,}")
    fps = tables.get("fingerprints")
    if fps is not None and fps.height:
        for order, title in (("etime_sum", "by total etime"), ("count", "by count")):
            table = Table(title=f"top search fingerprints {title}", title_justify="left")
            for col in ("fingerprint", "count", "etime_sum", "p95", "unindexed", "bind DNs"):
                table.add_column(col, overflow="fold", justify="left" if col == "fingerprint"
                                 else "right")
            for r in fps.sort(order, "fingerprint", descending=[True, False]).head(TOP) \
                    .iter_rows(named=True):
                mark = "[bold red]A[/] " if r["unindexed"] else ("U " if r[
                    "partially_unindexed"] else "")
                table.add_row(mark + _esc(r["fingerprint"]), f"{r['count']:,}",
                              f"{r['etime_sum']:.3f}", _num(r["etime_p95"]),
                              f"{r['unindexed']:,}", f"{r['bind_dns']:,}")
            console.print(table)
    work = tables.get("workloads")
    if work is not None and work.height:
        by_dn = work.group_by("bind_dn").agg(pl.col("count").sum(), pl.col("etime_sum").sum(),
                                             pl.col("errors").sum())
        table = Table(title="top bind DNs by operations", title_justify="left")
        for col in ("bind DN", "operations", "etime_sum", "errors"):
            table.add_column(col, justify="left" if col == "bind DN" else "right")
        for r in by_dn.sort("count", "bind_dn", descending=[True, False]).head(TOP) \
                .iter_rows(named=True):
            name = "(anonymous)" if r["bind_dn"] == "" else (r["bind_dn"] or "(unknown)")
            table.add_row(_esc(name), f"{r['count']:,}", f"{r['etime_sum']:.3f}",
                          f"{r['errors']:,}")
        console.print(table)
    errors = summary["results"]["by_err"]
    if errors:
        console.print("results by err: " + ", ".join(f"{k}: {v:,}" for k, v in errors.items()))
    for problem in summary.get("problems", []):
        console.print(f"[yellow]problem:[/] {_esc(problem)}")


def _esc(text: str) -> str:
    return text.replace("[", r"\[")  # log values are not rich markup


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
