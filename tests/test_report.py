"""The HTML report in real headless Chromium, the Prometheus metrics, the text summary."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.metrics import LE
from pipeline.run import RunOptions, run

from . import browser
from .conftest import SAMPLE

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    run(RunOptions(inputs=(str(SAMPLE),), out=out, scheduler="synchronous"))
    return out


@pytest.fixture(scope="module")
def hostile_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Log values written to break out of HTML and of metric labels."""
    root = tmp_path_factory.mktemp("hostile")
    logs = root / "logs" / 'ds"<b>'
    logs.mkdir(parents=True)
    evil_dn = 'uid=<script>alert(1)</script>",ou=x\\"y'
    stamp = "[26/Nov/2026:16:20:10.{:09d} +0000]"
    lines = [
        f"{stamp.format(1)} conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2",
        f'{stamp.format(2)} conn=1 op=0 BIND dn="{evil_dn}" method=128 version=3',
        f'{stamp.format(3)} conn=1 op=0 RESULT err=0 tag=97 nentries=0 etime=0.001 '
        f'dn="{evil_dn}"',
        f'{stamp.format(4)} conn=1 op=1 SRCH base="dc=x" scope=2 '
        f'filter="(cn=<img src=x onerror=alert(2)>)" attrs=ALL',
        f"{stamp.format(5)} conn=1 op=1 RESULT err=0 tag=101 nentries=1 etime=0.002 notes=A",
    ]
    (logs / "access").write_text("\n".join(lines) + "\n")
    out = root / "out"
    run(RunOptions(inputs=(str(root / "logs"),), out=out, scheduler="synchronous"))
    return out


needs_chromium = pytest.mark.skipif(not browser.available(),
                                    reason="chromium is not installed (make test installs it)")


@needs_chromium
def test_report_renders_in_chromium_with_no_errors(sample_out: Path) -> None:
    page = sample_out / "report.html"
    dom = browser.dump_dom(page)
    summary = json.loads((sample_out / "summary.json").read_text())
    charts = len(re.findall(r'<div class="chart" id="chart-', page.read_text()))
    assert charts >= 9
    assert f'data-charts-drawn="{charts}"' in dom
    assert re.search(r'<pre id="report-errors"></pre>', dom), "script errors or blocked fetches"
    assert dom.count('class="main-svg"') >= charts  # plotly drew an SVG for each chart
    assert len(re.findall(r"<path[^>]+class=\"(?:point|bars?|surface|js-line)", dom)) > 0 \
        or dom.count("<path") > 100
    for kpi, value in [("lines", summary["lines"]["total"]),
                       ("connections", summary["connections"]),
                       ("operations", summary["operations"]["total"]),
                       ("restarts", summary["restarts"])]:
        assert re.search(rf'id="kpi-{kpi}">{kpi}<b>{value:,}</b>', dom), kpi
    browser.screenshot(page, ARTIFACTS / "report.png")
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000


def test_report_is_self_contained(sample_out: Path) -> None:
    page = (sample_out / "report.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # no element fetches anything: scripts are inline, no stylesheets, images or frames
    assert not re.search(r"<(?:script|img|iframe|link)\b[^>]*\b(?:src|href)=", page)
    assert page.count("<script") == 4  # guard, plotly, data, draw


@needs_chromium
def test_hostile_values_are_escaped_everywhere(hostile_out: Path) -> None:
    page = (hostile_out / "report.html").read_text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    # the DN reaches the page only escaped: as an HTML entity inside the JSON chart data
    assert "\\u0026lt;script\\u0026gt;alert(1)" in page
    dom = browser.dump_dom(hostile_out / "report.html")
    assert '<pre id="report-errors"></pre>' in dom and "<script>alert" not in dom
    prom = (hostile_out / "metrics.prom").read_text()
    assert 'server="ds\\"<b>"' in prom
    assert 'bind_dn="uid=<script>alert(1)</script>\\",ou=x\\\\\\"y"' in prom
    _promtool(hostile_out / "metrics.prom")


def _promtool(path: Path) -> None:
    if PROMTOOL:
        done = subprocess.run([PROMTOOL, "check", "metrics"], input=path.read_text(),
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    else:  # the format's own parser, where promtool cannot be installed
        from prometheus_client.parser import text_string_to_metric_families
        list(text_string_to_metric_families(path.read_text()))


def test_metrics_pass_promtool_and_histograms_add_up(sample_out: Path) -> None:
    _promtool(sample_out / "metrics.prom")
    text = (sample_out / "metrics.prom").read_text()
    ops = pl.read_parquet(sample_out / "operations", hive_partitioning=True).filter(
        ~pl.col("internal"))
    want = {(r[0], r[1], r[2]): r[3] for r in ops.filter(pl.col("etime").is_not_null())
            .group_by("server", "workload", "verb").len().iter_rows()}
    counts = {}
    buckets: dict[tuple, list[tuple[float, int]]] = {}
    for m in re.finditer(r'^dsaccess_operation_etime_seconds_(bucket|count)\{server="([^"]*)",'
                         r'workload="([^"]*)",verb="([^"]*)"(?:,le="([^"]*)")?\} (\d+)$', text,
                         re.M):
        kind, server, workload, verb, le, value = m.groups()
        key = (server, workload, verb)
        if kind == "count":
            counts[key] = int(value)
        else:
            buckets.setdefault(key, []).append((float("inf") if le == "+Inf" else float(le),
                                                int(value)))
    assert counts == want
    for key, series in buckets.items():
        values = [v for _, v in sorted(series)]
        assert values == sorted(values), key          # cumulative
        assert values[-1] == counts[key] and len(values) == len(LE) + 1
    total = {r[0]: r[1] for r in ops.group_by("verb").len().iter_rows()}
    counted = {}
    for m in re.finditer(r'^dsaccess_operations_total\{[^}]*verb="([^"]*)"\} (\d+)$', text, re.M):
        counted[m.group(1)] = counted.get(m.group(1), 0) + int(m.group(2))
    assert counted == total


def test_histocrutch_writes_one_gauge_per_bucket(sample_out: Path, capsys) -> None:
    assert main(["report", str(sample_out), "--histocrutch"]) == 0
    text = (sample_out / "metrics.prom").read_text()
    assert "# TYPE dsaccess_operation_etime_seconds_bucket_le_0_01 gauge" in text
    assert "# TYPE dsaccess_operation_etime_seconds_bucket_le_inf gauge" in text
    _promtool(sample_out / "metrics.prom")
    assert main(["report", str(sample_out)]) == 0
    assert "bucket_le_0_01" not in (sample_out / "metrics.prom").read_text()


def test_text_summary_matches_summary_json(sample_out: Path, capsys) -> None:
    assert main(["report", str(sample_out), "--text"]) == 0
    text = capsys.readouterr().out
    s = json.loads((sample_out / "summary.json").read_text())
    assert f"Restarts:                      {s['restarts']}" in text
    assert f"Searches:                      {s['operations']['SRCH']}" in text
    assert f"Unindexed Searches:            {s['searches']['unindexed']}" in text
    assert f"Total Connections:             {s['connections']}" in text


def test_example_filters_only_when_asked(sample_out: Path) -> None:
    fps = pl.read_parquet(sample_out / "fingerprints.parquet").sort("etime_sum",
                                                                     descending=True).head(30)
    example = fps.filter(pl.col("example") != pl.col("fingerprint"))["example"][0]
    page = (sample_out / "report.html").read_text()
    assert "--show-examples</code> shows them" in page and "<th" in page
    assert "example filter</th>" not in page and f">{html.escape(example)}<" not in page
    assert main(["report", str(sample_out), "--show-examples"]) == 0
    page = (sample_out / "report.html").read_text()
    assert "example filter</th>" in page and f">{html.escape(example)}<" in page
    assert main(["report", str(sample_out)]) == 0
