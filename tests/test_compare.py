"""`dsaccess compare BASE NEW`: two periods written with a known change (issue 34, part 2)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run

from . import browser
from .test_views import T0, write_log

STEP = timedelta(milliseconds=100)


def _period(start: datetime, slow: float, new_filter: bool) -> list[tuple[datetime, str]]:
    """Two connections over the same 24 s: 120 searches by uid (etime 0.05 s times
    ``slow``) and 120 by mail (0.02 s, steady) on one; on the other, when ``new_filter``,
    60 unindexed searches by description (0.1 s), a filter the base period never had."""
    lines = [(start, "conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.9"),
             (start, "conn=2 fd=65 slot=65 connection from 10.0.0.2 to 10.0.0.9")]
    for conn in (1, 2):
        lines += [(start, f'conn={conn} op=0 BIND dn="uid=svc-app,dc=x" method=128 version=3'),
                  (start, f'conn={conn} op=0 RESULT err=0 tag=97 nentries=0 etime=0.001 '
                          'dn="uid=svc-app,dc=x"')]
    t = start
    for op in range(1, 241):
        t += STEP
        filt, etime = (f"(uid=u{op})", 0.05 * slow) if op % 2 else (f"(mail=m{op})", 0.02)
        lines += [(t, f'conn=1 op={op} SRCH base="dc=x" scope=2 filter="{filt}" attrs=ALL'),
                  (t, f"conn=1 op={op} RESULT err=0 tag=101 nentries=1 etime={etime:.6f}")]
        if new_filter and op % 4 == 0:
            n = op // 4
            lines += [(t, f'conn=2 op={n} SRCH base="dc=x" scope=2 filter="(description=*d{n}*)"'
                          " attrs=ALL"),
                      (t, f"conn=2 op={n} RESULT err=0 tag=101 nentries=1 etime=0.100000 "
                          "notes=A")]
    return lines


@pytest.fixture(scope="module")
def periods(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    outs = []
    for name, start, slow, new in (("base", T0, 1.0, False),
                                   ("new", T0 + timedelta(days=7), 3.0, True)):
        logs = write_log(root / name / "logs", _period(start, slow, new))
        out = root / name / "out"
        run(RunOptions(inputs=(f"ds1={logs}",), out=out, scheduler="synchronous"))
        outs.append(out)
    return root, outs[0], outs[1]


def test_the_slower_fingerprint_and_the_new_unindexed_one_rank_first(periods, capsys) -> None:
    root, base, new = periods
    out = root / "cmp"
    assert main(["compare", str(base), str(new), "-o", str(out), "--fail-on", "p95>2x"]) == 2
    err = capsys.readouterr().err
    doc = json.loads((out / "compare.json").read_text())
    worse = doc["regressions"]["fingerprint"]
    # (uid=...): 120 x 0.10 s more over the same span; (description=*...*): 60 x 0.1 s, new
    assert [r["key"] for r in worse] == ["sub (uid=...)", "sub (description=*...*)"]
    assert worse[0]["etime_delta"] == pytest.approx(120 * 0.10 / doc["hours"]["new"], rel=1e-6)
    assert worse[0]["p95_ratio"] == pytest.approx(3.0, rel=0.03)  # histogram buckets: 2%
    assert worse[1]["status"] == "appeared" and worse[1]["new_unindexed_share"] == 1.0
    assert doc["appeared"]["fingerprint"] == 1 and doc["vanished"]["fingerprint"] == 0
    # the threshold names the fingerprint whose p95 tripled; the steady one crosses nothing
    assert doc["crossed"] == [c for c in doc["crossed"] if "(uid=...)" in c or "svc-app" in c
                              or "service-accounts" in c]
    assert any(c.startswith("p95 ×") and c.endswith("fingerprint sub (uid=...)")
               for c in doc["crossed"]) and "crossed p95" in err
    table = pl.read_parquet(out / "compare_fingerprint.parquet")
    steady = table.filter(pl.col("key") == "sub (mail=...)").row(0, named=True)
    assert steady["base_count"] == steady["new_count"] == 120 and steady["etime_delta"] == 0


def test_identical_periods_give_no_regression_and_exit_0(periods, capsys) -> None:
    _, base, _ = periods
    assert main(["compare", str(base), str(base), "--text", "--fail-on", "p95>1.01x"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("  none") == 6  # regressions and improvements, three dimensions


def test_outputs_of_other_fingerprint_settings_are_refused(periods, tmp_path: Path,
                                                           capsys) -> None:
    root, base, _ = periods
    other = tmp_path / "sorted"
    run(RunOptions(inputs=(f"ds1={root / 'new' / 'logs'}",), out=other,
                   scheduler="synchronous", sort_operands=True))
    assert main(["compare", str(base), str(other)]) == 64
    assert "different fingerprint options (--sort-operands)" in capsys.readouterr().err
    assert main(["compare", str(base), str(base), "--fail-on", "p95 went up"]) == 64
    assert "--fail-on: not a threshold" in capsys.readouterr().err


@pytest.mark.skipif(not browser.available(), reason="chromium is not installed")
def test_the_page_renders_offline_with_its_bars(periods) -> None:
    root, base, new = periods
    out = root / "page"
    assert main(["compare", str(base), str(new), "-o", str(out)]) == 0
    dom = browser.dump_dom(out / "compare.html")
    assert '<pre id="report-errors"></pre>' in dom  # no script error
    widths = [float(w) for w in re.findall(r"class=\"bar\" style=\"width:(\d+)px", dom)]
    assert widths and max(widths) == 300 and all(w >= 0 for w in widths)
