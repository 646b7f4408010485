"""What the capacity views say, against truth: failed binds by target, rates over covered
seconds, peak concurrency, DNs compared as LDAP does, unindexed etimes, warnings, -v."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run
from pipeline.outputs import views
from pipeline.outputs.merge import merge_runs
from pipeline.outputs.report import load_output
from pipeline.tables.dn import canonical

from .conftest import SAMPLE

T0 = datetime(2026, 11, 26, 16, 0, 0, tzinfo=UTC)


def stamp(at: datetime) -> str:
    return at.strftime("[%d/%b/%Y:%H:%M:%S.") + f"{at.microsecond * 1000:09d} +0000]"


def write_log(folder: Path, lines: list[tuple[datetime, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "access").write_text("".join(f"{stamp(t)} {text}\n" for t, text in lines))
    return folder


def session(conn: int, at: datetime, bind_dn: str, result_dn: str, err: int = 0,
            ops: int = 0, step: timedelta = timedelta(milliseconds=10)
            ) -> list[tuple[datetime, str]]:
    """A connection: open, BIND as ``bind_dn`` (its RESULT naming ``result_dn``), ``ops``
    searches, UNBIND and the close."""
    t = at
    out = [(t, f"conn={conn} fd=64 slot=64 connection from 10.0.0.{conn % 250} to 10.0.0.1"),
           (t + step, f'conn={conn} op=0 BIND dn="{bind_dn}" method=128 version=3')]
    t += 2 * step
    dn = f' dn="{result_dn}"' if err == 0 else ""
    out.append((t, f"conn={conn} op=0 RESULT err={err} tag=97 nentries=0 etime=0.001000{dn}"))
    for op in range(1, ops + 1):
        t += step
        out.append((t, f'conn={conn} op={op} SRCH base="dc=x" scope=2 filter="(uid=u{op})" '
                       f'attrs=ALL'))
        t += step
        out.append((t, f"conn={conn} op={op} RESULT err=0 tag=101 nentries=1 etime=0.002000"))
    t += step
    out += [(t, f"conn={conn} op={ops + 1} UNBIND"),
            (t + step, f"conn={conn} op={ops + 1} fd=64 closed - U1")]
    return out


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("views") / "out"
    run(RunOptions(inputs=(str(SAMPLE),), out=out, scheduler="synchronous"))
    return out


def _ops(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "operations", hive_partitioning=True)


def test_failed_binds_are_counted_by_the_dn_they_tried(sample_out: Path) -> None:
    _, tables, _ = load_output(sample_out)
    ops = _ops(sample_out).filter((pl.col("verb") == "BIND") & ~pl.col("internal"))
    failed = ops.filter(pl.col("err").is_not_null() & ~pl.col("err").is_in([0, 5, 6, 10, 14]))
    want = {canonical(dn): n for dn, n in failed.group_by("dn").len().iter_rows()}
    got = views.failed_binds(tables, 10_000)
    assert {canonical(dn): n for dn, n in got.select("dn", "failed").iter_rows()} == want
    assert sum(want.values()) == got["failed"].sum() == 604  # logconv: 604 err=49 binds
    assert got["dn"][0].startswith("uid=")  # not "(anonymous)": the identity a failure resets
    # the identity in force on a failed BIND is anonymous, which is why the target is used
    assert set(failed["bind_dn"].unique()) <= {"", None}


def test_rates_divide_by_the_seconds_a_period_covers(tmp_path: Path) -> None:
    # 2 searches per second for 40 min 20 s: per-minute periods, the last one 20 s long
    lines, conn = [], 1
    end = T0 + timedelta(minutes=40, seconds=20)
    at = T0
    while at < end:
        lines += session(conn, at, "", "", ops=0, step=timedelta(milliseconds=100))
        conn, at = conn + 1, at + timedelta(seconds=1)
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={write_log(tmp_path / 'logs', lines)}",), out=out,
                   scheduler="synchronous"))
    load = pl.read_parquet(out / "load.parquet").sort("start")
    assert set(load["seconds"]) == {60}
    assert load.height == 41
    # each connection is a BIND and an UNBIND: 2 operations a second in every period
    assert load["rate"].to_list() == pytest.approx([2.0] * 41, rel=0.05)
    assert load["covered_seconds"][-1] == pytest.approx(19.4, abs=0.001)  # to 40:19.4
    assert load["operations"][-1] == 40  # the 20 connections of 40:00 to 40:19
    minute = views.minute_rates_by_verb(json.loads((out / "summary.json").read_text()),
                                        {"timeseries": pl.read_parquet(out / "timeseries.parquet")})
    last = minute.filter(pl.col("minute") == minute["minute"].max())
    assert last["rate"].sum() == pytest.approx(2.0, rel=0.05)


def test_a_partial_period_has_its_true_rate_and_never_makes_the_peak(sample_out: Path) -> None:
    """Issue 35, part 2, item 7: a period the window covers in part has the rate over the
    seconds it covers (the sample's per-second periods at each server's edges: 32
    operations in 0.525 s are 61.0/s, not 32.0/s); the peaks skip periods covered for less
    than half their length."""
    _, tables, _ = load_output(sample_out)
    load = tables["load"]
    partial = load.filter(pl.col("covered_seconds") < pl.col("seconds"))
    assert partial.height >= 2
    for row in partial.iter_rows(named=True):
        if row["covered_seconds"]:
            assert row["rate"] == pytest.approx(row["operations"] / row["covered_seconds"])
        else:
            assert row["rate"] is None
    assert (partial["rate"] > partial["operations"]).any()  # not divided by a whole second
    for row in views.server_rates(tables).iter_rows(named=True):
        mine = load.filter((pl.col("server") == row["server"])
                           & (pl.col("start") == row["peak_at"]))
        assert mine["covered_seconds"][0] >= views.PEAK_MIN_COVER * mine["seconds"][0]
        assert row["peak_rate"] == mine["rate"][0]


def test_a_short_window_is_drawn_per_second_and_the_partial_minute_is_not_diluted(
        sample_out: Path) -> None:
    _, tables, _ = load_output(sample_out)
    load = tables["load"]
    assert set(load["seconds"]) == {1}
    summary = json.loads((sample_out / "summary.json").read_text())
    client = _ops(sample_out).filter(~pl.col("internal"))
    assert load["operations"].sum() == client.height
    # real389a's last minute: 16:22:00 to its last event at 16:22:38.399
    a = client.filter(pl.col("server") == "real389a").with_columns(
        pl.coalesce("ts", "result_ts").dt.truncate("1m").alias("m"))
    last = a.filter(pl.col("m") == a["m"].max()).height
    minute = views.minute_rates_by_verb(
        {"servers": {"real389a": summary["servers"]["real389a"]}},
        {"timeseries": tables["timeseries"].filter(pl.col("server") == "real389a")})
    got = minute.filter(pl.col("minute") == minute["minute"].max())["rate"].sum()
    assert got == pytest.approx(last / 38.399, rel=0.01)
    assert got > last / 60 * 1.5


def _independent_peak(*folders: Path) -> int:
    """Open and close lines of the servers' folders in time order, a restart (conn=1)
    closing what is open on its server: the most connections open at one instant."""
    events = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" \
                else path.read_bytes()
            for line in data.decode().splitlines():
                m = re.match(r"\[(\S+)\.(\d{6})\d* ([-+]\d{4})\] conn=(\d+) (.*)", line)
                if not m:
                    continue
                ts = datetime.strptime(f"{m.group(1)}.{m.group(2)} {m.group(3)}",
                                       "%d/%b/%Y:%H:%M:%S.%f %z")
                conn, rest = int(m.group(4)), m.group(5)
                if " connection from " in f" {rest}":
                    events.append((ts, 1, folder, conn))
                elif re.search(r"op=-?\d+ fd=\d+ (closed|Disconnect)", rest):
                    events.append((ts, -1, folder, conn))
    events.sort(key=lambda e: (e[0], e[1]))
    open_: dict[Path, set[int]] = {folder: set() for folder in folders}
    peak = 0
    for _, kind, folder, conn in events:
        if kind == 1:
            if conn == 1:
                open_[folder].clear()
            open_[folder].add(conn)
            peak = max(peak, sum(len(conns) for conns in open_.values()))
        else:
            open_[folder].discard(conn)
    return peak


def test_peak_concurrent_connections_match_a_sweep_of_the_lines(sample_out: Path) -> None:
    """Each server's peak, and the fleet's: the most open at one instant on all servers
    together (issue 35, part 2, item 3: 28 on the sample, at 16:21:48), not the largest
    server's (14)."""
    summary = json.loads((sample_out / "summary.json").read_text())
    servers = ("real389a", "real389b")
    for server in servers:
        assert summary["servers"][server]["peak_connections"] == \
            _independent_peak(SAMPLE / server) > 1
    assert summary["peak_connections"] == _independent_peak(
        *(SAMPLE / server for server in servers)) == 28
    assert summary["peak_connections"] > max(
        s["peak_connections"] for s in summary["servers"].values())


def test_peaks_swept_a_slab_of_time_at_a_time_are_those_of_the_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fleet's sweep reads the servers' opens and closes a slab of time at a time, so
    that it holds no more as a run grows: cut into slabs of a few hundred events, the
    level carried from slab to slab, the peaks are still those of the lines."""
    from pipeline.engine import saturation

    monkeypatch.setattr(saturation, "SLAB_EVENTS", 200)
    cuts: list[tuple[int, ...]] = []
    real = saturation.slab_cuts

    def spy(spans: list[tuple[int, int, int]]) -> tuple[int, ...]:
        cuts.append(real(spans))
        return cuts[-1]
    monkeypatch.setattr(saturation, "slab_cuts", spy)
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(SAMPLE),), out=out, scheduler="synchronous"))
    summary = json.loads((out / "summary.json").read_text())
    assert len(cuts[-1]) > 10
    servers = ("real389a", "real389b")
    for server in servers:
        assert summary["servers"][server]["peak_connections"] == \
            _independent_peak(SAMPLE / server)
    assert summary["peak_connections"] == _independent_peak(
        *(SAMPLE / server for server in servers)) == 28


def test_dns_differing_in_case_are_one_identity_shown_as_most_often_written(
        tmp_path: Path) -> None:
    lines = []
    spellings = ["cn=Directory Manager"] * 3 + ["CN=directory manager"]
    for conn, spelled in enumerate(spellings, start=1):
        lines += session(conn + 1, T0 + timedelta(seconds=conn), spelled, spelled, ops=1)
    lines += session(9, T0 + timedelta(seconds=9), "uid=Bob,dc=x", "", err=49)
    lines += session(10, T0 + timedelta(seconds=10), "UID=bob, DC=x", "", err=49)
    lines += session(11, T0 + timedelta(seconds=11), "uid=Bob,dc=x", "", err=49)
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={write_log(tmp_path / 'logs', lines)}",), out=out,
                   scheduler="synchronous"))
    _, tables, _ = load_output(out)
    dm = tables["workloads"].lazy().filter(pl.col("bind_dn").str.to_lowercase()
                                           == "cn=directory manager").collect()
    assert set(dm["bind_dn"]) == {"cn=Directory Manager"}
    assert dm["count"].sum() == 4 * 3  # BIND, SRCH and UNBIND on each of 4 connections
    failed = views.failed_binds(tables, 10)
    assert failed.select("dn", "failed").rows() == [("uid=Bob,dc=x", 3)]
    fps = tables["fingerprints"]
    assert fps.filter(pl.col("fingerprint") == "sub (uid=...)")["bind_dns"].item() == 1
    # a merge of two runs keeps them one identity
    merged = tmp_path / "merged"
    lines2 = session(2, T0 + timedelta(hours=1), "CN=directory manager", "CN=directory manager")
    other = tmp_path / "out2"
    run(RunOptions(inputs=(f"s={write_log(tmp_path / 'logs2', lines2)}",), out=other,
                   scheduler="synchronous"))
    _, merged_tables = merge_runs([out, other], merged)
    dm = merged_tables["workloads"].filter(pl.col("bind_dn").str.to_lowercase()
                                           == "cn=directory manager")
    assert set(dm["bind_dn"]) == {"cn=Directory Manager"} and dm["count"].sum() == 14


def test_fingerprints_split_by_scope_and_group_spellings(sample_out: Path, tmp_path: Path
                                                         ) -> None:
    """Issue 35, part 2, item 1: the sample's top fingerprint "(objectClass=*)" was mostly
    2,396 indexed base-scope reads; by scope, its unindexed part is the sub and one
    searches' 26,253 ms. Spellings of one fingerprint are one row in the most frequent
    spelling, through a merge too; the unindexed searches have their own bind DNs."""
    _, tables, _ = load_output(sample_out)
    fps = tables["fingerprints"]
    srch = _ops(sample_out).filter(pl.col("verb") == "SRCH")
    by_form = srch.group_by(pl.col("fingerprint").str.to_lowercase().alias("form")).agg(
        pl.len().alias("count"), pl.col("fingerprint").n_unique().alias("spellings"),
        pl.col("fingerprint").mode().first().alias("shown"),
        pl.col("bind_dn").filter(pl.col("unindexed") | pl.col("partially_unindexed"))
        .drop_nulls().n_unique().alias("unindexed_bind_dns"))
    assert fps.height == by_form.height and (by_form["spellings"] > 1).any()
    got = fps.select(pl.col("fingerprint").alias("shown"), "count", "unindexed_bind_dns")
    assert got.sort("shown").equals(by_form.select(got.columns).sort("shown")
                                    .cast(got.schema))
    row = {r["fingerprint"]: r for r in fps.iter_rows(named=True)}
    assert row["base (objectClass=*)"]["count"] == 2396
    assert row["base (objectClass=*)"]["etime_sum"] == pytest.approx(310.334, abs=0.001)
    assert row["base (objectClass=*)"]["unindexed"] == 0
    scan = sum(row[f"{scope} (objectClass=*)"]["unindexed_etime_sum"] for scope in ("one", "sub"))
    assert scan == pytest.approx(26.253, abs=0.001)
    assert len({r["fingerprint_id"] for r in row.values()}) == len(row)
    merged = merge_runs([sample_out], tmp_path / "merged")[1]["fingerprints"]
    assert merged.select(fps.columns).equals(fps)


def test_unindexed_searches_carry_their_own_etime(sample_out: Path) -> None:
    _, tables, _ = load_output(sample_out)
    srch = _ops(sample_out).filter(pl.col("verb") == "SRCH")
    want = srch.group_by("fingerprint_id").agg(
        (pl.col("etime").filter(pl.col("unindexed")) * 1e9).round().cast(pl.Int64).sum()
        .alias("a"),
        (pl.col("etime").filter(pl.col("partially_unindexed")) * 1e9).round().cast(pl.Int64)
        .sum().alias("u"))
    got = tables["fingerprints"].select(
        "fingerprint_id", pl.col("unindexed_etime_sum_ns").cast(pl.Int64).alias("a"),
        pl.col("partially_unindexed_etime_sum_ns").cast(pl.Int64).alias("u"))
    joined = want.join(got, on="fingerprint_id", suffix="_got")
    assert joined.height == tables["fingerprints"].height
    assert (joined["a"] == joined["a_got"]).all() and (joined["u"] == joined["u_got"]).all()
    mixed = tables["fingerprints"].filter((pl.col("unindexed") > 0)
                                          & (pl.col("unindexed") < pl.col("count")))
    assert (mixed["unindexed_etime_sum"] < mixed["etime_sum"]).all() and mixed.height


def test_suspect_runs_warn_exit_2_and_keep_the_previous_output(tmp_path: Path,
                                                               capsys) -> None:
    good = session(1, T0, "", "", ops=20)
    logs = write_log(tmp_path / "logs", good)
    out = tmp_path / "out"
    assert main(["run", f"s={logs}", "-o", str(out), "--scheduler", "synchronous"]) == 0
    before = (out / "summary.json").read_text()
    # 3 of 27 lines rejected: over 1%
    write_log(tmp_path / "logs", good + [(T0 + timedelta(seconds=5), "garbage")] * 3)
    capsys.readouterr()
    assert main(["run", f"s={logs}", "-o", str(out), "--scheduler", "synchronous"]) == 2
    err = capsys.readouterr().err
    assert "dsaccess: warning: s: 6.2% of its lines were rejected (3 of 48" in err
    assert "kept the previous output" in err and "--force" in err
    assert (out / "summary.json").read_text() == before
    assert main(["run", f"s={logs}", "-o", str(out), "--scheduler", "synchronous",
                 "--force"]) == 2
    replaced = json.loads((out / "summary.json").read_text())
    assert replaced["lines"]["rejected"] == 3 and replaced["warnings"]
    # a window with no event in it
    empty = tmp_path / "empty"
    assert main(["run", f"s={logs}", "-o", str(empty), "--scheduler", "synchronous",
                 "--since", "2027-01-01T00:00:00Z"]) == 2
    first, last = min(t for t, _ in good), max(t for t, _ in good)  # (garbage has none)
    assert (f"s: no events in the --since/--until window ({len(good)} lines parsed, from "
            f"{first:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f" to {last:%Y-%m-%d %H:%M:%S.%f}"[:-3]
            + " UTC)") in capsys.readouterr().err


def test_a_server_whose_logs_hold_no_event_is_a_warning(tmp_path: Path, capsys) -> None:
    """Title blocks and blank lines only, or an empty file: said, exit 2 (issue 35)."""
    fleet = tmp_path / "fleet"
    write_log(fleet / "busy", session(1, T0, "", "", ops=2))
    (fleet / "quiet").mkdir()
    (fleet / "quiet" / "access").write_text("\t389-Directory/2.3.1 B2023.123.0000\n\n")
    (fleet / "empty").mkdir()
    (fleet / "empty" / "access").write_text("")
    assert main(["run", str(fleet), "-o", str(tmp_path / "out"), "--scheduler",
                 "synchronous", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "quiet: no events in its logs (2 lines: 1 of title blocks, 1 blank)" in err
    assert "empty: no events in its logs (its files are empty)" in err
    assert "busy:" not in err


def test_a_workload_rule_failing_at_run_time_is_counted_and_reported(tmp_path: Path,
                                                                     capsys) -> None:
    logs = write_log(tmp_path / "logs", session(1, T0, "", "", ops=4))
    rules = tmp_path / "rules.yaml"
    rules.write_text('classes:\n  - name: numbered\n    when: int(base) > 3\n'
                     '  - name: rest\n    when: "true"\n')
    out = tmp_path / "out"
    assert main(["run", f"s={logs}", "-o", str(out), "--scheduler", "synchronous",
                 "--workloads", str(rules)]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload_rule_errors"] == {"numbered": 6}  # every client operation
    assert "workload rule 'numbered' failed on 6 operations" in capsys.readouterr().err
    assert set(_ops(out)["workload"]) == {"rest"}


def test_verbose_after_the_command_shows_our_debug_lines_only(tmp_path: Path) -> None:
    logs = write_log(tmp_path / "logs", session(1, T0, "", "", ops=1))
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", f"s={logs}", "-o",
                           str(tmp_path / "out"), "-v", "--workers", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "DEBUG pipeline.engine.cluster: plan: 1 parse tasks" in done.stderr
    assert "DEBUG pipeline.engine.cluster: done: {'stage': 'join'" in done.stderr  # from a worker
    assert not re.search(r"^(INFO|DEBUG) distributed", done.stderr, re.M)
    assert re.search(r"^done in [\d.]+ s: 0 MB, 7 lines, [\d.]+ MB/s; 0 rejected$",
                     done.stderr, re.M)


def test_progress_shows_the_stages(tmp_path: Path) -> None:
    logs = write_log(tmp_path / "logs", session(1, T0, "", "", ops=1))
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", f"s={logs}", "-o",
                           str(tmp_path / "out"), "--progress", "--workers", "1"],
                          capture_output=True, text=True, check=True)
    for stage in ("parse + shuffle", "join + enrich", "aggregate", "write outputs"):
        assert stage in done.stderr
    assert "7 lines" in done.stderr and "MB/s" in done.stderr


def test_a_restart_closes_the_connections_left_open(tmp_path: Path) -> None:
    # five connections that never close, a restart, then three at once: the peak is 5, not 8
    lines = [(T0 + timedelta(seconds=c), f"conn={c} fd=6{c} slot=6{c} connection from "
                                          f"10.0.0.{c} to 10.0.0.1") for c in range(1, 6)]
    restart = T0 + timedelta(minutes=1)
    lines += [(restart + timedelta(seconds=c), f"conn={c} fd=6{c} slot=6{c} connection from "
                                               f"10.0.0.{c} to 10.0.0.1") for c in range(1, 4)]
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={write_log(tmp_path / 'logs', lines)}",), out=out,
                   scheduler="synchronous"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["restarts"] == 2 and summary["peak_connections"] == 5
    assert _independent_peak(tmp_path / "logs") == 5
