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
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run
from pipeline.names import err_name
from pipeline.outputs.metrics import LE

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
        f"{stamp.format(6)} conn=2 fd=65 slot=65 connection from 10.0.0.3 to 10.0.0.2",
        f'{stamp.format(7)} conn=2 op=0 BIND dn="{AMP_DN}" method=128 version=3',
        f"{stamp.format(8)} conn=2 op=0 RESULT err=49 tag=97 nentries=0 etime=0.001",
    ]
    (logs / "access").write_text("\n".join(lines) + "\n")
    out = root / "out"
    run(RunOptions(inputs=(str(root / "logs"),), out=out, scheduler="synchronous"))
    return out


AMP_DN = "uid=a&b<c>,dc=x"  # text that must read as written, escaped exactly once

needs_chromium = pytest.mark.skipif(not browser.available(),
                                    reason="chromium is not installed (make test installs it)")


@needs_chromium
def test_report_renders_in_chromium_with_no_errors(sample_out: Path) -> None:
    page = sample_out / "report.html"
    dom = browser.dump_dom(page)
    summary = json.loads((sample_out / "summary.json").read_text())
    charts = len(re.findall(r'<div class="chart" id="chart-', page.read_text()))
    assert charts >= 10
    assert f'data-charts-drawn="{charts}"' in dom
    assert re.search(r'<pre id="report-errors"></pre>', dom), "script errors or blocked fetches"
    # every chart shows data: visible traces none of them empty, drawn marks, in bar charts
    # a bar spanning a tenth of the plot in every trace, and no axis labels over each other
    seen = dict(re.findall(r'<div class="chart[^"]*" id="(chart-[a-z-]+)"[^>]*data-seen="([^"]*)"',
                           dom))
    assert len(seen) == charts
    for chart, figures in seen.items():
        traces, empty, marks, bar_traces, full_bar_traces, overlaps = map(int, figures.split())
        assert traces > 0 and empty == 0 and marks > 0, (chart, figures)
        assert full_bar_traces == bar_traces and overlaps == 0, (chart, figures)
    assert seen["chart-binddns"].split()[3:] == ["2", "2", "0"]  # operations and etime bars
    for kpi, value in [("lines", summary["lines"]["total"]),
                       ("connections", summary["connections"]),
                       ("fleet-peak-concurrent-connections", summary["peak_connections"]),
                       ("operations", summary["operations"]["total"]),
                       ("restarts", summary["restarts"])]:
        assert re.search(rf'id="kpi-{kpi}">[^<]*<b>{value:,}</b>', dom), kpi
    verbs = _table_rows(dom, "verbs")
    assert verbs[0][:2] == ["SRCH", f"{summary['operations']['SRCH']:,}"]
    # failed binds: by the DN the BIND tried, counts from the operations themselves
    ops = pl.read_parquet(sample_out / "operations", hive_partitioning=True)
    failed = ops.filter((pl.col("verb") == "BIND") & ~pl.col("internal")
                        & pl.col("err").is_not_null() & ~pl.col("err").is_in([0, 5, 6, 10, 14]))
    want = dict(failed.group_by("dn").len().iter_rows())
    rows = _table_rows(dom, "failed-binds")
    assert rows and sum(r[0].startswith("uid=") for r in rows) >= len(rows) - 1
    for dn, codes, count, _ in rows:
        if dn.startswith("uid="):
            assert int(count.replace(",", "")) == want[dn], dn
            assert "49 invalidCredentials" in codes
    header = _table_rows(dom, "servers")
    assert [r[4] for r in header] == [f"{s['peak_connections']:,}"
                                      for s in summary["servers"].values()]
    for png, size in (("report.png", "1400,9000"), ("report-top.png", "1400,1400")):
        browser.screenshot(page, ARTIFACTS / png, size)
        assert (ARTIFACTS / png).stat().st_size > 50_000


def _table_rows(dom: str, element_id: str) -> list[list[str]]:
    """The text of each body row's cells of the table with this id."""
    table = re.search(rf'<table id="{element_id}">(.*?)</table>', dom, re.S)
    assert table, element_id
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)[1:]
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]


def test_times_read_in_milliseconds_and_codes_by_name(sample_out: Path) -> None:
    page = (sample_out / "report.html").read_text()
    visible = page.split('<script type="application/json"')[0]
    visible = visible.split("</head>")[1]
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{4,}", visible)  # no nanoseconds shown
    assert "2026-11-26 16:20:10.475" in visible
    assert "49 invalidCredentials" in page and "B1 client closed without UNBIND" in page
    for header in re.findall(r"<th[^>]*>([^<]*(?:etime|p50|p95|p99)[^<]*)</th>", visible):
        assert "(ms)" in header, header


def test_report_is_self_contained(sample_out: Path) -> None:
    page = (sample_out / "report.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # no element fetches anything: scripts are inline, no stylesheets, images or frames
    assert not re.search(r"<(?:script|img|iframe|link)\b[^>]*\b(?:src|href)=", page)
    assert page.count("<script") == 4  # guard, plotly, data, draw


def test_hostile_values_are_escaped_in_the_page_source(hostile_out: Path) -> None:
    page = (hostile_out / "report.html").read_text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    # the DN reaches the page only escaped: as an HTML entity inside the JSON chart data
    assert "\\u0026lt;script\\u0026gt;alert(1)" in page
    # escaped once: the source holds the entities once
    assert "uid=a&amp;b&lt;c&gt;,dc=x" in page and "&amp;amp;" not in page


@needs_chromium
def test_hostile_values_run_no_script_and_read_as_logged(hostile_out: Path) -> None:
    dom = browser.dump_dom(hostile_out / "report.html")
    assert '<pre id="report-errors"></pre>' in dom and "<script>alert" not in dom
    assert [r[0] for r in _table_rows(dom, "failed-binds")] == [AMP_DN]


def test_hostile_values_are_escaped_in_metric_labels(hostile_out: Path) -> None:
    prom = (hostile_out / "metrics.prom").read_text()
    assert 'server="ds\\"<b>"' in prom
    assert 'bind_dn="uid=<script>alert(1)</script>\\",ou=x\\\\\\"y"' in prom
    _promtool(hostile_out / "metrics.prom")


def _promtool(path: Path) -> None:
    if not PROMTOOL:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus)")
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=path.read_text(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_metrics_pass_promtool_and_histograms_add_up(sample_out: Path) -> None:
    text = (sample_out / "metrics.prom").read_text()
    ops = pl.read_parquet(sample_out / "operations", hive_partitioning=True).filter(
        ~pl.col("internal"))
    # ABANDON's line carries the abandoned operation's etime: none is ABANDON's own
    want = {(r[0], r[1], r[2]): r[3] for r in ops.filter(
        pl.col("etime").is_not_null() & (pl.col("verb") != "ABANDON"))
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
    _promtool(sample_out / "metrics.prom")  # last: without promtool, the rest still ran


def test_histocrutch_writes_one_gauge_per_bucket(sample_out: Path, tmp_path: Path,
                                                 capsys) -> None:
    assert main(["report", str(sample_out), "--histocrutch"]) == 0
    text = (sample_out / "metrics.prom").read_text()
    assert "# TYPE dsaccess_operation_etime_seconds_bucket_le_0_01 gauge" in text
    assert "# TYPE dsaccess_operation_etime_seconds_bucket_le_inf gauge" in text
    assert main(["report", str(sample_out)]) == 0
    assert "bucket_le_0_01" not in (sample_out / "metrics.prom").read_text()
    (tmp_path / "crutch.prom").write_text(text)
    _promtool(tmp_path / "crutch.prom")  # last: without promtool, the rest still ran


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


def test_text_summary_shows_example_filters_only_when_asked(sample_out: Path, capsys) -> None:
    fps = pl.read_parquet(sample_out / "fingerprints.parquet").filter(pl.col("unindexed") > 0)
    example = fps.sort("unindexed", "fingerprint", descending=[True, False]).row(0, named=True)
    assert main(["report", str(sample_out), "--text"]) == 0
    assert "filter=" not in capsys.readouterr().out
    assert main(["report", str(sample_out), "--text", "--show-examples"]) == 0
    assert f"filter={example['example']!r}" in capsys.readouterr().out


@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_run_summary_fits_the_terminal_and_cuts_no_number_or_entry(sample_out: Path,
                                                                       width: int) -> None:
    """Tables up to 135 columns wrapped at 80 and split entries ("16⏎noSuchAttribute")
    (issue 35, part 1, item 6): every line fits, columns of least use go first, DNs are
    shortened in the middle, numbers never, and an error entry stays on one line."""
    import io

    from rich.console import Console

    from pipeline.names import err_name
    from pipeline.outputs import views
    from pipeline.outputs.report import load_output
    from pipeline.outputs.terminal import print_summary

    summary, tables, _ = load_output(sample_out)
    buf = io.StringIO()
    print_summary(summary, tables, sample_out,
                  Console(file=buf, width=width, highlight=False, soft_wrap=False))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    assert not [line for line in lines if re.search(r"(?<![\w=])[\d,.]+…", line)]
    by_err = summary["results"]["by_err"]
    top = sorted(((k, v) for k, v in by_err.items() if int(k) not in (0, 5, 6, 10, 14)),
                 key=lambda kv: (-kv[1], kv[0]))[:6]
    for k, v in top:
        assert any(f"{err_name(k)} {v:,}" in line for line in lines), (k, width)
    dns = [views.dn_text(d) for d in views.bind_dns(tables, 5)["bind_dn"]] + [
        views.target_text(d) for d in views.failed_binds(tables, 3)["dn"]]
    shown = [line.split("  ")[0].strip() for line in lines if line.startswith(" uid=")]
    for text in shown:  # whole, or the start and the end of one of them
        head, _, tail = text.partition("…")
        assert any(d == text or (d.startswith(head) and d.endswith(tail) and tail)
                   for d in dns), text
    assert any("…" in t for t in shown) is (width == 60)
    assert " SRCH " in "".join(lines)  # the verb of most operations is never dropped


def test_the_run_summary_is_not_cut_when_not_on_a_terminal(capsys) -> None:
    from pipeline.outputs.terminal import FULL_WIDTH, summary_console
    assert summary_console().width == FULL_WIDTH  # pytest's stdout is no terminal


def test_the_errors_chart_counts_failures_only(sample_out: Path) -> None:
    """compareTrue was the Errors chart's longest bar on the sample (issue 35, part 2,
    item 4): outcomes are listed apart, and the chart's bars are the failures."""
    page = (sample_out / "report.html").read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page).group(1))
    bars = next(c for c in data["charts"] if c["id"] == "chart-errors")["data"][0]
    summary = json.loads((sample_out / "summary.json").read_text())
    failures = {k: v for k, v in summary["results"]["by_err"].items()
                if int(k) not in (0, 5, 6, 10, 14)}
    assert dict(zip(bars["y"], bars["x"], strict=True)) == {
        err_name(k): v for k, v in failures.items()}
    assert "6 compareTrue" not in bars["y"] and summary["results"]["by_err"]["6"] > 0
    outcomes = re.search(r"<p>Not failures \(outcomes\): (.*?)</p>", page).group(1)
    assert f"6 compareTrue {summary['results']['by_err']['6']:,}" in outcomes


def test_the_text_summary_has_a_block_per_server_after_the_fleets(sample_out: Path,
                                                                    capsys) -> None:
    assert main(["report", str(sample_out), "--text"]) == 0
    text = capsys.readouterr().out
    s = json.loads((sample_out / "summary.json").read_text())
    blocks = re.split(r"^----------- Server (\S+) ------------$", text, flags=re.M)
    assert blocks[1::2] == sorted(s["servers"])  # the fleet's first, then one a server
    for name, block in zip(blocks[1::2], blocks[2::2], strict=True):
        mine = s["servers"][name]
        # Total Operations: every client operation, UNBIND and ABANDON among them
        assert f"Total Operations:              {mine['operations']['total']}" in block
        assert mine["operations"]["total"] == sum(
            v for k, v in mine["operations"].items() if k != "total")
        assert f"Unbinds:                       {mine['operations']['UNBIND']}" in block
        assert f"Total Connections:             {mine['connections']}" in block
        transports = [int(n) for n in re.findall(r"^ - \w+ Connections:\s+(\d+)$", block,
                                                  re.M)]
        assert sum(transports) == mine["connections"]
    assert f"Total Operations:              {s['operations']['total']}" in blocks[0]
