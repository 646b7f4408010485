"""``dsaccess exporter``: Prometheus metrics from each server's cn=monitor, live.

Each scrape of ``/metrics`` reads every configured server at once (one thread each,
each with its own timeout), so a slow or dead server costs its timeout and never
blocks the others: it reports ``dsaccess_up 0`` and its error shows on ``/``.
Connections are classified into the same CEL workload classes as ``dsaccess run``
(``monitor``). The LDAP client is python-ldap (OpenLDAP's libldap: LDAPI with SASL
EXTERNAL, StartTLS/LDAPS with a CA file, network and operation timeouts).
"""

from __future__ import annotations

import html
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..config import LdapConfig, ServerConfig
from ..workload import Rules
from .monitor import (
    AGE_BUCKETS,
    BACKEND_COUNTERS,
    BACKEND_GAUGES,
    OPS_BUCKETS,
    SERVER_COUNTERS,
    SERVER_GAUGES,
    ServerReading,
    by_workload,
    read_monitor,
)
from .webconfig import WebConfig

log = logging.getLogger(__name__)

PREFIX = "dsaccess_ds"


def read_server(server: ServerConfig, rules: Rules) -> ServerReading:
    """One server's cn=monitor, snmp and backend monitor entries (never raises)."""
    import ldap

    started = time.monotonic()
    cfg: LdapConfig = server.ldap  # type: ignore[assignment]
    try:
        conn = ldap.initialize(cfg.url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, cfg.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, cfg.timeout)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        if cfg.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, cfg.ca_file)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if cfg.sasl_mech == "EXTERNAL":
                conn.sasl_external_bind_s()
            elif cfg.bind_dn:
                with open(cfg.password_file or "", encoding="utf-8") as fh:
                    conn.simple_bind_s(cfg.bind_dn, fh.read().strip())
            monitor = _entry(conn, "cn=monitor")
            snmp = _entry(conn, "cn=snmp,cn=monitor")
            backends = {}
            for dn in monitor.get("backendmonitordn", []):
                text = dn.decode()
                name = text.split(",")[1].split("=", 1)[1] if text.count(",") > 1 else text
                backends[name] = _entry(conn, text)
        finally:
            conn.unbind_s()
    except (ldap.LDAPError, OSError) as e:
        late = isinstance(e, ldap.TIMEOUT)
        error = (f"timed out after {cfg.timeout:g} s: connected, no answer (a saturated "
                 "worker pool delays the monitor search too)") if late else _ldap_error(e)
        return ServerReading(server.name, ok=False, seconds=time.monotonic() - started,
                             error=error, at=time.time(), timed_out=late)
    return read_monitor(server.name, monitor, snmp, backends, time.time(), rules,
                        time.monotonic() - started)


def _entry(conn: Any, dn: str) -> dict[str, list[bytes]]:
    import ldap
    found = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["*", "+"])
    return found[0][1] if found else {}


def _ldap_error(e: BaseException) -> str:
    info = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
    text = info.get("desc") or str(e)
    if info.get("info"):
        text += f" ({info['info']})"
    return f"{type(e).__name__}: {text}"


class Exporter:
    """The servers, their rules, and the last reading of each (for ``/``)."""

    def __init__(self, servers: tuple[ServerConfig, ...], rules: Rules,
                 histocrutch: bool = False) -> None:
        self.servers = servers
        self.rules = rules
        self.histocrutch = histocrutch
        self.last: dict[str, ServerReading] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(servers)))
        self.parse_errors: dict[str, int] = {s.name: 0 for s in servers}
        self.timeouts: dict[str, int] = {s.name: 0 for s in servers}

    def scrape(self) -> list[ServerReading]:
        """Read every server concurrently: each costs at most its timeout (plus a second
        for the connection to give up)."""
        futures = [(s, self.pool.submit(read_server, s, self.rules)) for s in self.servers]
        readings = []
        for server, future in futures:
            limit = server.ldap.timeout * 3 + 1 if server.ldap else 10
            try:
                reading = future.result(timeout=limit)
            except Exception as e:  # a timeout, or a bug: the other servers still report
                reading = ServerReading(server.name, ok=False, seconds=limit,
                                        error=f"{type(e).__name__}: {e}", at=time.time(),
                                        timed_out=isinstance(e, TimeoutError))
            readings.append(reading)
        with self.lock:
            for r in readings:
                self.last[r.server] = r
                self.parse_errors[r.server] += r.parse_errors
                self.timeouts[r.server] += r.timed_out
        return readings

    def metrics(self) -> bytes:
        readings = self.scrape()
        with self.lock:
            timeouts = dict(self.timeouts)
        return render(readings, self.parse_errors, self.histocrutch, timeouts)


def render(readings: list[ServerReading], parse_errors: dict[str, int],
           histocrutch: bool = False, timeouts: dict[str, int] | None = None) -> bytes:
    """The exposition text of one scrape, through prometheus_client's own writer."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Scrape:
        def collect(self) -> Any:
            up = GaugeMetricFamily("dsaccess_up", "1 when the last query of the server "
                                   "worked, else 0.", labels=["server"])
            took = GaugeMetricFamily("dsaccess_scrape_duration_seconds",
                                     "Seconds the last query of the server took.",
                                     labels=["server"])
            errors = CounterMetricFamily("dsaccess_exporter_parse_errors",
                                         "cn=monitor connection values of a layout the "
                                         "exporter does not know.", labels=["server"])
            late = CounterMetricFamily("dsaccess_scrape_timeouts",
                                       "Reads of the server's cn=monitor that timed out (the "
                                       "monitor search waits for a worker thread too).",
                                       labels=["server"])
            for r in readings:
                up.add_metric([r.server], 1 if r.ok else 0)
                took.add_metric([r.server], r.seconds)
                errors.add_metric([r.server], parse_errors.get(r.server, 0))
                late.add_metric([r.server], (timeouts or {}).get(r.server, int(r.timed_out)))
            yield from (up, took, errors, late)
            ok = [r for r in readings if r.ok]
            backlog = GaugeMetricFamily(f"{PREFIX}_backlog_operations",
                                        "cn=monitor opsinitiated - opscompleted: operations "
                                        "not completed (persistent searches among them).",
                                        labels=["server"])
            for r in ok:
                if r.backlog is not None:
                    backlog.add_metric([r.server], r.backlog)
            yield backlog
            for attr, name in SERVER_GAUGES.items():
                g = GaugeMetricFamily(f"{PREFIX}_{name}", f"cn=monitor {attr}.",
                                      labels=["server"])
                for r in ok:
                    if attr in r.gauges:
                        g.add_metric([r.server], r.gauges[attr])
                yield g
            counters: dict[str, CounterMetricFamily] = {}
            for r in ok:
                for attr, value in sorted(r.counters.items()):
                    name = SERVER_COUNTERS.get(attr, attr)
                    if name not in counters:
                        what = (f"cn=snmp,cn=monitor {attr[5:]}" if attr.startswith("snmp_")
                                else f"cn=monitor {attr}")
                        counters[name] = CounterMetricFamily(f"{PREFIX}_{name}", f"{what}.",
                                                             labels=["server"])
                    counters[name].add_metric([r.server], value)
            yield from counters.values()
            for attr, name in {**BACKEND_COUNTERS, **BACKEND_GAUGES}.items():
                kind = CounterMetricFamily if attr in BACKEND_COUNTERS else GaugeMetricFamily
                fam = kind(f"{PREFIX}_backend_{name}", f"Backend monitor {attr}.",
                           labels=["server", "backend"])
                for r in ok:
                    for backend, values in sorted(r.backends.items()):
                        if attr in values:
                            fam.add_metric([r.server, backend], values[attr])
                yield fam
            yield from _workload_families(ok, histocrutch)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape())
    return generate_latest(registry)


def _workload_families(readings: list[ServerReading], histocrutch: bool) -> Any:
    from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

    conns = GaugeMetricFamily(f"{PREFIX}_connections", "Open connections, by workload class.",
                              labels=["server", "workload"])
    pending = GaugeMetricFamily(f"{PREFIX}_pending_operations",
                                "Operations initiated and not completed, by workload class.",
                                labels=["server", "workload"])
    age = HistogramMetricFamily(f"{PREFIX}_connection_age_seconds",
                                "Age of the open connections, by workload class.",
                                labels=["server", "workload"])
    ops = HistogramMetricFamily(f"{PREFIX}_connection_operations",
                                "Operations initiated per open connection, by workload class.",
                                labels=["server", "workload"])
    crutch: list[GaugeMetricFamily] = []
    for r in readings:
        if r.connections is None:
            continue
        for row in by_workload(r.connections).iter_rows(named=True):
            labels = [r.server, row["workload"]]
            conns.add_metric(labels, row["connections"])
            pending.add_metric(labels, row["ops_pending"])
            for fam, bounds, key, total in ((age, AGE_BUCKETS, "age", "age_sum"),
                                            (ops, OPS_BUCKETS, "ops", "ops_sum")):
                buckets = [(f"{le:g}", row[f"{key}_le_{le:g}"]) for le in bounds]
                buckets.append(("+Inf", row["connections"]))
                fam.add_metric(labels, buckets, row[total])
                if histocrutch:  # one gauge per bucket, for stores without histograms
                    for le, count in buckets:
                        suffix = "inf" if le == "+Inf" else le.replace(".", "_")
                        g = GaugeMetricFamily(f"{fam.name}_bucket_le_{suffix}",
                                              f"{fam.documentation} (<= {le})",
                                              labels=["server", "workload"])
                        g.add_metric(labels, count)
                        crutch.append(g)
    yield from (conns, pending, age, ops)
    merged: dict[str, GaugeMetricFamily] = {}
    for g in crutch:  # one family per bucket name, every labelset in it
        if g.name in merged:
            merged[g.name].samples += g.samples
        else:
            merged[g.name] = g
    yield from merged.values()


def front_page(exporter: Exporter) -> str:
    """``/``: each server's last scrape and its error, and the links."""
    rows = []
    with exporter.lock:
        last = dict(exporter.last)
    for s in exporter.servers:
        r = last.get(s.name)
        state = "not read yet" if r is None else ("up" if r.ok else "DOWN")
        when = "" if r is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(r.at))
        took = "" if r is None else f"{r.seconds * 1000:.0f} ms"
        error = "" if r is None or r.ok else r.error or ""
        cells = (s.name, s.ldap.url if s.ldap else "", state, when, took,
                 exporter.timeouts.get(s.name, 0), error)
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>dsaccess exporter</title>"
            "</head><body><h1>dsaccess exporter</h1><p><a href='/metrics'>/metrics</a></p>"
            "<table border='1'><tr><th>server</th><th>url</th><th>state</th>"
            "<th>last scrape</th><th>took</th><th>timeouts</th><th>error</th></tr>" +
            "".join(rows) +
            "</table></body></html>")


def serve(exporter: Exporter, host: str, port: int, web: WebConfig | None = None
          ) -> ThreadingHTTPServer:
    """An HTTP server for ``/metrics`` and ``/`` (the caller runs ``serve_forever``), over
    TLS and behind basic auth when ``web`` says so."""
    web = web or WebConfig()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            if not web.allows(self.headers.get("Authorization")):
                body = b"401 Unauthorized\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="dsaccess exporter"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body = exporter.metrics()
                kind = "text/plain; version=0.0.4; charset=utf-8"
            elif path == "/":
                body, kind = front_page(exporter).encode(), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # a client that speaks no TLS, or drops the connection: its problem, one debug
            # line, not a traceback on the exporter's stderr
            log.debug("request from %s failed", client_address, exc_info=True)

    httpd = Server((host, port), Handler)
    if web.tls is not None:  # the handshake happens in the request's thread, not accept's
        httpd.socket = web.tls.wrap_socket(httpd.socket, server_side=True,
                                           do_handshake_on_connect=False)
    return httpd
