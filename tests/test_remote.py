"""OUT and the scratch on a real SFTP server (OpenSSH on 127.0.0.1, through fsspec), and
workers that share no disk with the client: each `dask worker` starts in its own mount
namespace with an empty tmpfs over every folder of the run, so all it reads and writes goes
over SFTP. The results equal a local run's, and nothing is left in the scratch."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path

import pytest

from . import cluster, sshd
from .synth import generate

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sshd.available(), reason="needs OpenSSH's sshd")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An sshd serving the whole filesystem as root's SFTP; the fleet's logs and a local
    run of them (the reference)."""
    keys = tmp_path_factory.mktemp("keys")
    server = sshd.SshServer(keys / "sshd", sshd.keygen(keys / "client")).start()
    (keys / "known_hosts").write_text(server.known_hosts_line())
    data = tmp_path_factory.mktemp("data")
    generate(data / "fleet", servers=3, mb_per_server=6.0, seed=11, restarts=1)
    local = data / "local"
    _run([str(data / "fleet"), "-o", str(local), "--workers", "2", "--partition-mb", "2"],
         keys)
    try:
        yield server, keys, data, local
    finally:
        server.stop()


def _run(args: list[str], keys: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", *args, "--quiet",
                           "--known-hosts", str(keys / "known_hosts"),
                           "--key-file", str(keys / "client")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def _url(server: sshd.SshServer, path: Path) -> str:
    return f"sftp://{getpass.getuser()}@127.0.0.1:{server.port}{path}"


def test_out_and_scratch_over_sftp_equal_a_local_run(site, tmp_path: Path) -> None:
    server, keys, data, local = site
    out, scratch = tmp_path / "remote" / "out", tmp_path / "scratch"
    _run([str(data / "fleet"), "-o", _url(server, out), "--scratch", _url(server, scratch),
          "--workers", "2", "--partition-mb", "2"], keys)
    cluster.assert_same_output(out, local)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no staging left
    assert list(scratch.iterdir()) == []                             # nor scratch
    # a second run replaces the first, through the same SFTP renames
    _run([str(data / "fleet"), "-o", _url(server, out), "--workers", "2", "--partition-mb", "2"],
         keys)
    cluster.assert_same_output(out, local)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


@pytest.mark.skipif(not cluster.can_hide(), reason="needs root and unshare --mount")
def test_workers_that_cannot_see_the_clients_files(site, tmp_path: Path) -> None:
    server, keys, data, local = site
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    dask = cluster.Cluster().start()
    try:
        for _ in range(2):  # the key and known_hosts stay visible; the data do not
            dask.worker(hide=(data, tmp_path))
        dask.wait_for_workers(2)
        from distributed import Client
        with Client(dask.address) as client:  # the workers see empty folders
            seen = client.run(lambda: [p.name for p in (data, tmp_path)
                                       for p in p.iterdir()])
        assert list(seen.values()) == [[], []]
        inputs = [f"{name}={_url(server, data / 'fleet' / name)}"
                  for name in sorted(p.name for p in (data / "fleet").iterdir())]
        _run([*inputs, "-o", _url(server, out), "--scratch", _url(server, scratch),
              "--scheduler", dask.address, "--partition-mb", "2"], keys)
    finally:
        dask.stop()
    cluster.assert_same_output(out, local)
    assert list(scratch.iterdir()) == []


def test_an_unreachable_out_fails_in_one_line_before_any_work(tmp_path: Path) -> None:
    closed = sshd.free_port()
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", str(tmp_path), "-o",
                           f"sftp://127.0.0.1:{closed}/reports/x"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("dsaccess: error: cannot write the output: cannot connect to")
    assert f"sftp://127.0.0.1:{closed}/reports/x" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not cluster.can_hide(), reason="needs root and unshare --mount")
def test_trace_from_sftp_logs_on_workers_that_cannot_see_them(site, tmp_path: Path) -> None:
    """`dsaccess trace` reads sftp:// inputs as run does, on a cluster whose workers see
    neither the logs nor this test's folders: the rows equal a trace of the local run."""
    server, keys, data, local = site
    dn = "uid=svc-sync,dc=example,dc=com"
    reference = tmp_path / "reference.csv"
    done = subprocess.run([sys.executable, "-m", "pipeline", "trace", str(local), "--bind-dn",
                           dn, "--verb", "MOD", "-o", str(reference)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    dask = cluster.Cluster().start()
    try:
        for _ in range(2):
            dask.worker(hide=(data, tmp_path))
        dask.wait_for_workers(2)
        inputs = [f"{name}={_url(server, data / 'fleet' / name)}"
                  for name in sorted(p.name for p in (data / "fleet").iterdir())]
        got = tmp_path / "got.csv"
        done = subprocess.run([sys.executable, "-m", "pipeline", "trace", *inputs, "--bind-dn",
                               dn, "--verb", "MOD", "-o", str(got), "--scheduler", dask.address,
                               "--scratch", _url(server, tmp_path / "scratch"),
                               "--partition-mb", "2",
                               "--known-hosts", str(keys / "known_hosts"),
                               "--key-file", str(keys / "client")],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    finally:
        dask.stop()
    assert got.read_text() == reference.read_text() and got.read_text().count("\n") > 10
    assert list((tmp_path / "scratch").iterdir()) == []
