"""Lose no data: OUT that is not ours is never replaced, exit codes say what happened,
partial runs finish, merges cannot double-count, metrics buckets are exact."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run
from pipeline.errors import ConfigError
from pipeline.outputs.merge import merge_runs
from pipeline.sources.source import Chunk, LogFile, read_chunk

from .conftest import SAMPLE
from .test_views import T0, session, stamp, write_log

LOCAL = ["--scheduler", "synchronous"]


def tree_digest(root: Path) -> str:
    """Every path, mode and byte under root: equal digests, untouched trees."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode() + oct(path.stat().st_mode).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    shutil.copytree(SAMPLE / "real389b", root / "b")
    return root


@pytest.mark.parametrize("target", ["input", "inside", "above", "foreign", "file"])
def test_out_that_is_not_ours_is_refused_and_untouched(logs: Path, tmp_path: Path,
                                                       target: str, capsys) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    a_file = tmp_path / "a-file"
    a_file.write_text("mine too")
    out = {"input": logs / "b", "inside": logs / "b" / "out", "above": tmp_path,
           "foreign": foreign, "file": a_file}[target]
    before = tree_digest(tmp_path)
    assert main(["run", str(logs), "-o", str(out), *LOCAL]) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dsaccess: error: -o: ")
    assert "choose an empty or new directory" in err and "Traceback" not in err
    assert tree_digest(tmp_path) == before


def test_an_empty_folder_or_a_previous_output_is_replaced(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert main(["run", str(logs), "-o", str(out), *LOCAL, "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["format"] == "dsaccess-output/1"
    assert main(["run", str(logs), "-o", str(out), *LOCAL, "--quiet"]) == 0


@contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_read_only_and_full_targets_are_one_line_errors(logs: Path, tmp_path: Path,
                                                        capsys) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        assert main(["run", str(logs), "-o", str(ro / "out"), *LOCAL]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Read-only file system" in err and str(ro) in err
    with tmpfs(tmp_path / "full", "size=256k") as full:
        assert main(["run", str(logs), "-o", str(full / "out"), *LOCAL, "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "No space left on device" in err
        assert str(full) in err and "Traceback" not in err
        assert os.listdir(full) == []  # the staging folder is gone


@pytest.mark.parametrize("argv", [[], ["run", "x"], ["run", "x", "-o", "y", "--workers", "abc"],
                                  ["merge"], ["nosuchcommand"]])
def test_usage_errors_exit_64(argv: list[str], capsys) -> None:
    assert main(argv) == 64
    assert "dsaccess: error:" in capsys.readouterr().err


def test_unreachable_server_and_vanished_file_are_partial(logs: Path, tmp_path: Path,
                                                          capsys) -> None:
    # a dangling link where a rotated log was, and an sftp:// server nobody listens on
    (logs / "gone").mkdir()
    (logs / "gone" / "access.20261126-000000").symlink_to(tmp_path / "nowhere")
    out = tmp_path / "out"
    code = main(["run", str(logs), "dead=sftp://127.0.0.1:1/var/log/access*", "-o", str(out),
                 *LOCAL, "--quiet"])
    assert code == 2
    summary = json.loads((out / "summary.json").read_text())
    failed = {p["server"]: p["problem"] for p in summary["problems"]}
    assert set(failed) == {"gone", "dead"}
    assert "cannot connect" in failed["dead"] and "127.0.0.1:1" in failed["dead"]
    assert summary["servers"]["b"]["lines"]["total"] == 48_671  # the rest complete
    err = capsys.readouterr().err
    assert "dsaccess: warning: gone:" in err and "dsaccess: warning: dead:" in err


def test_a_file_that_cannot_be_read_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    f = LogFile("s", str(tmp_path / "access"), "access", 0, 10, False)
    got = read_chunk(Chunk(f, 0, 0, -1))
    assert got.data == b"" and "vanished" in got.problem and "(server s)" in got.problem


def test_names_are_matched_whole(tmp_path: Path) -> None:
    folder = write_log(tmp_path / "s", session(1, T0, "", "", ops=1))
    (folder / "access\n").write_text((folder / "access").read_text())
    (folder / "access.20261126-000000.gz.bak").write_text("x\n")
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={folder}",), out=out, scheduler="synchronous"))
    info = json.loads((out / "run.json").read_text())
    assert [i["file"] for i in info["inputs"]] == ["access"]


def test_merge_refuses_a_run_twice_and_different_rules(tmp_path: Path, capsys) -> None:
    logs = write_log(tmp_path / "logs", session(1, T0, "", "", ops=2))
    one, other = tmp_path / "one", tmp_path / "other"
    run(RunOptions(inputs=(f"s={logs}",), out=one, scheduler="synchronous"))
    with pytest.raises(ConfigError, match="the same run, twice"):
        merge_runs([one, one], tmp_path / "m")
    rules = tmp_path / "rules.yaml"
    rules.write_text('classes:\n  - name: all\n    when: "true"\n')
    assert main(["run", f"s={logs}", "-o", str(other), *LOCAL, "--quiet",
                 "--workloads", str(rules)]) == 0
    assert main(["merge", str(one), str(other), "-o", str(tmp_path / "m"), "--quiet"]) == 64
    err = capsys.readouterr().err
    assert "made with workloads" in err and str(one) in err and str(other) in err
    assert not (tmp_path / "m").exists()


def test_merged_time_slices_count_each_line_once(tmp_path: Path) -> None:
    lines = []
    for minute in range(3):
        lines += session(minute + 1, T0 + timedelta(minutes=minute), "", "", ops=40)
    lines.insert(0, (T0 - timedelta(seconds=1), "garbage that does not parse"))
    logs = write_log(tmp_path / "logs", lines)
    text = (logs / "access").read_text()
    (logs / "access").write_text("\n" + text)  # a blank line too
    cuts = [None, T0 + timedelta(seconds=59), T0 + timedelta(seconds=119), None]
    slices = []
    for i in range(3):
        out = tmp_path / f"slice{i}"
        since = None if cuts[i] is None else stamp(cuts[i]).strip("[]")
        until = None if cuts[i + 1] is None else stamp(cuts[i + 1]).strip("[]")
        argv = ["run", f"s={logs}", "-o", str(out), *LOCAL, "--quiet"]
        argv += ["--since", since] if since else []
        argv += ["--until", until] if until else []
        assert main(argv) == 0, i
        slices.append(out)
    whole = tmp_path / "whole"
    run(RunOptions(inputs=(f"s={logs}",), out=whole, scheduler="synchronous"))
    merged, _ = merge_runs(slices, tmp_path / "merged")
    expected = json.loads((whole / "summary.json").read_text())
    assert merged["lines"] == expected["lines"]
    assert expected["lines"]["total"] == len(lines) + 1 and expected["lines"]["blank"] == 1
    for s in slices:
        lines_of = json.loads((s / "summary.json").read_text())["lines"]
        assert lines_of["total"] == expected["lines"]["total"]  # every run read every line
        assert lines_of["parsed"] + lines_of["outside_window"] == len(lines) - 1
    assert merged["operations"] == expected["operations"]


def test_one_line_dated_centuries_away_is_a_reject_not_a_stretched_series(
        tmp_path: Path) -> None:
    """A fault in one line's clock (found by fuzzing: 2200 in a 2026 log made the report
    51 MB): a reject with its reason; the series keep the log's own span (issue 35)."""
    lines = session(1, T0, "uid=a", "uid=a", ops=30)
    lines.insert(20, (T0.replace(year=2200), "conn=1 op=99 UNBIND"))
    lines.insert(10, (T0.replace(year=1970), "conn=1 op=98 UNBIND"))
    logs = write_log(tmp_path / "logs", lines)
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={logs}",), out=out, scheduler="synchronous"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lines"]["rejected"] == 2 and summary["lines"]["parsed"] == len(lines) - 2
    rejects = pl.read_parquet(out / "rejects.parquet")
    assert rejects["line"].to_list() == [11, 22]
    assert rejects["reason"].str.starts_with("timestamp more than a day").all()
    span = pl.read_parquet(out / "load.parquet")
    assert span.height <= 2 and span["start"].dt.year().to_list() == [2026] * span.height
    assert (out / "report.html").stat().st_size < 10_000_000  # 51 MB with the fault


def test_a_far_line_first_or_last_in_its_partition_is_a_reject_too(tmp_path: Path) -> None:
    """A line over a partition long puts the next line first in its task's block, where it
    had one neighbour and was kept (found by the whole-path Hypothesis test): a far line
    there, and one last in the file, are rejects when their one neighbour agrees with its
    own."""
    long_filter = "(uid=" + "a" * 1_500_000 + ")"
    lines = session(1, T0, "uid=a", "uid=a", ops=6)
    lines.insert(4, (T0, f'conn=1 op=50 SRCH base="dc=x" scope=2 filter="{long_filter}"'))
    lines.insert(5, (T0.replace(year=2200), "conn=1 op=99 UNBIND"))  # first of block 2
    lines.append((T0.replace(year=1970), "conn=1 op=98 UNBIND"))  # last of the file
    logs = write_log(tmp_path / "logs", lines)
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={logs}",), out=out, scheduler="synchronous", partition_mb=1))
    rejects = pl.read_parquet(out / "rejects.parquet")
    assert rejects["line"].to_list() == [6, len(lines)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["time_range"]["first"][:4] == summary["time_range"]["last"][:4] == "2026"


def _pooled(conn: int, opening: list[str], ops: int, rebind_at: int | None = None
            ) -> list[tuple[datetime, str]]:
    """A long-lived connection on a 10 ms grid shared by all: its open line and
    ``opening`` (how it gets its identity) at steps 0, 1, ..., then ``ops`` searches, each
    request at an odd step and its RESULT at the next (so a cut at an odd step splits no
    operation); at op ``rebind_at`` a BIND as ``uid=again`` instead of a search."""
    at = [T0 + timedelta(milliseconds=10 * k) for k in range(2 * ops + 3)]
    out = [(at[0], f"conn={conn} fd=64 slot=64 connection from 10.0.1.{conn} to 10.0.0.1")]
    out += [(at[1 + i], f"conn={conn} {text}") for i, text in enumerate(opening)]
    for op in range(1, ops + 1):
        request, result = at[2 * op + 1], at[2 * op + 2]
        if op == rebind_at:
            out += [(request, f'conn={conn} op={op} BIND dn="uid=again,dc=x" method=128 '
                              "version=3"),
                    (result, f'conn={conn} op={op} RESULT err=0 tag=97 nentries=0 '
                             'etime=0.000100 dn="uid=again,dc=x"')]
            continue
        out += [(request, f'conn={conn} op={op} SRCH base="dc=x" scope=2 '
                          f'filter="(uid=u{op % 7})" attrs=ALL'),
                (result, f"conn={conn} op={op} RESULT err=0 tag=101 nentries=1 "
                         f"etime=0.00{op % 9 + 1}000")]
    return out


def test_time_slices_keep_the_identity_of_connections_opened_before_them(
        tmp_path: Path) -> None:
    """Pooled connections bound before a window keep their bind DN and client in it, so
    two halves merged are the whole run, identities included (issue 32, item 10)."""
    bind = 'op=0 BIND dn="uid=svc-{0},dc=x" method=128 version=3'
    bound = 'op=0 RESULT err={1} tag=97 nentries=0 etime=0.000100 dn="uid=svc-{0},dc=x"'
    lines = (_pooled(1, [bind.format("app"), bound.format("app", 0)], 60)
             + _pooled(2, [bind.format("sync"), bound.format("sync", 0)], 60, rebind_at=10)
             + _pooled(3, [bind.format("bad"), bound.format("bad", 49)], 60)  # anonymous
             + _pooled(4, ['AUTOBIND dn="cn=Directory Manager"'], 60)
             + _pooled(5, ["TLS1.3 client bound as uid=cert,dc=x"], 60)
             + _pooled(6, [], 60))  # never binds: anonymous
    logs = write_log(tmp_path / "logs", sorted(lines, key=lambda line: line[0]))
    cut = stamp(T0 + timedelta(milliseconds=10 * 61)).strip("[]")  # an odd step: op 30
    slices = []
    for i, window in enumerate((["--until", cut], ["--since", cut])):
        slices.append(tmp_path / f"slice{i}")
        assert main(["run", f"s={logs}", "-o", str(slices[-1]), *LOCAL, "--quiet",
                     *window]) == 0
    whole = tmp_path / "whole"
    run(RunOptions(inputs=(f"s={logs}",), out=whole, scheduler="synchronous"))
    after = pl.read_parquet(slices[1] / "operations", hive_partitioning=True)
    identities = dict(after.group_by("conn").agg(pl.col("bind_dn").unique()).iter_rows())
    assert identities == {1: ["uid=svc-app,dc=x"], 2: ["uid=again,dc=x"], 3: [""],
                          4: ["cn=Directory Manager"], 5: ["uid=cert,dc=x"], 6: [""]}
    assert after["client_ip"].null_count() == 0 and after["op"].min() == 30
    assert after.filter(pl.col("verb") == "BIND").height == 0  # the BINDs were before it
    merged = tmp_path / "merged"
    summary, tables = merge_runs(slices, merged)
    expected = json.loads((whole / "summary.json").read_text())
    for key in ("connections", "operations", "results", "unmatched", "time_range"):
        assert summary[key] == expected[key], key
    for name in ("workloads", "binds", "clients", "fingerprints", "timeseries"):
        one = pl.read_parquet(whole / f"{name}.parquet")
        assert tables[name].equals(one), name
        assert pl.read_parquet(merged / f"{name}.parquet").equals(one), name


def test_a_merge_of_runs_with_problems_exits_2(tmp_path: Path, capsys) -> None:
    logs = write_log(tmp_path / "logs" / "good", session(1, T0, "", "", ops=1))
    bad = tmp_path / "logs" / "bad"
    bad.mkdir()
    (bad / "access.20261126-000000.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    partial = tmp_path / "partial"
    assert main(["run", str(logs.parent), "-o", str(partial), *LOCAL, "--quiet"]) == 2
    assert main(["merge", str(partial), "-o", str(tmp_path / "m"), "--quiet"]) == 2
    assert "corrupt gzip" in capsys.readouterr().err


def test_whole_second_etimes_of_5_land_in_le_5(tmp_path: Path) -> None:
    lines = [(T0, "conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2")]
    for op in range(4):
        lines += [(T0, f'conn=1 op={op} SRCH base="dc=x" scope=2 filter="(uid=a)" attrs=ALL'),
                  (T0, f"conn=1 op={op} RESULT err=0 tag=101 nentries=0 etime=5")]
    lines += [(T0, "conn=1 op=4 SRCH base=\"dc=x\" scope=2 filter=\"(uid=a)\" attrs=ALL"),
              (T0, "conn=1 op=4 RESULT err=0 tag=101 nentries=0 etime=4.99")]
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={write_log(tmp_path / 'logs', lines)}",), out=out,
                   scheduler="synchronous"))
    prom = (out / "metrics.prom").read_text()
    le = {m[0]: int(m[1]) for m in re.findall(
        r'dsaccess_operation_etime_seconds_bucket\{[^}]*verb="SRCH",le="([^"]+)"\} (\d+)', prom)}
    assert le["2.5"] == 0 and le["5"] == 5 and le["+Inf"] == 5
    assert re.search(r'dsaccess_operation_etime_seconds_count\{[^}]*verb="SRCH"\} 5$', prom, re.M)


def test_restarts_are_one_definition_in_summary_and_table(tmp_path: Path) -> None:
    # conn 5, 6, 7; a drop to 3 with no conn=1 (a start whose first connection is not
    # logged); then a conn=1 start: two restarts, in summary.json and restarts.parquet
    conns = [5, 6, 7, 3, 4, 1, 2]
    lines = [(T0 + timedelta(seconds=i), f"conn={c} fd=64 slot=64 connection from "
                                         f"10.0.0.1 to 10.0.0.2") for i, c in enumerate(conns)]
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"s={write_log(tmp_path / 'logs', lines)}",), out=out,
                   scheduler="synchronous"))
    summary = json.loads((out / "summary.json").read_text())
    table = pl.read_parquet(out / "restarts.parquet")
    assert summary["restarts"] == table.height == 2
    assert [t.second for t in table["ts"]] == [3, 5]




def test_an_empty_server_folder_is_a_warning_and_exit_2(logs: Path, tmp_path: Path,
                                                        capsys) -> None:
    (logs / "empty").mkdir()  # what a failed first collect leaves
    out = tmp_path / "out"
    assert main(["run", str(logs), "-o", str(out), *LOCAL, "--quiet"]) == 2
    assert "dsaccess: warning: empty: no access logs in this folder" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert [p["server"] for p in summary["problems"]] == ["empty"]
    assert summary["servers"]["b"]["lines"]["total"] == 48_671


def test_a_plain_rotated_file_and_its_gz_are_read_once(tmp_path: Path) -> None:
    import gzip
    folder = write_log(tmp_path / "s", session(1, T0, "", "", ops=2))
    os.rename(folder / "access", folder / "access.20261126-160000")
    data = (folder / "access.20261126-160000").read_bytes()
    (folder / "access.20261126-160000.gz").write_bytes(gzip.compress(data))
    out = tmp_path / "out"
    assert main(["run", f"s={folder}", "-o", str(out), *LOCAL, "--quiet"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lines"]["total"] == data.count(b"\n")
    assert "the same rotation as access.20261126-160000" in summary["problems"][0]["problem"]


def test_logrotate_rotations_are_read_and_a_stray_file_is_a_warning(tmp_path: Path,
                                                                      capsys) -> None:
    """Sites that rotate with logrotate: access.2.gz, access.1, access (issue 35, part 1,
    item 2). Each file holds one connection's lines; a stray access.bak is named."""
    import gzip
    folder = tmp_path / "s"
    files = {"access.2.gz": 1, "access.1": 2, "access": 3}
    for name, conn in files.items():
        write_log(folder, session(conn, T0 + timedelta(hours=conn), f"uid=u{conn}",
                                  f"uid=u{conn}", ops=2))
        data = (folder / "access").read_bytes()
        (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        total = data.count(b"\n") * len(files)
    out = tmp_path / "out"
    assert main(["run", f"s={folder}", "-o", str(out), *LOCAL, "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lines"]["total"] == summary["lines"]["parsed"] == total
    binds = pl.read_parquet(out / "binds.parquet")
    assert sorted(binds["dn"].to_list()) == ["uid=u1", "uid=u2", "uid=u3"]
    (folder / "access.bak").write_bytes(b"")
    assert main(["run", f"s={folder}", "-o", str(out), *LOCAL, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "access.bak: named like an access log but not read" in err[0]


# Other logs saved as "access", written from the server's format strings (389ds/389-ds-base
# at 70dcccaf): ldap/servers/slapd/log.c:3636 (errors: "- %s - %s - %s" after the time),
# log.c:3595 (errors in JSON), auditlog.c:786 ("time: " then "dn: "); and OpenLDAP's slapd
# through syslog. The shape, not the content, is what is told apart.
NOT_ACCESS_LOGS = {
    "a 389 DS errors log": (
        "[26/Nov/2026:16:20:09.123456789 +0000] - NOTICE - main - 389-Directory/2.3.1 "
        "B2023.123.0000 starting up\n"
        "[26/Nov/2026:16:20:10.223456789 +0000] - ERR - NSMMReplicationPlugin - "
        'bind_and_check_pwp - agmt="cn=to-b" (b:389) - Replication bind failed\n'),
    "a 389 DS errors log (JSON)": (
        '{"local_time":"2026-11-26T16:20:09.123456789 +0000","severity":"NOTICE",'
        '"subsystem":"main","msg":"starting up"}\n'),
    "a 389 DS audit log": (
        "time: 20261126162010\ndn: uid=a,ou=people,dc=example,dc=com\nresult: 0\n"
        "changetype: modify\nreplace: description\ndescription: x\n-\n\n"),
    "an OpenLDAP slapd log": (
        "Nov 26 16:20:10 ldap1 slapd[1234]: conn=1000 fd=12 ACCEPT from IP=10.0.0.1:5000 "
        "(IP=0.0.0.0:389)\nNov 26 16:20:10 ldap1 slapd[1234]: conn=1000 op=0 BIND dn=\"\" "
        "method=128\n"),
}


def test_a_file_that_is_another_log_is_named_for_what_it_looks_like(tmp_path: Path,
                                                                    capsys) -> None:
    """An errors, audit or OpenLDAP log saved as access was "100% of its lines rejected"
    and a report from " to  UTC" (issue 35, part 1, item 3)."""
    fleet = tmp_path / "fleet"
    write_log(fleet / "good", session(1, T0, "uid=u", "uid=u", ops=2))
    kinds = NOT_ACCESS_LOGS
    for k, text in enumerate(kinds.values()):
        (fleet / f"s{k}").mkdir()
        (fleet / f"s{k}" / "access").write_text(text)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["run", str(fleet), "-o", str(out), *LOCAL, "--quiet"]) == 2
    err = capsys.readouterr().err
    for k, kind in enumerate(kinds):
        assert f"s{k}/access: looks like {kind}, not a 389 DS access log" in err
    assert "good/access: looks like" not in err
    table = (out / "report.html").read_text().split('<table id="servers">')[1].split(
        "</table>")[0]
    rows = {r[0]: r for r in (re.findall(r"<td[^>]*>([^<]*)</td>", row)
                               for row in table.split("<tr>")[2:])}
    assert sorted(n for n, r in rows.items() if r[-2] == "no events") == [
        f"s{k}" for k in range(len(kinds))]
    assert rows["good"][-2].startswith("2026-11-26 16:00:00")
    # one server, nothing but an errors log: a report of no events, not of " to  UTC"
    alone = tmp_path / "alone"
    assert main(["run", f"s={fleet / 's0'}", "-o", str(alone), *LOCAL]) == 2
    printed = capsys.readouterr().out
    assert "no events; servers 1" in printed and " to  UTC" not in printed
    page = (alone / "report.html").read_text()
    assert "No events in the logs read" in page and "<h2>Load" not in page


def test_real_access_logs_look_like_no_other_log() -> None:
    from pipeline.sources.sniff import looks_like
    # (the sample's rotated files are gzip, named without .gz, as the server writes them)
    heads = [f.read_bytes()[:4096] for f in sorted(SAMPLE.glob("*/access*"))]
    assert len(heads) == 10 and [looks_like(h) for h in heads] == [None] * len(heads)
    assert [looks_like(t.encode()) for t in NOT_ACCESS_LOGS.values()] == list(NOT_ACCESS_LOGS)


def test_lines_of_newer_servers_that_were_rejects_are_events(tmp_path: Path) -> None:
    """Two of issue 33's named defects, written from 389 DS's format strings (70dcccaf): an
    internal operation's STAT line has no space before STAT (result.c:2142-2143, 2203), and
    a disconnect for a reset read carries no close code (connection.c:1510, 2716)."""
    lines = session(1, T0, "uid=a", "uid=a", ops=1)
    at = T0 + timedelta(seconds=1)
    lines += [(at, "conn=Internal(0) op=0(0)(0) SRCH base=\"cn=config\" scope=0 "
                   "filter=\"(objectClass=*)\" attrs=ALL"),
              (at, "conn=Internal(0) op=0(0)(0)STAT read index: attribute=objectclass "
                   "key(eq)=referral --> count 0 (duration 0.000012)"),
              (at, "conn=Internal(0) op=0(0)(0) RESULT err=0 tag=48 nentries=1 etime=0.0001"),
              (at, "conn=2 fd=65 slot=65 connection from 10.0.0.2 to 10.0.0.1"),
              (at, "conn=2 op=-1 fd=65 Disconnect - Connection reset by peer - TCP "
                   "connection reset by peer")]
    logs = write_log(tmp_path / "logs", lines)
    out = tmp_path / "out"
    assert main(["run", f"s={logs}", "-o", str(out), *LOCAL, "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lines"]["rejected"] == 0 and summary["lines"]["parsed"] == len(lines)
    conns = pl.read_parquet(out / "connections.parquet").filter(pl.col("conn") == 2)
    assert conns["close_code"].to_list() == [None] and conns["closed"].is_not_null().all()


def test_failures_that_are_not_the_users_are_one_line(capsys) -> None:
    from pipeline.cli import explain

    class KilledWorker(Exception):  # distributed's, by name
        pass

    class CommClosedError(OSError):
        pass
    message, code = explain(KilledWorker("('parse_task-1', <WorkerState 'tcp://w:1'>)"))
    assert code == 1 and "worker died" in message and "--partition-mb" in message
    message, code = explain(CommClosedError("in <TCP (closed) ConnectionPool.gather>"))
    assert code == 1 and "lost the Dask scheduler" in message
    message, code = explain(OSError(28, "No space left on device", "/data/out/x.parquet"))
    assert message == "No space left on device: /data/out/x.parquet; free space there"
    message, _ = explain(ZeroDivisionError("division by zero"))
    assert message.startswith("internal error: ZeroDivisionError") and "-v" in message


def test_verbose_shows_the_traceback(tmp_path: Path, capsys) -> None:
    assert main(["-v", "run", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"),
                 *LOCAL]) == 64
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("dsaccess: error:")
    assert main(["run", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"), *LOCAL]) == 64
    assert "Traceback" not in capsys.readouterr().err
