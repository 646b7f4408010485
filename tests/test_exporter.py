"""The exporter's pure parts: cn=monitor values, live workload rules, the exposition."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import load_servers, load_workloads
from pipeline.errors import ConfigError
from pipeline.live.exporter import render
from pipeline.live.monitor import ServerReading, parse_connection, read_monitor

from .test_report import PROMTOOL, _promtool

CONF = Path(__file__).parent.parent / "conf"
ALERTS = CONF / "prometheus" / "dsaccess-alerts.yml"
DASHBOARD = CONF / "grafana" / "dsaccess.json"
FIXTURES = Path(__file__).parent / "fixtures"

NOW = 1796130600  # 2026-12-01 13:10:00 UTC


@pytest.mark.parametrize("value,want", [
    ("64:20261201130949Z:5:4:-:uid=svc-a,dc=x:0:0:0:12:ip=127.0.0.1",
     (64, "uid=svc-a,dc=x", 5, 4, 1, 12, "127.0.0.1")),
    ("6:20261201131416Z:1:1:-:NULLDN:0:0:0:6:ip=127.0.0.1", (6, "", 1, 1, 0, 6, "127.0.0.1")),
    ("9:20261201131416Z:3:1:r:cn=a\\:b,dc=x:0:0:0:77:ip=2001:db8::1",
     (9, "cn=a\\:b,dc=x", 3, 1, 2, 77, "2001:db8::1")),
    # an older layout: no max-threads fields, no connection id
    ("64:20261201130949Z:5:5:-:cn=directory manager:ip=10.0.0.1",
     (64, "cn=directory manager", 5, 5, 0, None, "10.0.0.1")),
], ids=["2.x", "anonymous", "colons in the DN and an IPv6 address", "older layout"])
def test_connection_values_are_read_from_both_ends(value: str, want: tuple) -> None:
    c = parse_connection(value)
    assert c is not None
    assert (c["fd"], c["bind_dn"], c["ops_initiated"], c["ops_completed"], c["ops_pending"],
            c["conn_id"], c["client_ip"]) == want


@pytest.mark.parametrize("value", ["", "garbage", "x:20261201130949Z:1:1:-:dn:ip=1.2.3.4",
                                   "64:yesterday:1:1:-:dn:ip=1.2.3.4", "64:20261201130949Z:1",
                                   "64:20261201130949Z:-1:1:-:dn:ip=1.2.3.4"])
def test_malformed_connection_values_are_counted_not_fatal(value: str) -> None:
    assert parse_connection(value) is None
    good = b"64:20261201130949Z:5:4:-:uid=svc-a,dc=x:0:0:0:12:ip=127.0.0.1"
    reading = read_monitor("s", {"connection": [value.encode(), good]}, {}, {}, NOW, (), 0.01)
    assert reading.parse_errors == 1 and reading.connections.height == 1


def _monitor(values: list[str]) -> dict[str, list[bytes]]:
    return {"connection": [v.encode() for v in values], "threads": [b"17"],
            "currentconnections": [str(len(values)).encode()], "opsinitiated": [b"100"],
            "opscompleted": [b"98"]}


def test_live_connections_are_classified_by_the_batch_rules(tmp_path: Path) -> None:
    rules = load_workloads(None, live=True)
    values = [f"{i}:20261201130000Z:{i}:{i}:-:{dn}:0:0:0:{i}:ip=10.0.0.{i}"
              for i, dn in enumerate(["uid=svc-app,dc=x", "uid=svc-app,dc=x", "NULLDN",
                                      "uid=u1,ou=people,dc=x", "cn=Directory Manager"],
                                     start=1)]
    reading = read_monitor("a", _monitor(values), {}, {}, NOW, rules, 0.01)
    got = dict(reading.connections.group_by("workload").len().iter_rows())
    assert got == {"service-accounts": 2, "anonymous": 1, "users": 1, "directory-manager": 1}
    assert set(reading.connections["conn_duration"]) == {600.0}  # opened 10 minutes ago


def test_a_rule_on_a_batch_only_variable_is_refused_for_live_connections(
        tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text('classes:\n  - name: slow\n    when: verb == "SRCH" && etime > 1.0\n'
                    '  - name: long\n    when: conn_duration > 3600.0\n')
    load_workloads(path)  # fine for the logs
    with pytest.raises(ConfigError, match=r"rule 'slow' \(line 2\): etime, verb is not known "
                                          r"for live connections"):
        load_workloads(path, live=True)
    builtin = [name for name, _, _ in load_workloads(None, live=True)]
    assert "unindexed-scans" not in builtin and "service-accounts" in builtin
    path.write_text("classes:\n  - name: busy\n    when: ops_pending > 2\n")
    with pytest.raises(ConfigError, match="ops_pending is not known for operations"):
        load_workloads(path)


def _reading(server: str, values: list[str], rules) -> ServerReading:
    return read_monitor(server, _monitor(values),
                        {"searchops": [b"7"], "connections": [b"3"]},
                        {"userroot": {"entrycachehits": [b"5"], "maxentrycachesize": [b"1024"]}},
                        NOW, rules, 0.02)


def test_the_exposition_passes_promtool_and_labels_are_escaped(tmp_path: Path) -> None:
    rules_file = tmp_path / "w.yaml"
    rules_file.write_text('classes:\n  - name: "odd \\"name\\" \\\\ here"\n'
                          '    when: bind_dn.startsWith("uid=")\n  - name: rest\n'
                          '    when: "true"\n')
    rules = load_workloads(rules_file, live=True)
    values = ["1:20261201130000Z:4:1:-:uid=<b>\"x\",dc=y:0:0:0:1:ip=10.0.0.1",
              "2:20261201130000Z:1:1:-:NULLDN:0:0:0:2:ip=10.0.0.2"]
    down = ServerReading("b", ok=False, seconds=3.0, error="SERVER_DOWN", at=NOW)
    text = render([_reading("a", values, rules), down], {"a": 0, "b": 0}, histocrutch=True)
    text = text.decode()
    assert 'dsaccess_ds_connections{server="a",workload="odd \\"name\\" \\\\ here"} 1.0' in text
    assert "uid=<b>" not in text  # bind DNs reach the labels only through the classes
    assert 'dsaccess_up{server="b"} 0.0' in text and 'dsaccess_up{server="a"} 1.0' in text
    assert 'dsaccess_ds_pending_operations{server="a",workload="odd' in text
    assert re.search(r'dsaccess_ds_connection_age_seconds_bucket_le_600\{', text) is None
    assert "dsaccess_ds_connection_age_seconds_bucket_le_inf" in text  # histocrutch
    assert 'dsaccess_ds_snmp_searchops_total{server="a"} 7.0' in text
    assert "snmp_connections_total" not in text  # open now: not a counter
    assert 'dsaccess_ds_backend_entry_cache_max_size_bytes{backend="userroot",server="a"}' \
        in text
    path = tmp_path / "m.prom"
    path.write_text(text)
    _promtool(path)  # last: without promtool, the label checks above still ran


def test_ldap_blocks_are_checked_before_any_connection(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret")
    pw.chmod(0o644)

    def load(block: dict) -> None:
        path = tmp_path / "servers.yaml"
        path.write_text(yaml.safe_dump({"servers": [{"name": "a", "ldap": block}]}))
        load_servers(path, need="ldap")

    with pytest.raises(ConfigError, match="readable by others .* chmod 600"):
        load({"url": "ldap://h", "bind_dn": "cn=x", "password_file": str(pw)})
    with pytest.raises(ConfigError, match="passwords are never read"):
        load({"url": "ldap://h", "bind_dn": "cn=x", "password": "secret"})
    with pytest.raises(ConfigError, match="url must be ldap://, ldaps:// or ldapi://"):
        load({"url": "http://h"})
    with pytest.raises(ConfigError, match="needs password_file"):
        load({"url": "ldap://h", "bind_dn": "cn=x"})
    pw.chmod(0o600)
    load({"url": "ldapi://%2frun%2fslapd-a.socket", "sasl_mech": "EXTERNAL"})
    load({"url": "ldap://h", "bind_dn": "cn=x", "password_file": str(pw), "timeout": 2})


def test_one_scrape_of_two_servers_with_1000_connections_each_counts_every_one() -> None:
    # (its speed is the bench's to measure, not a test's) 1000 connections of four kinds
    # of bind DN: each workload's connections, pending operations (initiated - completed,
    # never below 0: monitor.c's two counters) and ages, from the inputs' own truth
    rules = load_workloads(None, live=True)
    dns = ["uid=user{:04d},ou=people,dc=x", "uid=svc-app{},dc=x", "NULLDN",
           "cn=Directory Manager"]
    workload = {0: "users", 1: "service-accounts", 2: "anonymous", 3: "directory-manager"}
    values = [f"{i}:20261201130000Z:{i % 7}:{i % 5}:-:{dns[i % 4].format(i % 300)}"
              f":0:0:0:{i}:ip=10.0.{i // 250}.{i % 250}" for i in range(1000)]
    text = render([_reading(s, values, rules) for s in ("a", "b")], {"a": 0, "b": 0}).decode()
    for server in ("a", "b"):
        for k, name in workload.items():
            mine = [i for i in range(1000) if i % 4 == k]
            labels = f'server="{server}",workload="{name}"'
            pending = sum(max(0, i % 7 - i % 5) for i in mine)
            age = NOW - 1796130000  # opened 2026-12-01 13:00:00 UTC
            for line in (f"dsaccess_ds_connections{{{labels}}} {len(mine)}.0",
                         f"dsaccess_ds_pending_operations{{{labels}}} {pending}.0",
                         f"dsaccess_ds_connection_age_seconds_sum{{{labels}}} "
                         f"{age * len(mine)}.0",
                         f'dsaccess_ds_connection_age_seconds_bucket{{le="300",{labels}}} 0.0',
                         f'dsaccess_ds_connection_age_seconds_bucket{{le="1800",{labels}}} '
                         f"{len(mine)}.0"):
                assert line in text.splitlines(), line


# cn=monitor's worker-pool attributes of 389 DS 3.2.1 (and the branches it was backported
# to): ldap/servers/slapd/monitor.c:123-135 at 70dcccaf
POOL = {"currentworkqueue": [b"7"], "maxworkqueue": [b"40"], "currentbusyworkers": [b"16"],
        "maxbusyworkers": [b"16"]}


def test_worker_pool_gauges_and_the_backlog_are_served_where_the_server_has_them() -> None:
    rules = load_workloads(None, live=True)
    new = read_monitor("new", {**_monitor([]), **POOL}, {}, {}, NOW, rules, 0.01)
    old = read_monitor("old", _monitor([]), {}, {}, NOW, rules, 0.01)
    lines = render([new, old], {"new": 0, "old": 0}).decode().splitlines()
    for name, value in (("work_queue", 7), ("work_queue_max", 40), ("busy_workers", 16),
                        ("busy_workers_max", 16)):
        assert f'dsaccess_ds_{name}{{server="new"}} {value}.0' in lines
        assert not any(line.startswith(f'dsaccess_ds_{name}{{server="old"}}') for line in lines)
    # opsinitiated 100 - opscompleted 98, on any server version
    for server in ("new", "old"):
        assert f'dsaccess_ds_backlog_operations{{server="{server}"}} 2.0' in lines


def test_a_scrape_that_times_out_is_counted_with_its_reason(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers: what a saturated pool does
    to the monitor search too."""
    import socket

    from pipeline.live.exporter import Exporter, front_page
    mute = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(mute.accept()), daemon=True).start()
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump({"servers": [{"name": "mute", "ldap": {
        "url": f"ldap://127.0.0.1:{mute.getsockname()[1]}", "timeout": 0.5}}]}))
    exporter = Exporter(load_servers(path, need="ldap"), load_workloads(None, live=True))
    try:
        exporter.metrics()
        lines = exporter.metrics().decode().splitlines()
    finally:
        mute.close()
    assert 'dsaccess_scrape_timeouts_total{server="mute"} 2.0' in lines
    assert 'dsaccess_up{server="mute"} 0.0' in lines
    page = front_page(exporter)
    assert "timed out" in page.lower() and "<td>2</td>" in page


def test_the_alert_rules_pass_promtool_and_fire_on_saturation_only() -> None:
    if not PROMTOOL:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus)")
    for args, cwd in ((["check", "rules", str(ALERTS)], None),
                      (["test", "rules", "alerts_test.yml"], FIXTURES / "prometheus")):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_and_alert_query_names_a_metric_the_exporter_serves() -> None:
    rules = load_workloads(None, live=True)
    values = ["1:20261201130000Z:4:1:-:uid=u1,ou=people,dc=x:0:0:0:1:ip=10.0.0.1"]
    reading = read_monitor("a", {**_monitor(values), **POOL}, {}, {}, NOW, rules, 0.01)
    text = render([reading], {"a": 0}).decode()
    served = {m for m in re.findall(r"^# TYPE (\S+) (\w+)", text, re.M) for m in
              _sample_names(*m)}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"]
                for r in g["rules"]]
    named = {n for q in queries for n in re.findall(r"\b(dsaccess_\w+)", q)}
    assert named and named <= served, named - served
    assert dashboard["panels"][0]["title"].startswith("Worker pool")  # the pool first


def _sample_names(name: str, kind: str) -> set[str]:
    """The series names a family of this kind serves."""
    if kind == "counter":
        return {name, f"{name}_total"} if not name.endswith("_total") else {name}
    if kind == "histogram":
        return {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def test_without_python_ldap_the_exporter_refuses_at_start_with_exit_69(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump({"servers": [{"name": "a", "ldap": {
        "url": "ldap://127.0.0.1:1"}}]}))
    code = ("import sys; sys.modules['ldap'] = None; sys.argv = ['dsaccess', 'exporter', "
            f"'-c', {str(path)!r}, '--once']; from pipeline.__main__ import entry; "
            "sys.exit(entry())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 69 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "dsaccess: error: the exporter needs python-ldap: pip install 'dsaccess[exporter]' "
        "(python-ldap builds against libldap-dev and libsasl2-dev)"]


def _throwaway_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA made for this test, and a certificate it signed for 127.0.0.1: (ca, cert, key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool) -> Any:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=1))
             .not_valid_after(now + dt.timedelta(hours=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dsaccess test CA")])
    ca = cert("dsaccess test CA", ca_key, ca_name, ca_key, True)
    server = cert("127.0.0.1", key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    paths = (folder / "ca.crt", folder / "server.crt", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_metrics_over_tls_with_basic_auth_refuse_a_wrong_password(tmp_path: Path) -> None:
    import base64
    import ssl
    import urllib.error
    import urllib.request

    import bcrypt

    from pipeline.live.exporter import Exporter, serve
    from pipeline.live.webconfig import load_web_config
    ca, crt, key = _throwaway_ca(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": crt.name,
                                                         "key_file": key.name},
                                   "basic_auth_users": {"prometheus": hashed}}))
    servers = tmp_path / "servers.yaml"
    servers.write_text(yaml.safe_dump({"servers": [{"name": "a", "ldap": {
        "url": "ldap://127.0.0.1:1", "timeout": 0.2}}]}))
    httpd = serve(Exporter(load_servers(servers, need="ldap"), load_workloads(None, live=True)),
                  "127.0.0.1", 0, load_web_config(web))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{httpd.server_address[1]}/metrics"
    trusting = ssl.create_default_context(cafile=str(ca))

    def get(password: str | None, context: Any = trusting) -> int:
        request = urllib.request.Request(url)
        if password is not None:
            token = base64.b64encode(f"prometheus:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as r:
                assert b"dsaccess_up" in r.read()
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    try:
        assert get("s3cret") == 200 and get("s3cret") == 200  # (the second from the cache)
        assert get("wrong") == 401 and get(None) == 401
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get("s3cret", ssl.create_default_context())  # a client that does not trust it
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP: no answer
            urllib.request.urlopen(url.replace("https", "http"), timeout=5)
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("doc,message", [
    ({"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"}},
     "cert_file not found"),
    ({"tls_server_config": {"cert_file": "a.crt"}}, "key_file is needed"),
    ({"basic_auth_users": {"prometheus": "plain"}}, "prometheus: not a bcrypt hash"),
    ({"tls": {}}, "unknown key tls"),
])
def test_a_web_config_is_checked_before_listening(tmp_path: Path, doc: dict,
                                                  message: str) -> None:
    from pipeline.live.webconfig import load_web_config
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=message):
        load_web_config(path)


def test_listening_beyond_loopback_without_a_web_config_is_warned(tmp_path: Path) -> None:
    import socket
    servers = tmp_path / "servers.yaml"
    servers.write_text(yaml.safe_dump({"servers": [{"name": "a", "ldap": {
        "url": "ldap://127.0.0.1:1", "timeout": 0.2}}]}))
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "exporter", "-c", str(servers),
                             "--listen", f"0.0.0.0:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        assert first.startswith(f"dsaccess: warning: listening on 0.0.0.0:{port} without "
                                "--web-config")
        assert proc.stderr.readline().startswith("dsaccess exporter: 1 servers, http://")
    finally:
        proc.kill()
        proc.wait()
