"""`dsaccess trace`: an identity's, a client's, a connection's or an entry's operations
across a fleet, against the generator's truth (issue 34, part 1), from a run's OUT and
from the logs themselves: the same rows in the same order either way."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run, trace_logs
from pipeline.forensic.trace import COLUMNS, Selectors, trace
from pipeline.names import ms

from .conftest import SAMPLE
from .synth import Truth, generate

DN = "uid=svc-sync,dc=example,dc=com"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Path]:
    """Three servers in their own zones, with restarts that reuse connection numbers."""
    root = tmp_path_factory.mktemp("trace")
    truth = generate(root / "logs", servers=3, mb_per_server=1.0, rotate_mb=0.4, restarts=2,
                     seed=11)
    out = root / "out"
    run(RunOptions(inputs=(str(root / "logs"),), out=out, scheduler="synchronous"))
    return truth, out


def _ops(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "operations", hive_partitioning=True).filter(~pl.col("internal"))


def _from_logs(out: Path, sel: Selectors) -> pl.DataFrame:
    """The trace read from the logs the fleet's OUT was made of (their first pass finds the
    connections; the second reads only theirs), checked to equal the trace over OUT."""
    got = trace_logs(RunOptions(inputs=(str(out.parent / "logs"),), out="",
                                scheduler="synchronous", partition_mb=1), sel)
    want = trace(out, sel)
    assert got.rows.equals(want), (got.rows, want)
    return got.rows


SOURCES = {"out": trace, "logs": _from_logs}


@pytest.mark.parametrize("source", SOURCES)
def test_an_identitys_operations_are_the_generators(fleet: tuple[Truth, Path],
                                                    source: str) -> None:
    truth, out = fleet
    # spelled as a person would type it: LDAP compares DNs without case and spaces
    rows = SOURCES[source](out, Selectors(bind_dns=("UID=svc-sync, DC=example,dc=com",)).check())
    matched = rows.filter(pl.col("match"))
    # every request the generator issued under the identity, or that tried to bind as it
    want = {key for key, facts in truth.requests.items()
            if facts["bind_dn"] == DN or facts.get("tried") == DN}
    got = {(r["server"], r["file"], r["line"]) for r in matched.iter_rows(named=True)}
    assert len(want) > 100 and got & want == want
    # the rest are the lines the generator keeps no truth of: UNBINDs and StartTLS
    extra = matched.filter(pl.Series([(r["server"], r["file"], r["line"]) not in want
                                      for r in matched.iter_rows(named=True)]))
    assert set(extra["verb"]) <= {"UNBIND", "EXT"}
    # failed BINDs that tried it are there; their identity is the old one
    failed = [k for k in want if truth.requests[k]["verb"] == "BIND"
              and truth.requests[k]["bind_dn"] == ""]
    assert failed and all(k in got for k in failed)
    # in time order, each matched connection opened and closed around its operations
    assert rows["time"].is_sorted()
    for (server, conn), part in rows.group_by("server", "conn"):
        verbs = part["verb"].to_list()
        assert "CONNECT" not in verbs or verbs.index("CONNECT") == 0, (server, conn)
    assert rows.filter(~pl.col("match"))["verb"].is_in(["CONNECT", "CLOSE", "BIND"]).all()
    assert len(set(matched["server"])) == 3


@pytest.mark.parametrize("source", SOURCES)
def test_selectors_combine_as_and_and_repeat_as_or(fleet: tuple[Truth, Path],
                                                   source: str) -> None:
    _, out = fleet
    trace = SOURCES[source]
    ops = _ops(out)
    first = ops.row(100, named=True)
    conn = f"{first['server']}:{first['conn']}"
    rows = trace(out, Selectors(conns=((first["server"], first["conn"]),), verbs=("srch",),
                                min_etime=0.01).check()).filter(pl.col("match"))
    want = ops.filter((pl.col("server") == first["server"]) & (pl.col("conn") == first["conn"])
                      & (pl.col("verb") == "SRCH") & (pl.col("etime") >= 0.01))
    assert rows.height == want.height > 0, conn
    # two client networks (OR), and an error code
    ips = ops["client_ip"].drop_nulls().unique().sort()
    nets = (f"{ips[0]}/32", f"{ips[1]}/32")
    rows = trace(out, Selectors(client_ips=nets, errs=(0,)).check()).filter(pl.col("match"))
    want = ops.filter(pl.col("client_ip").is_in(ips[:2].to_list()) & (pl.col("err") == 0))
    assert rows.height == want.height > 0
    # the entries under a subtree, by their DN or a search's base
    rows = trace(out, Selectors(targets=("OU=People,dc=example,dc=com",), subtree=True,
                                verbs=("MOD", "SRCH")).check()).filter(pl.col("match"))
    below = pl.col("dn").str.to_lowercase().str.ends_with(",ou=people,dc=example,dc=com") | (
        pl.col("base").str.to_lowercase() == "ou=people,dc=example,dc=com")
    want = ops.filter(below & pl.col("verb").is_in(["MOD", "SRCH"]))
    assert rows.height == want.height > 0


def _at(ops: pl.DataFrame, share: float) -> int:
    """The time ``share`` of the way through the operations, UTC ns."""
    first, last = (ops["ts"].dt.epoch("ns").min(), ops["ts"].dt.epoch("ns").max())
    return int(first + (last - first) * share)


def test_from_logs_only_the_suspect_connections_are_parsed(fleet: tuple[Truth, Path]
                                                           ) -> None:
    """The first pass narrows the second to the connections that can match; selectors
    that narrow nothing (etime; searches, success) read every line, and the rows are the
    same."""
    truth, out = fleet
    opts = RunOptions(inputs=(str(out.parent / "logs"),), out="", scheduler="synchronous")
    ops = _ops(out)
    first = ops.filter((pl.col("verb") == "SRCH") & (pl.col("client_ip") != "local")
                       ).row(50, named=True)
    # each with the share of lines left unparsed at least (svc-sync carries half the load)
    selective = [
        (Selectors(bind_dns=(DN,)), 0.4),
        (Selectors(conns=((first["server"], first["conn"]),)), 0.95),
        (Selectors(client_ips=(f"{first['client_ip']}/32",)), 0.95),
        (Selectors(filter_values=(first["filter"][1:-1][:12].upper(),)), 0.25),  # (any case)
        (Selectors(targets=(first["base"],), bind_dns=(first["bind_dn"],)), 0.95),
        (Selectors(verbs=("del", "modrdn")), 0.2),  # (writes ride pooled connections)
        (Selectors(errs=(49, 32)), 0.2),
        # two seconds of the 80: the connections with a line then (pooled ones live long)
        (Selectors(since_ns=_at(ops, 0.5), until_ns=_at(ops, 0.525)), 0.3),
        (Selectors(since_ns=_at(ops, 0.99)), 0.0),  # (most are still open at the end)
    ]
    for sel, share in selective:
        got = trace_logs(opts, sel.check())
        assert got.rows.equals(trace(out, sel)) and got.rows["match"].any(), sel
        assert got.skipped > share * got.lines, (sel, got.skipped, got.lines)
    # searches and success are on every connection: no first pass, every line parsed
    sel = Selectors(verbs=("SRCH", "DEL"), errs=(0,), min_etime=0.005)
    everything = trace_logs(opts, sel)
    assert everything.skipped == 0 and everything.rows.equals(trace(out, sel))
    # a server --conn does not name is not read at all; an identity no one bound as: none
    assert trace_logs(opts, Selectors(conns=(("nowhere", 1),))).lines == 0
    nobody = trace_logs(opts, Selectors(bind_dns=("uid=nobody,dc=x",)))
    assert nobody.rows.height == 0 and nobody.lines == 0


def test_the_command_writes_rows_and_exits_1_when_nothing_matched(
        fleet: tuple[Truth, Path], tmp_path: Path, capsys) -> None:
    _, out = fleet
    assert main(["trace", str(out), "--bind-dn", DN, "--format", "jsonl", "-o",
                 str(tmp_path / "t.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert rows and list(rows[0]) == list(COLUMNS)
    assert "operations on 3 servers" in capsys.readouterr().err
    assert main(["trace", str(out), "--bind-dn", DN, "--format", "parquet", "-o",
                 str(tmp_path / "t.parquet")]) == 0
    assert pl.read_parquet(tmp_path / "t.parquet").height == len(rows)
    assert main(["trace", str(out), "--bind-dn", DN, "-o", str(tmp_path / "t.csv")]) == 0
    assert pl.read_csv(tmp_path / "t.csv").height == len(rows)  # the kind from the name
    assert main(["trace", str(out), "--bind-dn", "uid=nobody,dc=x"]) == 1
    assert "no operation matched" in capsys.readouterr().err


def test_a_json_log_is_read_whole_and_traced_as_from_its_run(tmp_path: Path) -> None:
    """A 3.x JSON log cannot be searched for its connections without parsing it: its
    server's lines are all read, a text server beside it is narrowed, the rows are the
    run's."""
    import shutil

    from .test_jsonlog import EXAMPLES
    fleet = tmp_path / "fleet"
    (fleet / "ds3").mkdir(parents=True)
    (fleet / "ds3" / "access").write_text(EXAMPLES[0] + "\n"
                                          + ("\n".join(EXAMPLES[1:13]) + "\n") * 50)
    shutil.copytree(SAMPLE / "real389b", fleet / "real389b")
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(fleet),), out=out, scheduler="synchronous", partition_mb=1))
    opts = RunOptions(inputs=(str(fleet),), out="", scheduler="synchronous", partition_mb=1)
    json_lines = 1 + 12 * 50
    for dn, server in (("uid=app,ou=people,dc=example,dc=com", "ds3"),
                       ("uid=svc-limited,dc=example,dc=com", "real389b")):
        sel = Selectors(bind_dns=(dn,)).check()
        got = trace_logs(opts, sel)
        assert got.rows.equals(trace(out, sel)) and set(got.rows["server"]) == {server}, dn
        if server == "ds3":  # the text server holds no connection of it: not read at all
            assert (got.lines, got.skipped) == (json_lines, 0)
        else:  # the JSON log whole, the text server's other connections skipped
            assert got.lines > json_lines and 0 < got.skipped < got.lines - json_lines


def test_the_command_reads_logs_as_it_reads_an_out(fleet: tuple[Truth, Path], tmp_path: Path,
                                                    capsys) -> None:
    _, out = fleet
    logs = out.parent / "logs"
    for source, name in ((out, "out"), (logs, "logs")):
        assert main(["trace", str(source), "--bind-dn", DN, "--verb", "MOD", "-o",
                     str(tmp_path / f"{name}.csv")]) == 0
    got, want = (pl.read_csv(tmp_path / f"{n}.csv") for n in ("logs", "out"))
    assert got.height > 10 and got.equals(want)
    # servers are named as for run: NAME=PATH, or the folders of a fleet
    assert main(["trace", f"one={logs}/{want['server'][0]}", "--bind-dn", DN,
                 "--server", "one", "--format", "jsonl"]) == 0
    assert main(["trace", str(logs), "--server", "nowhere", "--verb", "BIND"]) == 64
    assert "--server not among the inputs: nowhere" in capsys.readouterr().err
    # an input that cannot be read is named, and the exit says the rows are partial
    assert main(["trace", f"one={logs}/{want['server'][0]}", "gone=/nonexistent/logs",
                 "--bind-dn", DN, "--format", "jsonl", "-o", str(tmp_path / "p.jsonl")]) == 2
    assert "gone: log location not found: /nonexistent/logs" in capsys.readouterr().err


def test_a_trace_of_logs_shows_its_progress_and_quiet_shows_none(
        fleet: tuple[Truth, Path], tmp_path: Path) -> None:
    logs = fleet[1].parent / "logs"
    command = [sys.executable, "-m", "pipeline", "trace", str(logs), "--bind-dn", DN,
               "--verb", "MOD", "--workers", "1", "-o", str(tmp_path / "rows.csv")]
    shown = subprocess.run([*command, "--progress"], capture_output=True, text=True,
                           check=True).stderr
    for stage in ("find connections", "parse + shuffle", "join + select"):
        assert stage in shown, shown
    assert re.search(r"^dsaccess: [\d,]+ operations on \d servers?, ", shown, re.M), shown
    quiet = subprocess.run([*command, "--quiet"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    assert pl.read_csv(tmp_path / "rows.csv").height > 10


@pytest.mark.parametrize("args,message", [
    (["--bind-dn", r"cn=a\q,dc=x"], "--bind-dn: not a DN"),
    (["--client-ip", "10.1.2.300"], "--client-ip: not an address"),
    (["--conn", "ds1"], "--conn: not SERVER:CONN"),
    (["--subtree"], "--subtree: needs --target"),
    (["--format", "parquet"], "--format parquet: needs -o FILE"),
    (["-o", "rows.txt"], "give --format jsonl, csv or parquet"),
])
def test_a_selector_that_does_not_parse_is_a_usage_error(fleet: tuple[Truth, Path], args,
                                                         message: str, capsys) -> None:
    _, out = fleet
    assert main(["trace", str(out), *args]) == 64
    assert message in capsys.readouterr().err


def test_an_out_without_operations_or_not_dsaccess_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["trace", str(tmp_path), "--verb", "BIND"]) == 64
    assert "not the output of dsaccess run" in capsys.readouterr().err
    out = tmp_path / "report-only"
    assert main(["run", f"b={SAMPLE}/real389b", "-o", str(out), "--scheduler", "synchronous",
                 "--operations", "none", "--quiet"]) == 0
    assert main(["trace", str(out), "--verb", "BIND"]) == 64
    assert "keeps no operations" in capsys.readouterr().err


def test_the_table_fits_a_terminal_and_cuts_no_time_or_number(fleet: tuple[Truth, Path]
                                                              ) -> None:
    import io

    from rich.console import Console

    from pipeline.outputs.terminal import print_trace
    _, out = fleet
    rows = trace(out, Selectors(bind_dns=(DN,), verbs=("SRCH",)))
    buf = io.StringIO()
    print_trace(rows, Console(file=buf, width=120, highlight=False))
    lines = buf.getvalue().splitlines()[2:]  # (the header and its rule)
    assert max(len(line) for line in lines) <= 120 and len(lines) == rows.height
    for line, r in zip(lines, rows.iter_rows(named=True), strict=True):
        stamp = r["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:23]  # (the date in the header
        assert line.startswith(stamp) or line.startswith(stamp[11:] + " "), line  # if one)
        if r["etime"] is not None:  # whole, at the end of its column
            assert f" {ms(r['etime'])} " in line + " ", line


def test_a_run_with_operations_jsonl_traces_the_same_rows(tmp_path: Path) -> None:
    outs = {}
    for form in ("parquet", "jsonl"):
        outs[form] = tmp_path / form
        run(RunOptions(inputs=(f"b={SAMPLE}/real389b",), out=outs[form],
                       scheduler="synchronous", operations=(form,)))
    sel = Selectors(bind_dns=("uid=svc-limited,dc=example,dc=com",),
                    since_ns=1_795_710_060_000_000_000)  # 16:21:00 UTC: a time filter too
    got = {form: trace(out, sel) for form, out in outs.items()}
    assert got["parquet"].height > 100 and got["jsonl"].equals(got["parquet"])


def _written_stamp(log: Path, line: int) -> str:
    """The timestamp a log line was written with, ISO 8601 with its offset: the truth
    of a row's ``local_time`` (gzip-rotated files read as such)."""
    import gzip
    data = log.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode().splitlines()[line - 1]
    day, month, rest = text[1:text.index("]")].split("/")
    year, clock = rest.split(":", 1)
    clock, tz = clock.split(" ")
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    return (f"{year}-{months.index(month) + 1:02d}-{day}T{clock}{tz[:3]}:{tz[3:]}")


def test_each_row_shows_the_time_its_server_wrote(fleet: tuple[Truth, Path]) -> None:
    """Three servers in three zones: every operation's ``local_time`` is the stamp of its
    own line in the log (issue 34: local time with the server's offset, and UTC)."""
    _, out = fleet
    rows = trace(out, Selectors(bind_dns=(DN,)).check()).filter(pl.col("file").is_not_null())
    logs = out.parent / "logs"
    assert rows.height > 100 and rows["server"].n_unique() == 3
    zones = set()
    for r in rows.iter_rows(named=True):
        assert r["local_time"] == _written_stamp(logs / r["server"] / r["file"], r["line"]), r
        zones.add(r["local_time"][-6:])
    assert len(zones) == 3


def test_local_times_follow_a_daylight_saving_change_across_runs(tmp_path: Path) -> None:
    """New York's clocks go back at 06:00 UTC on 2026-11-01: -0400 before, -0500 after,
    the same wall-clock hour twice. Each operation keeps the offset it was logged with,
    in one run and in a merge of two runs, one on each side."""
    lines = []
    for i, (clock, tz) in enumerate((("01:30:00", "-0400"), ("01:59:59", "-0400"),
                                     ("01:00:00", "-0500"), ("01:30:00", "-0500"))):
        stamp = f"[01/Nov/2026:{clock}.000000000 {tz}]"
        lines += [f"{stamp} conn={i + 1} fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2",
                  f'{stamp} conn={i + 1} op=0 SRCH base="dc=x" scope=2 filter="(uid=a)" '
                  "attrs=ALL",
                  f"{stamp} conn={i + 1} op=0 RESULT err=0 tag=101 nentries=1 etime=0.001",
                  f"{stamp} conn={i + 1} op=1 fd=64 closed - B1"]
    logs = tmp_path / "ny"
    logs.mkdir()
    (logs / "access").write_text("\n".join(lines) + "\n")
    want = ["2026-11-01T01:30:00.000000000-04:00", "2026-11-01T01:59:59.000000000-04:00",
            "2026-11-01T01:00:00.000000000-05:00", "2026-11-01T01:30:00.000000000-05:00"]

    def local_times(out: Path) -> list[str]:
        got = trace(out, Selectors(verbs=("SRCH",)).check()).filter(pl.col("match"))
        return got["local_time"].to_list()

    whole = tmp_path / "whole"
    assert main(["run", f"ny={logs}", "-o", str(whole), "--quiet"]) == 0
    assert local_times(whole) == want
    halves = []
    for i, window in enumerate((["--until", "2026-11-01T06:00:00Z"],
                                ["--since", "2026-11-01T06:00:00Z"])):
        halves.append(tmp_path / f"half{i}")
        assert main(["run", f"ny={logs}", "-o", str(halves[-1]), "--quiet", *window]) == 0
    assert main(["merge", *map(str, halves), "-o", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "run.json").read_text())["utc_offsets"]
    assert merged == json.loads((whole / "run.json").read_text())["utc_offsets"]
    assert [tz for tz, _, _ in merged["ny"]] == ["-0400", "-0500"]
