"""The whole chain against real parts, nothing simulated.

Two real 389 Directory Server instances on 127.0.0.1 (different time zones,
1 MB rotation, unbuffered access logs) take a recorded workload, one of them
restarted half-way; one real sshd per server serves its log folder; `dsaccess
collect` pulls the logs; a separate `dask scheduler` with two `dask worker`
processes runs `dsaccess run`; the counts must equal the workload's record
and agree with logconv; the report must open in Chromium and the metrics pass
promtool. Everything started is stopped by pid, and the instances removed,
also when a step fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from .. import browser, sshd
from ..test_report import _promtool

HERE = Path(__file__).parent
SYS_PY = "/usr/bin/python3"          # Debian's python: lib389 and python-ldap live there
NS_SLAPD = "/usr/sbin/ns-slapd"
VENV_BIN = Path(sys.executable).parent
SERVICE_IDENTITIES = {"cn=directory manager"}  # the harness's own configuration traffic

pytestmark = [
    pytest.mark.ds389,
    pytest.mark.skipif(not (os.path.exists(NS_SLAPD) and os.geteuid() == 0),
                       reason="needs root and 389-ds-base (make integration installs it)"),
]


class Instance:
    """One 389 DS instance, started and stopped by its pid file (no systemd)."""

    def __init__(self, name: str, tz: str, root: Path) -> None:
        self.name, self.tz, self.root = name, tz, root
        self.port, self.tls_port = sshd.free_port(), sshd.free_port()
        self.password = secrets.token_urlsafe(16)  # generated per run, never stored

    @property
    def logdir(self) -> Path:
        return Path(f"/var/log/dirsrv/slapd-{self.name}")

    @property
    def pidfile(self) -> Path:
        return Path(f"/run/dirsrv/slapd-{self.name}.pid")

    @property
    def ldapi(self) -> str:
        return f"/run/slapd-{self.name}.socket"

    def create(self) -> None:
        inf = self.root / f"{self.name}.inf"
        inf.write_text("\n".join([
            "[general]", "full_machine_name = localhost", "strict_host_checking = False",
            "systemd = False", "selinux = False", "start = True", "[slapd]",
            f"instance_name = {self.name}", f"port = {self.port}",
            f"secure_port = {self.tls_port}", "root_dn = cn=Directory Manager",
            f"root_password = {self.password}", "self_sign_cert = False",
            "[backend-userroot]", "suffix = dc=example,dc=com", "sample_entries = no",
            "create_suffix_entry = True", ""]))
        inf.chmod(0o600)
        _sys_py(HERE / "ds_instance.py", "create", str(inf), env={"TZ": self.tz})
        self.configure("nsslapd-accesslog-logbuffering", "off",
                       "nsslapd-accesslog-maxlogsize", "1",
                       "nsslapd-accesslog-maxlogsperdir", "50",
                       "nsslapd-accesslog-logexpirationtime", "-1",
                       "nsslapd-accesslog-logmaxdiskspace", "-1")

    def configure(self, *pairs: str) -> None:
        ldif = ["dn: cn=config", "changetype: modify"]
        for attr, value in zip(pairs[::2], pairs[1::2], strict=True):
            ldif += [f"replace: {attr}", f"{attr}: {value}", "-"]
        subprocess.run(["ldapmodify", "-H", "ldapi://" + self.ldapi.replace("/", "%2f"),
                        "-Y", "EXTERNAL", "-Q"], input="\n".join(ldif) + "\n", text=True,
                       check=True, capture_output=True, timeout=60)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def starts(self) -> int:
        """Server starts, from the server's own errors log."""
        text = (self.logdir / "errors").read_text(errors="replace")
        return text.count("slapd started")

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(240):
            if self.pid() is None:
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} (pid {pid}) did not stop")

    def start(self) -> None:
        before = self.starts()
        Path("/run/dirsrv").mkdir(exist_ok=True)
        Path(f"/run/lock/dirsrv/slapd-{self.name}").mkdir(parents=True, exist_ok=True)
        subprocess.run(["chown", "-R", "dirsrv:dirsrv", "/run/dirsrv", "/run/lock/dirsrv"],
                       check=True)
        subprocess.run([NS_SLAPD, "-D", f"/etc/dirsrv/slapd-{self.name}", "-i",
                        str(self.pidfile)], env={**os.environ, "TZ": self.tz}, check=True,
                       capture_output=True, timeout=120)
        for _ in range(360):
            if self.pid() and self.starts() > before:
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not start; see {self.logdir / 'errors'}")

    def remove(self) -> None:
        self.stop()
        _sys_py(HERE / "ds_instance.py", "remove", self.name, check=False)
        subprocess.run(["rm", "-rf", str(self.logdir), f"/etc/dirsrv/slapd-{self.name}.removed",
                        f"/run/lock/dirsrv/slapd-{self.name}"], check=False)


def _sys_py(script: Path, *args: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([SYS_PY, str(script), *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)
    if check and done.returncode:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


class Processes:
    """Everything the test starts, stopped by pid at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, *cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture()
def lab(tmp_path: Path):
    instances = [Instance("dsaccessa", "UTC", tmp_path), Instance("dsaccessb",
                                                                  "America/New_York", tmp_path)]
    servers: list[sshd.SshServer] = []
    procs = Processes()
    try:
        for inst in instances:
            inst.remove()  # a previous run that died may have left one behind
        yield tmp_path, instances, servers, procs
    finally:
        procs.stop_all()
        for server in servers:
            server.stop()
        for inst in instances:
            inst.remove()


def test_real_servers_collect_cluster_report(lab) -> None:
    root, (a, b), servers, procs = lab
    for inst in (a, b):
        inst.create()
        _sys_py(HERE / "workload.py", "setup", "--ldapi", inst.ldapi)
    # B also writes its searches' index reads (STAT lines, 2.3.1+)
    b.configure("nsslapd-statlog-level", "1")

    # the recorded workload, with server A restarted half-way
    t0 = datetime.now(UTC)
    records = {inst.name: root / f"record-{inst.name}.json" for inst in (a, b)}
    _sys_py(HERE / "workload.py", "mixed", "--port", str(a.port), "--sessions", "900",
            "--seed", "1", "--record", str(records[a.name]))
    a.stop()
    a.start()
    _sys_py(HERE / "workload.py", "mixed", "--port", str(a.port), "--sessions", "900",
            "--seed", "2", "--record", str(records[a.name]))
    _sys_py(HERE / "workload.py", "mixed", "--port", str(b.port), "--sessions", "700",
            "--seed", "3", "--record", str(records[b.name]))
    for inst in (a, b):
        inst.stop()  # the logs are complete and final
    assert any(p.name.startswith("access.2") for p in a.logdir.iterdir()), "no rotation"

    # one sshd per LDAP server, and dsaccess collect
    client_key = sshd.keygen(root / "client_key")
    for inst in (a, b):
        servers.append(sshd.SshServer(root / f"sshd-{inst.name}", client_key).start())
    known = root / "known_hosts"
    known.write_text("".join(s.known_hosts_line() for s in servers))
    config = root / "servers.yaml"
    config.write_text(yaml.safe_dump({"servers": [
        {**s.server_entry(inst.name, known), "logs": f"{inst.logdir}/access*"}
        for inst, s in zip((a, b), servers, strict=True)]}))
    stage = root / "stage"
    _dsaccess("collect", "-c", str(config), "-s", str(stage), "--quiet")

    # a real Dask cluster: a scheduler and two workers, each its own process
    port = sshd.free_port()
    procs.start(str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                str(port), "--no-dashboard")
    for _ in range(2):
        procs.start(str(VENV_BIN / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads",
                    "1", "--no-dashboard", "--host", "127.0.0.1")
    _wait_for_workers(port, 2)
    out = root / "out"
    _dsaccess("run", str(stage), "-o", str(out), "--scheduler", f"tcp://127.0.0.1:{port}",
              "--quiet")

    summary = json.loads((out / "summary.json").read_text())
    ops = pl.read_parquet(out / "operations", hive_partitioning=True)
    for inst in (a, b):
        record = json.loads(records[inst.name].read_text())
        mine = ops.filter((pl.col("server") == inst.name) & ~pl.col("internal") &
                          (pl.col("ts") >= t0) &
                          # (as LDAP compares DNs: the log spells it cn=Directory Manager)
                          ~pl.col("bind_dn").str.to_lowercase().is_in(list(SERVICE_IDENTITIES)))
        got = {f"{dn}|{verb}": n for dn, verb, n in
               mine.group_by("bind_dn", "verb").len().iter_rows()}
        assert got == record["ops"], inst.name
        failed = mine.filter((pl.col("verb") == "BIND") & (pl.col("err") == 49)).height
        assert failed == record["failed_binds"]
        section = summary["servers"][inst.name]
        assert section["restarts"] == inst.starts()
        assert section["lines"]["rejected"] == 0
        _agrees_with_logconv(stage / inst.name, section)
    assert summary["servers"][a.name]["restarts"] == summary["servers"][b.name]["restarts"] + 1
    _index_reads_are_the_filters(ops, t0, a.name, b.name)
    _index_advice_names_description(out, a.name, b.name)

    dom = browser.dump_dom(out / "report.html") if browser.available() else ""
    if dom:
        assert '<pre id="report-errors"></pre>' in dom
        assert f'id="kpi-lines">lines<b>{summary["lines"]["total"]:,}</b>' in dom
    _promtool(out / "metrics.prom")


def _index_reads_are_the_filters(ops: pl.DataFrame, t0: datetime, quiet: str, statlog: str
                                 ) -> None:
    """The server with STAT lines has each client one-level or subtree search of the
    suffix that is not paged with its index reads: a (uid=userNNNN) search read uid's
    equality index with that key, one candidate."""
    searches = ops.filter((pl.col("verb") == "SRCH") & ~pl.col("internal") &
                          (pl.col("ts") >= t0) & pl.col("base").str.ends_with("dc=com"))
    assert searches.filter(pl.col("server") == quiet)["index_reads"].is_null().all()
    # a base search reads its entry, no index; a paged search's RESULT is written by the
    # branch that logs no STAT line (result.c:2510-2521 at 70dcccaf; 2.3.1 alike)
    mine = searches.filter((pl.col("server") == statlog) & (pl.col("scope") != 0)
                           & ~pl.col("paged"))
    assert mine.height > 100 and mine["index_reads"].null_count() == 0
    by_uid = mine.filter(pl.col("filter").str.starts_with("(uid=user"))
    assert by_uid.height > 10
    for filt, reads in by_uid.select("filter", "index_reads").iter_rows():
        key = filt[len("(uid="):-1]
        assert {"attribute": "uid", "index": "eq", "key": key, "count": 1} in reads, reads


def _index_advice_names_description(out: Path, plain: str, statlog: str) -> None:
    """The workload's (description=*am-N*) searches are partially unindexed (description
    has no substring index; 2.3.1 marks them U): the advice names it on both servers, and
    the server that logs its index reads proves it, its reads having returned all IDs."""
    advice = pl.read_parquet(out / "indexes.parquet")
    rows = {r["server"]: r for r in advice.filter(
        (pl.col("attribute") == "description") & (pl.col("index") == "sub")).to_dicts()}
    assert rows[statlog]["evidence"] == "allids", rows[statlog]
    assert rows[statlog]["searches"] > 10 and rows[statlog]["stat_reads"] > 10
    assert rows[plain]["searches"] > 10
    assert rows[plain]["evidence"] == "filter" and rows[plain]["allids_count"] is None
    # uid's equality index exists (a default index), as both servers show
    uid = advice.filter((pl.col("attribute") == "uid") & (pl.col("index") == "eq"))
    assert set(uid["evidence"]) <= {"indexed"}, uid


def _dsaccess(*args: str) -> None:
    done = subprocess.run([str(VENV_BIN / "dsaccess"), *args], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"dsaccess {args[0]} failed:\n{done.stderr[-3000:]}"


def _wait_for_workers(port: int, n: int) -> None:
    from distributed import Client
    with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as client:
        client.wait_for_workers(n, timeout=120)


def _agrees_with_logconv(folder: Path, section: dict) -> None:
    logconv = "/usr/bin/logconv"
    if not os.path.exists(logconv):
        return
    files = sorted(str(p) for p in folder.glob("access.2*")) + [str(folder / "access")]
    done = subprocess.run(["perl", logconv, "-V", *files], capture_output=True, text=True,
                          timeout=600)
    numbers = {}
    for line in done.stdout.splitlines():
        name, _, rest = line.partition(":")
        value = rest.split()[0] if rest.split() else ""
        name = name.strip().lstrip("- ")
        if value.isdigit() and name not in numbers:
            numbers[name] = int(value)
    ops = section["operations"]
    assert section["connections"] == numbers["Total Connections"]
    assert ops["BIND"] == numbers["LDAP v3 Binds"]       # logconv's Binds adds AUTOBINDs
    assert ops["UNBIND"] == numbers["Unbinds"]
    assert ops["MOD"] + section["internal_operations"] >= numbers["Modifications"] >= ops["MOD"]
    assert ops["SRCH"] <= numbers["Searches"] <= ops["SRCH"] + section["internal_operations"]
    assert section["restarts"] == numbers["Restarts"]
