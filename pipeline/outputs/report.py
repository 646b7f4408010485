"""Write the report and the metrics of an output folder (run, merge, or `dsaccess report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..sources.store import place
from ..tables import aggregate
from ..tables.frames import Table
from . import files
from .metrics import render_prometheus
from .render import render_html
from .textreport import render_text


def plotly_js() -> str:
    """plotly.js from the installed plotly package: inlined, so the page needs no network."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


def write_reports(out: Path, summary: dict[str, Any], tables: dict[str, Table],
                  info: dict[str, Any], histocrutch: bool = False,
                  show_examples: bool = False) -> None:
    """report.html and metrics.prom, from what run or merge just computed."""
    page = render_html(summary, tables, info, plotly_js(), show_examples)
    files.write_text(page, out / "report.html")
    files.write_text(render_prometheus(summary, tables, histocrutch), out / "metrics.prom")


def write_aggregates(out: files.Where, summary: dict[str, Any],
                     tables: dict[str, Table], info: dict[str, Any],
                     histocrutch: bool = False) -> dict[str, Table]:
    """What run and merge both write: summary.json, run.json, the aggregate tables,
    report.html and metrics.prom. The tables not in ``tables`` are in ``out`` already
    (a run's tasks write those it finishes by server); the tables the report read
    (``read_tables``), which hold the scanned ones' files open (a run's staging folder:
    read them where it is published)."""
    out = place(out)
    for name, table in tables.items():
        files.write_parquet(table, out / f"{name}.parquet")
    files.write_json(info, out / "run.json")
    files.write_json(summary, out / "summary.json")
    shown = read_tables(out, tables)
    write_reports(out, summary, shown, info, histocrutch)
    return shown


def read_tables(out: files.Where, given: dict[str, pl.DataFrame] | None = None
                ) -> dict[str, Table]:
    """The aggregate tables of an output folder as its report reads them: ``given`` (the
    tables just written from memory), the others from their files, and those of
    ``aggregate.SCANNED`` from their files lazily."""
    out = place(out)
    tables: dict[str, Table] = dict(given or {})
    for name in (*aggregate.TABLE_KEYS, aggregate.RUNS):  # (runs: a merge's)
        path = out / f"{name}.parquet"
        if name in aggregate.SCANNED or name not in tables:
            if path.exists():
                tables[name] = files.scan_parquet(path) if name in aggregate.SCANNED \
                    else files.read_parquet(path)
    return tables


def load_output(out: Path) -> tuple[dict[str, Any], dict[str, Table], dict[str, Any]]:
    """Read summary.json, run.json and the aggregate tables of a run or merge."""
    try:
        summary = json.loads((out / "summary.json").read_text())
        info = json.loads((out / "run.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"not the output of dsaccess run or merge: {out} (no summary.json "
                          "or run.json)") from None
    return summary, read_tables(out), info


def regenerate(out: Path, histocrutch: bool = False, show_examples: bool = False) -> None:
    """`dsaccess report OUT`: rewrite report.html and metrics.prom from the aggregates."""
    summary, tables, info = load_output(out)
    write_reports(out, summary, tables, info, histocrutch, show_examples)


def text_summary(out: Path, show_examples: bool = False) -> str:
    summary, tables, _ = load_output(out)
    return render_text(summary, tables, show_examples)
