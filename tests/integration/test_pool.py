"""A real 389 DS with two worker threads, held busy by clients that pipeline unindexed
searches: the run over its access log shows operations waiting for a worker and more of
them in flight than there are workers in those seconds, and the exporter scraped meanwhile
shows the backlog (or its scrape timing out)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from .test_exporter import _scrape, _value, start_exporter
from .test_fleet import HERE, Instance, Processes, _dsaccess, _sys_py, pytestmark  # noqa: F401

ldap = pytest.importorskip("ldap")

PEOPLE = "ou=people,dc=example,dc=com"
WORKERS = 2


@pytest.fixture()
def server(tmp_path: Path):
    inst = Instance("dspool", "UTC", tmp_path)
    procs = Processes()
    try:
        inst.remove()
        inst.create()
        _sys_py(HERE / "workload.py", "setup", "--ldapi", inst.ldapi)
        inst.configure("nsslapd-threadnumber", str(WORKERS))
        inst.stop()
        inst.start()  # (the pool is sized at start)
        yield tmp_path, inst, procs
    finally:
        procs.stop_all()
        inst.remove()


def _burst(port: int, connections: int, outstanding: int, stop: threading.Event) -> None:
    """Connections that each send ``outstanding`` unindexed searches before reading any
    answer, again and again until ``stop``: far more requests than workers."""
    def client() -> None:
        conn = ldap.initialize(f"ldap://127.0.0.1:{port}")
        conn.protocol_version = 3
        conn.simple_bind_s("", "")
        while not stop.is_set():
            ids = [conn.search_ext(PEOPLE, ldap.SCOPE_SUBTREE, f"(description=*am-{i % 5}*)",
                                   ["cn", "description"]) for i in range(outstanding)]
            for msgid in ids:
                conn.result3(msgid)
        conn.unbind_s()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_a_saturated_pool_shows_in_the_logs_and_live(server) -> None:
    root, inst, procs = server
    (root / "pw").write_text(inst.password)
    (root / "pw").chmod(0o600)
    config = root / "servers.yaml"
    config.write_text(yaml.safe_dump({"servers": [{"name": inst.name, "ldap": {
        "url": f"ldap://127.0.0.1:{inst.port}", "bind_dn": "cn=Directory Manager",
        "password_file": str(root / "pw"), "timeout": 2}}]}))
    port = start_exporter(procs, config)
    quiet = _scrape(port)
    assert _value(quiet, "dsaccess_ds_threads", server=inst.name) is not None

    stop = threading.Event()
    load = threading.Thread(target=_burst, args=(inst.port, 8, 40, stop))
    busy_from = datetime.now(UTC)
    load.start()
    seen = []
    try:
        time.sleep(1)
        for _ in range(8):
            text = _scrape(port)
            seen.append({k: _value(text, f"dsaccess_{k}", server=inst.name) for k in
                         ("ds_backlog_operations", "ds_read_waiters", "scrape_timeouts_total")})
            time.sleep(0.5)
    finally:
        stop.set()
        load.join(timeout=120)
    busy_until = datetime.now(UTC)
    # live: work waiting (initiated but not completed, or readers waiting), or the
    # monitor's own search waiting so long that the scrape timed out
    assert any((s["ds_backlog_operations"] or 0) > 0 or (s["ds_read_waiters"] or 0) > 0
               or (s["scrape_timeouts_total"] or 0) > 0 for s in seen), seen

    inst.stop()  # the log is complete
    out = root / "out"
    _dsaccess("run", str(inst.logdir), "-o", str(out), "--quiet")
    pool = pl.read_parquet(out / "saturation.parquet").filter(pl.col("server").is_not_null())
    during = pool.filter((pl.col("start") >= busy_from.replace(microsecond=0))
                         & (pl.col("start") < busy_until))
    assert during.height >= 3
    assert during["in_flight_max"].max() > WORKERS
    assert during["wtime_max"].max() >= 0.01
    summary = json.loads((out / "summary.json").read_text())
    s = summary["servers"][next(iter(summary["servers"]))]["saturation"]
    assert s["waited_10ms"] > 0 and s["peak_in_flight"] > WORKERS
