"""`dsaccess exporter` against real 389 DS instances: connections held open as several
identities are counted in their workload classes; counters move; a stopped server and a
wrong password give `dsaccess_up 0` while the other server keeps reporting."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from .. import sshd
from ..test_report import _promtool
from .test_fleet import HERE, VENV_BIN, Instance, Processes, _sys_py, pytestmark  # noqa: F401

ldap = pytest.importorskip("ldap")
from ldap.controls import SimplePagedResultsControl  # noqa: E402

PASSWORD = "user-Secret-1"  # workload.py setup's
SVC = "uid=svc-app,ou=services,dc=example,dc=com"
USER = "uid=user0001,ou=people,dc=example,dc=com"


@pytest.fixture()
def servers(tmp_path: Path):
    instances = [Instance("dsexpa", "UTC", tmp_path), Instance("dsexpb", "UTC", tmp_path)]
    procs = Processes()
    try:
        for inst in instances:
            inst.remove()
            inst.create()
            _sys_py(HERE / "workload.py", "setup", "--ldapi", inst.ldapi)
        yield tmp_path, instances, procs
    finally:
        procs.stop_all()
        for inst in instances:
            inst.remove()


def _scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.read().decode()


def _value(text: str, name: str, **labels: str) -> float | None:
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


def start_exporter(procs: Processes, config: Path) -> int:
    """`dsaccess exporter -c CONFIG` on a free port, once it answers: the port."""
    port = sshd.free_port()
    procs.start(str(VENV_BIN / "dsaccess"), "exporter", "-c", str(config), "--listen",
                f"127.0.0.1:{port}")
    for _ in range(100):
        try:
            _scrape(port, "/")
            break
        except OSError:
            time.sleep(0.1)
    return port


def _connect(port: int, dn: str = "", password: str = "") -> object:
    conn = ldap.initialize(f"ldap://127.0.0.1:{port}")
    conn.protocol_version = 3
    conn.simple_bind_s(dn, password)
    return conn


def test_exporter_counts_live_connections_by_class(servers) -> None:
    root, (a, b), procs = servers
    for inst, name in ((a, "pw-a"), (b, "pw-b")):
        (root / name).write_text(inst.password)
        (root / name).chmod(0o600)
    (root / "pw-wrong").write_text("not-the-password")
    (root / "pw-wrong").chmod(0o600)
    config = root / "servers.yaml"
    entry = {"bind_dn": "cn=Directory Manager", "timeout": 3}
    config.write_text(yaml.safe_dump({"servers": [
        {"name": "a", "ldap": {**entry, "url": f"ldap://127.0.0.1:{a.port}",
                               "password_file": str(root / "pw-a")}},
        {"name": "b", "ldap": {**entry, "url": f"ldap://127.0.0.1:{b.port}",
                               "password_file": str(root / "pw-b")}},
        # on b: its failing bind must not show among a's connections
        {"name": "wrong", "ldap": {**entry, "url": f"ldap://127.0.0.1:{b.port}",
                                   "password_file": str(root / "pw-wrong")}},
    ]}))
    port = start_exporter(procs, config)

    # held open on a: 3 as a service account, 2 as a user, 2 anonymous, one of them in
    # the middle of a paged search
    held = [_connect(a.port, SVC, PASSWORD) for _ in range(3)]
    held += [_connect(a.port, USER, PASSWORD) for _ in range(2)]
    held += [_connect(a.port) for _ in range(2)]
    paged = SimplePagedResultsControl(True, size=5, cookie="")
    msgid = held[-1].search_ext("ou=people,dc=example,dc=com", ldap.SCOPE_SUBTREE,
                                "(objectClass=person)", ["cn"], serverctrls=[paged])
    held[-1].result3(msgid)  # one page read, more to come
    first = _scrape(port)
    path = root / "metrics.prom"
    path.write_text(first)
    _promtool(path)
    counts = {w: _value(first, "dsaccess_ds_connections", server="a", workload=w)
              for w in ("service-accounts", "users", "anonymous", "directory-manager")}
    # the exporter's own connection is the directory-manager one
    assert counts == {"service-accounts": 3, "users": 2, "anonymous": 2,
                      "directory-manager": 1}, counts
    assert _value(first, "dsaccess_up", server="a") == 1
    assert _value(first, "dsaccess_up", server="b") == 1
    assert _value(first, "dsaccess_ds_threads", server="a") > 0
    assert _value(first, "dsaccess_exporter_parse_errors_total", server="a") == 0
    age = _value(first, "dsaccess_ds_connection_age_seconds_count", server="a",
                 workload="service-accounts")
    assert age == 3

    # counters move with a workload
    for conn in held[:3]:
        conn.search_s("ou=people,dc=example,dc=com", ldap.SCOPE_SUBTREE, "(uid=user00*)")
    second = _scrape(port)
    assert _value(second, "dsaccess_ds_operations_completed_total", server="a") >= \
        _value(first, "dsaccess_ds_operations_completed_total", server="a") + 3
    assert _value(second, "dsaccess_ds_snmp_searchops_total", server="a") > \
        _value(first, "dsaccess_ds_snmp_searchops_total", server="a")

    # a wrong password: up 0 and the reason on /, never a crash
    assert _value(second, "dsaccess_up", server="wrong") == 0
    page = _scrape(port, "/")
    assert "Invalid credentials" in page and "DOWN" in page

    # a stopped server: up 0, and the other keeps reporting
    for conn in held:
        conn.unbind_s()
    b.stop()
    third = _scrape(port)
    assert _value(third, "dsaccess_up", server="b") == 0
    assert _value(third, "dsaccess_up", server="a") == 1
    assert _value(third, "dsaccess_ds_connections", server="a",
                  workload="service-accounts") is None  # all closed
    path.write_text(third)
    _promtool(path)


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = Path(__file__).parent.parent.parent / "conf" / "dsaccess-exporter.service"
    text = unit.read_text()
    assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text
    # verify also checks that ExecStart's program exists: point it at this build
    here = tmp_path / unit.name
    here.write_text(text.replace("/usr/local/bin/dsaccess", str(VENV_BIN / "dsaccess")))
    done = subprocess.run([analyze, "verify", str(here)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
