"""`dsaccess collect` against real OpenSSH servers on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import paramiko
import polars as pl
import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_servers
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run
from pipeline.sources import collect as collect_mod
from pipeline.sources.collect import collect

from . import sshd
from .conftest import SAMPLE

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sshd.available(), reason="OpenSSH sshd is not installed "
                                 "(apt-get install openssh-server; make test does it in CI)")]


@pytest.fixture()
def fleet(tmp_path: Path):
    """Three sshd servers holding copies of the sample logs, and a servers.yaml."""
    client_key = sshd.keygen(tmp_path / "client_ed25519")
    servers = []
    sources = {"ds1": SAMPLE / "real389a", "ds2": SAMPLE / "real389b", "ds3": SAMPLE / "real389b"}
    try:
        for name, src in sources.items():
            server = sshd.SshServer(tmp_path / name, client_key).start()
            for f in src.iterdir():
                shutil.copy(f, server.logs / f.name)
            servers.append((name, server))
        known = tmp_path / "known_hosts"
        known.write_text("".join(s.known_hosts_line() for _, s in servers))
        config = tmp_path / "servers.yaml"
        config.write_text(yaml.safe_dump(
            {"servers": [s.server_entry(n, known) for n, s in servers]}))
        yield tmp_path, config, dict(servers)
    finally:
        for _, server in servers:
            server.stop()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_then_incremental_collect(fleet) -> None:
    root, config, servers = fleet
    stage = root / "stage"
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet"]) == 0
    for name, server in servers.items():
        manifest = json.loads((stage / name / "MANIFEST.json").read_text())
        for remote in server.logs.iterdir():
            local = stage / name / remote.name
            assert local.read_bytes() == remote.read_bytes(), (name, remote.name)
            if remote.name != "access":
                assert manifest["files"][remote.name]["sha256"] == _digest(remote)
        assert manifest["live"]["offset"] == (server.logs / "access").stat().st_size
    # a second collect transfers nothing
    again = collect(load_servers(config), stage)
    assert [(o.fetched, o.bytes) for o in again] == [([], 0)] * 3
    # the live file grows: only the new bytes come
    live = servers["ds2"].logs / "access"
    extra = b"[26/Nov/2026:11:22:39.000000001 -0500] conn=900 op=9 UNBIND\n"
    partial = b"[26/Nov/2026:11:22:39.000000002 -0500] conn=900 op=9 fd=64 Disco"
    with open(live, "ab") as fh:
        fh.write(extra + partial)  # the server is writing its last line right now
    out = {o.server: o for o in collect(load_servers(config), stage)}
    assert out["ds2"].fetched == ["access"] and out["ds2"].bytes == len(extra)
    assert (stage / "ds2" / "access").read_bytes() == live.read_bytes()[: -len(partial)]
    assert out["ds1"].fetched == [] and out["ds3"].fetched == []


def test_rotation_loses_and_duplicates_nothing(fleet) -> None:
    root, config, servers = fleet
    stage = root / "stage"
    collect(load_servers(config), stage)
    logs = servers["ds1"].logs
    os.rename(logs / "access", logs / "access.20261126-162300")  # the server rotates
    (logs / "access").write_bytes(
        b"\t389-Directory/2.3.1 B2025.016.1616\n\tlocalhost:3636 (/etc/dirsrv/x)\n\n"
        b"[26/Nov/2026:16:23:00.000000001 +0000] conn=4000 fd=64 slot=64 connection from "
        b"127.0.0.1 to 127.0.0.1\n")
    out = {o.server: o for o in collect(load_servers(config), stage)}
    assert sorted(out["ds1"].fetched) == ["access", "access.20261126-162300"]
    assert list((stage / "ds1" / ".retired").iterdir())  # the old live copy is kept aside
    staged = _summary(root / "out-stage", f"ds1={stage}/ds1")
    direct = _summary(root / "out-direct", f"ds1={logs}")
    assert staged["lines"] == direct["lines"] and staged["operations"] == direct["operations"]


def _summary(out: Path, source: str) -> dict:
    run(RunOptions(inputs=(source,), out=out, scheduler="synchronous"))
    return json.loads((out / "summary.json").read_text())


def test_unknown_host_key_is_refused_then_accepted_on_request(fleet, capsys) -> None:
    root, config, servers = fleet
    (root / "known_hosts").write_text(servers["ds2"].known_hosts_line())  # only ds2 known
    stage = root / "stage"
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown host key for" in err and "--accept-new-host-keys" in err
    assert not (stage / "ds1" / "access").exists()
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet",
                 "--accept-new-host-keys"]) == 0
    text = (root / "known_hosts").read_text()
    assert f"[127.0.0.1]:{servers['ds1'].port}" in text


def test_changed_host_key_is_refused_even_with_accept_new(fleet) -> None:
    root, config, servers = fleet
    other = sshd.keygen(root / "other_host_key")
    line = servers["ds1"].known_hosts_line().split()
    fake = Path(str(other) + ".pub").read_text().split()
    (root / "known_hosts").write_text(f"{line[0]} {fake[0]} {fake[1]}\n")
    out = collect(load_servers(config)[:1], root / "stage", accept_new_host_keys=True)
    assert "host key CHANGED" in out[0].error


def test_wrong_user_key(fleet) -> None:
    root, config, _ = fleet
    stranger = sshd.keygen(root / "stranger")
    doc = yaml.safe_load(config.read_text())
    doc["servers"][0]["key_file"] = str(stranger)
    config.write_text(yaml.safe_dump(doc))
    out = collect(load_servers(config)[:1], root / "stage")
    assert "authentication failed" in out[0].error


def test_one_server_down_gives_exit_2_and_the_others_complete(fleet, capsys,
                                                               monkeypatch) -> None:
    root, config, servers = fleet
    monkeypatch.setattr(collect_mod, "BACKOFF_SECONDS", 0.01)
    servers["ds3"].stop()
    stage = root / "stage"
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ds3" in err and "FAILED" in err and "cannot connect" in err
    assert (stage / "ds1" / "access").exists() and (stage / "ds2" / "access").exists()


def test_killed_mid_transfer_leaves_no_partial_file_and_resumes(fleet, monkeypatch) -> None:
    root, config, servers = fleet
    monkeypatch.setattr(collect_mod, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(collect_mod, "BLOCK", 64 * 1024)
    big = servers["ds1"].logs / "access.20261126-000000"
    big.write_bytes((SAMPLE / "real389b" / "access.20261126-112119").read_bytes())
    server = servers["ds1"]
    killed = []

    def kill_once(name: str, n: int) -> None:
        if name == "ds1" and not killed:
            killed.append(n)
            server.stop(signal.SIGKILL)  # sshd dies under the transfer

    stage = root / "stage"
    out = collect(load_servers(config)[:1], stage, progress=kill_once)
    assert out[0].error and killed
    visible = [p.name for p in (stage / "ds1").iterdir() if not p.name.startswith(".")]
    assert "access.20261126-000000" not in visible  # only the hidden .part exists
    server.proc = None
    server.start()  # same port, same host key
    out = collect(load_servers(config)[:1], stage)
    assert out[0].ok
    assert (stage / "ds1" / big.name).read_bytes() == big.read_bytes()


def test_a_connection_dropped_as_sshexception_is_retried(fleet, monkeypatch) -> None:
    # paramiko reports a drop under a read as SSHException, which is not an OSError
    root, config, _ = fleet
    monkeypatch.setattr(collect_mod, "BACKOFF_SECONDS", 0.01)
    dropped = []

    def drop_once(name: str, n: int) -> None:
        if not dropped:
            dropped.append(n)
            raise paramiko.SSHException("Server connection dropped: ")

    out = collect(load_servers(config)[:1], root / "stage", progress=drop_once)
    assert dropped and out[0].ok and out[0].error is None
    assert (root / "stage" / "ds1" / "access").exists()


def test_run_reads_sftp_directly_and_equals_the_staged_run(fleet) -> None:
    root, config, servers = fleet
    stage = root / "stage"
    collect(load_servers(config)[1:2], stage)
    entry = load_servers(config)[1]
    url = f"sftp://{entry.user}@127.0.0.1:{entry.port}{servers['ds2'].logs}/access*"
    direct = root / "direct"
    run(RunOptions(inputs=(url,), servers=("ds2",), out=direct, workers=2,
                   storage_options={"known_hosts": entry.known_hosts,
                                    "key_filename": entry.key_file}))
    staged = root / "staged"
    run(RunOptions(inputs=(f"ds2={stage}/ds2",), out=staged, scheduler="synchronous"))
    assert json.loads((direct / "summary.json").read_text()) == \
        json.loads((staged / "summary.json").read_text())
    ops = [pl.read_parquet(d / "operations", hive_partitioning=True).sort("file", "line",
                                                                          "result_line")
           for d in (direct, staged)]
    assert ops[0].drop("server").equals(ops[1].drop("server"))


def test_since_skips_older_rotated_files_by_name(fleet) -> None:
    root, config, _ = fleet
    stage = root / "stage"
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet",
                 "--since", "2026-11-26T16:21:30Z"]) == 0
    got = sorted(p.name for p in (stage / "ds1").iterdir() if p.name.startswith("access"))
    # names before 20261126-162130 are skipped; the live file is always collected
    assert got == ["access", "access.20261126-162150.gz", "access.20261126-162205.gz"]


def test_since_is_compared_in_the_servers_local_time(fleet) -> None:
    root, config, _ = fleet
    stage = root / "stage"
    # ds2 logs in -0500: 16:21:00 UTC is 11:21:00 there, after 112018 and before 112119
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet",
                 "--since", "2026-11-26T16:21:00Z"]) == 0
    got = sorted(p.name for p in (stage / "ds2").iterdir() if p.name.startswith("access"))
    assert got == ["access", "access.20261126-112119"]


LIVE_LINE = "[26/Nov/2026:11:30:{:02d}.000000001 -0500] conn=9{:03d} op=1 UNBIND\n"


@pytest.mark.parametrize("step", collect_mod.CRASH_STEPS)
def test_a_kill_at_any_step_of_a_live_update_loses_and_duplicates_nothing(fleet, step) -> None:
    root, config, servers = fleet
    stage = root / "stage"
    cfg = yaml.safe_load(config.read_text())
    cfg["servers"] = cfg["servers"][1:2]  # ds2
    config.write_text(yaml.safe_dump(cfg))
    live = servers["ds2"].logs / "access"
    assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet"]) == 0
    for round_ in range(3):
        with open(live, "a") as fh:  # the server writes more, then the collect is killed
            fh.writelines(LIVE_LINE.format(round_ * 10 + i, round_ * 10 + i) for i in range(5))
        env = {**os.environ, "DSACCESS_COLLECT_KILL_AT": step}
        done = subprocess.run([sys.executable, "-m", "pipeline", "collect", "-c", str(config),
                               "-s", str(stage), "--quiet"], env=env, capture_output=True)
        assert done.returncode == -signal.SIGKILL, done.stderr
        with open(live, "a") as fh:
            fh.write(LIVE_LINE.format(round_ * 10 + 9, round_ * 10 + 9))
        assert main(["collect", "-c", str(config), "-s", str(stage), "--quiet"]) == 0
        assert (stage / "ds2" / "access").read_bytes() == live.read_bytes(), (step, round_)
    manifest = json.loads((stage / "ds2" / "MANIFEST.json").read_text())
    assert manifest["live"]["sha256"] == _digest(live) and "live_pending" not in manifest


def test_a_live_copy_that_does_not_match_its_manifest_is_fetched_anew(fleet) -> None:
    root, config, servers = fleet
    stage = root / "stage"
    collect(load_servers(config)[1:2], stage)
    staged = stage / "ds2" / "access"
    data = bytearray(staged.read_bytes())
    data[100] ^= 0x20  # a flipped bit, same size
    staged.write_bytes(bytes(data))
    with open(servers["ds2"].logs / "access", "a") as fh:
        fh.write(LIVE_LINE.format(1, 1))
    out = collect(load_servers(config)[1:2], stage)
    assert out[0].ok and staged.read_bytes() == (servers["ds2"].logs / "access").read_bytes()
    retired = list((stage / "ds2" / ".retired").iterdir())
    assert [p.read_bytes() for p in retired] == [bytes(data)]  # kept aside, not deleted


def test_the_old_live_copy_stays_until_the_rotated_file_is_in(fleet, monkeypatch) -> None:
    root, config, servers = fleet
    stage = root / "stage"
    collect(load_servers(config)[:1], stage)
    before = (stage / "ds1" / "access").read_bytes()
    logs = servers["ds1"].logs
    os.rename(logs / "access", logs / "access.20261126-162300")  # the server rotates
    (logs / "access").write_text(LIVE_LINE.format(1, 1))
    monkeypatch.setattr(collect_mod, "RETRIES", 1)
    real = collect_mod._collect_rotated

    def fails(fs, remote, name, *args):
        if name == "access.20261126-162300":
            raise OSError("connection lost")
        return real(fs, remote, name, *args)
    monkeypatch.setattr(collect_mod, "_collect_rotated", fails)
    out = collect(load_servers(config)[:1], stage)
    assert not out[0].ok
    assert (stage / "ds1" / "access").read_bytes() == before  # its lines are still seen
    monkeypatch.setattr(collect_mod, "_collect_rotated", real)
    assert collect(load_servers(config)[:1], stage)[0].ok
    assert (stage / "ds1" / "access.20261126-162300").read_bytes() == before
    assert (stage / "ds1" / "access").read_text() == LIVE_LINE.format(1, 1)


def test_new_host_keys_are_appended_and_the_file_kept(fleet) -> None:
    root, config, servers = fleet
    known = root / "known_hosts"
    revoked = Path(str(sshd.keygen(root / "revoked_key")) + ".pub").read_text().split()
    keep = ("# managed by hand: keep this comment\n"
            f"@revoked * {revoked[0]} {revoked[1]}\n" + servers["ds2"].known_hosts_line())
    known.write_text(keep)
    out = collect(load_servers(config), root / "stage", accept_new_host_keys=True,
                  parallel=3)  # three threads at once on one known_hosts
    assert all(o.ok for o in out), [o.error for o in out]
    text = known.read_text()
    assert text.startswith(keep)  # nothing rewritten
    added = text[len(keep):].splitlines()
    assert sorted(line.split()[0] for line in added) == sorted(
        f"[127.0.0.1]:{servers[n].port}" for n in ("ds1", "ds3"))


def test_a_revoked_host_key_is_refused(fleet) -> None:
    root, config, servers = fleet
    line = servers["ds1"].known_hosts_line().split()
    (root / "known_hosts").write_text(f"@revoked * {line[1]} {line[2]}\n" + " ".join(line)
                                      + "\n")
    out = collect(load_servers(config)[:1], root / "stage")
    assert "host key REVOKED" in out[0].error and not (root / "stage" / "ds1" / "access").exists()


def test_the_projects_sftp_leaves_fsspecs_alone() -> None:
    import fsspec
    from fsspec.implementations.sftp import SFTPFileSystem

    from pipeline.sources.source import VerifiedSFTPFileSystem
    assert fsspec.get_filesystem_class("sftp") is SFTPFileSystem
    assert fsspec.get_filesystem_class("dssftp") is VerifiedSFTPFileSystem


def test_a_url_with_a_password_is_refused_without_showing_it(tmp_path: Path, capsys) -> None:
    assert main(["run", "sftp://reader:s3cret@127.0.0.1/var/log/access*", "-o",
                 str(tmp_path / "out")]) == 64
    err = capsys.readouterr().err
    assert "s3cret" not in err and "reader:***@" in err and "--key-file" in err


def test_refused_remote_names_are_shown_escaped_and_exit_2(fleet, capsys) -> None:
    root, config, servers = fleet
    (servers["ds1"].logs / "access\nldap02  ok     fetched 99 files").write_text("x\n")
    stage = root / "stage"
    assert main(["collect", "-c", str(config), "-s", str(stage)]) == 2
    printed = capsys.readouterr()
    lines = (printed.out + printed.err).splitlines()
    assert not any(line.startswith("ldap02") for line in lines)  # no fake table row
    assert any("refused access\\nldap02" in line for line in lines)
    assert sorted(p.name for p in (stage / "ds1").iterdir() if "\n" in p.name) == []


def test_counters_count_each_file_once_after_a_retry(fleet, monkeypatch) -> None:
    root, config, servers = fleet
    monkeypatch.setattr(collect_mod, "BACKOFF_SECONDS", 0.01)
    calls = []

    def drop_late(name: str, n: int) -> None:
        calls.append(n)
        if len(calls) == 20:  # well into the files: some are in, the rest come next try
            raise paramiko.SSHException("Server connection dropped: ")
    monkeypatch.setattr(collect_mod, "BLOCK", 64 * 1024)
    out = collect(load_servers(config)[:1], root / "stage", progress=drop_late)[0]
    remote = sorted(p.name for p in servers["ds1"].logs.iterdir())
    assert out.ok and len(calls) > 20
    assert sorted(out.fetched) == remote and out.skipped == 0
    again = collect(load_servers(config)[:1], root / "stage")[0]
    assert again.fetched == [] and again.skipped == len(remote)


def test_logrotate_dateext_files_are_collected_and_numbered_ones_refused(fleet,
                                                                        capsys) -> None:
    # access-20261125.gz never changes once rotated: fetched like the server's own; access.1
    # becomes access.2 at the next rotation: a copy under its name would be overwritten
    root, config, servers = fleet
    logs = servers["ds1"].logs
    (logs / "access-20261125.gz").write_bytes(gzip.compress(b"\n"))
    (logs / "access.1").write_text("\n")
    stage = root / "stage"
    assert main(["collect", "-c", str(config), "-s", str(stage)]) == 2
    printed = capsys.readouterr()
    assert "refused access.1 (logrotate's numbered rotations" in printed.out + printed.err
    got = {p.name for p in (stage / "ds1").iterdir()}
    assert "access-20261125.gz" in got and "access.1" not in got
