"""Synthetic 389 DS access logs with known truth, for tests and the benchmark.

Each server gets interleaved connections (LDAP, LDAPS, LDAPI with AUTOBIND,
StartTLS), binds that succeed and fail, searches (indexed, unindexed, paged,
persistent), writes, compares, extended operations, abandons, internal
operations, restarts that reuse connection numbers, and rotation into
``access.YYYYMMDD-HHMMSS`` files (older ones gzipped when asked). Every
request the generator writes is recorded with the identity it was issued
under, so tests can check the join and bind tracking exactly.

    python -m tests.synth OUT_DIR --servers 3 --mb 100
"""

from __future__ import annotations

import argparse
import gzip
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
FILTERS = [
    ("(uid={u})", ""), ("(&(objectClass=inetOrgPerson)(|(cn={u})(uid={u})(mail={u})))", ""),
    ("(mail={u}@example.com)", ""), ("(cn={u}*)", "U"), ("(description=*{u}*)", "A"),
    ("(&(objectClass=groupOfNames)(|(member=uid={u},ou=people,dc=example,dc=com)"
     "(member=uid={v},ou=people,dc=example,dc=com)))", ""),
    ("(telephoneNumber=*)", "A"), ("(objectClass=*)", ""), ("(sn:caseExactMatch:={u})", "A"),
]
SERVICE_ACCOUNTS = ["uid=svc-app,dc=example,dc=com", "uid=svc-sync,dc=example,dc=com",
                    "uid=svc-mail,dc=example,dc=com"]


@dataclass
class Truth:
    """What was written: counts, and per request (server, file, line) → facts."""

    counts: Counter = field(default_factory=Counter)
    requests: dict[tuple[str, str, int], dict] = field(default_factory=dict)
    keep_requests: bool = True
    bytes: int = 0
    lines: int = 0


class _Writer:
    """One server's log files: rotation by size, header on every new file."""

    def __init__(self, root: Path, server: str, tz_minutes: int, rotate_bytes: int,
                 gzip_rotated: bool, start: datetime) -> None:
        self.dir = root / server
        self.dir.mkdir(parents=True, exist_ok=True)
        self.server, self.tz, self.rotate_bytes, self.gzip_rotated = (
            server, tz_minutes, rotate_bytes, gzip_rotated)
        self.now = start
        self.buf: list[str] = []
        self.size = 0
        self.line_no = 0
        self.file_started = start
        self.rotated: list[Path] = []
        self._header()

    def _header(self) -> None:
        self.buf += ["\t389-Directory/2.3.1 B2025.016.1616\n",
                     f"\t{self.server}.example.com:636 (/etc/dirsrv/slapd-{self.server})\n", "\n"]
        self.size += sum(len(x) for x in self.buf[-3:])
        self.line_no += 3

    def stamp(self) -> str:
        local = self.now + timedelta(minutes=self.tz)
        sign = "+" if self.tz >= 0 else "-"
        off = abs(self.tz)
        return (f"[{local.day:02d}/{MONTHS[local.month - 1]}/{local.year}:{local.hour:02d}:"
                f"{local.minute:02d}:{local.second:02d}.{local.microsecond * 1000 + 123:09d} "
                f"{sign}{off // 60:02d}{off % 60:02d}]")

    def write(self, body: str) -> int:
        self.now += timedelta(microseconds=37)
        line = f"{self.stamp()} {body}\n"
        self.buf.append(line)
        self.size += len(line)
        self.line_no += 1
        if len(self.buf) > 5000:
            self.flush()
        return self.line_no

    @property
    def name(self) -> str:
        return "access"

    def flush(self) -> None:
        with open(self.dir / "access", "a", encoding="utf-8") as fh:
            fh.writelines(self.buf)
        self.buf.clear()

    def maybe_rotate(self) -> str | None:
        """Rotate when the live file is big enough; returns the rotated file's name."""
        if self.size < self.rotate_bytes:
            return None
        self.flush()
        local = self.file_started + timedelta(minutes=self.tz)
        name = f"access.{local:%Y%m%d-%H%M%S}"
        while any((self.dir / n).exists() for n in (name, name + ".gz")):
            local += timedelta(seconds=1)  # names have whole seconds: the server never
            name = f"access.{local:%Y%m%d-%H%M%S}"  # rotates twice in one, but we might
        live = self.dir / "access"
        if self.gzip_rotated:
            (self.dir / f"{name}.gz").write_bytes(gzip.compress(live.read_bytes(), 1))
            live.unlink()
            name += ".gz"
        else:
            live.rename(self.dir / name)
        self.file_started = self.now
        self.size = 0
        self.line_no = 0
        self._header()
        return name


def generate(root: Path, servers: int = 2, mb_per_server: float = 2.0, seed: int = 7,
             rotate_mb: float = 1.0, gzip_rotated: bool = False, restarts: int = 1,
             keep_requests: bool = True, concurrency: int = 24, identities: int = 300,
             pooled: float = 0.0) -> Truth:
    """Write logs under ``root/<server>/`` and return what was written.

    ``identities``: the people who bind (``uid=userNNNN``), besides the service accounts.
    ``pooled``: the share of connections that are an application's pool: they bind once
    as a service account, then stay open for hundreds of operations."""
    truth = Truth(keep_requests=keep_requests)
    start = datetime(2026, 11, 26, 16, 0, 0)  # naive UTC; each server adds its offset
    for s in range(servers):
        rng = random.Random(seed * 1000 + s)
        server = f"ldap{s + 1}"
        w = _Writer(root, server, [0, -300, 330, 60][s % 4], int(rotate_mb * 2**20),
                    gzip_rotated, start)
        _server(rng, w, truth, int(mb_per_server * 2**20), restarts, concurrency,
                Shape(identities, pooled))
        w.flush()
        for p in w.dir.iterdir():
            truth.bytes += p.stat().st_size if not p.name.endswith(".gz") else 0
    return truth


@dataclass(frozen=True)
class Shape:
    identities: int = 300
    pooled: float = 0.0


def _server(rng: random.Random, w: _Writer, truth: Truth, target: int, restarts: int,
            concurrency: int, shape: Shape) -> None:
    written = 0
    restart_at = {int(target * (k + 1) / (restarts + 1)) for k in range(restarts)}
    next_conn = 1
    open_conns: list[_Conn] = []
    files: dict[str, str] = {}  # placeholder "access" lines are renamed on rotation
    pending_lines: list[tuple[str, int, dict]] = []

    def record(line: int, facts: dict) -> None:
        if truth.keep_requests:
            pending_lines.append(("access", line, facts))

    while written < target or open_conns:
        if written < target and (len(open_conns) < concurrency or rng.random() < 0.05):
            c = _Conn(next_conn, rng, shape)
            next_conn += 1
            c.open(w, truth)
            open_conns.append(c)
        c = rng.choice(open_conns)
        before = w.size
        done = c.step(w, truth, record, final=written >= target)
        written += max(0, w.size - before)
        if done:
            open_conns.remove(c)
        if restart_at and written >= min(restart_at):
            restart_at.discard(min(restart_at))
            for c in open_conns:  # a restart cuts every connection: no close lines
                c.cut(truth)
            open_conns.clear()
            next_conn = 1
            truth.counts["restarts"] += 1
            w.now += timedelta(seconds=20)
        rotated = w.maybe_rotate()
        if rotated:
            for i, (fname, line, facts) in enumerate(pending_lines):
                if fname == "access":
                    pending_lines[i] = (rotated, line, facts)
            _commit(truth, w.server, pending_lines)
            pending_lines = []
    _commit(truth, w.server, pending_lines)
    truth.counts["restarts"] += 1  # the server start at the top of the first file
    del files


def _commit(truth: Truth, server: str, pending: list[tuple[str, int, dict]]) -> None:
    for fname, line, facts in pending:
        truth.requests[(server, fname, line)] = facts


class _Conn:
    def __init__(self, number: int, rng: random.Random, shape: Shape) -> None:
        self.n = number
        self.rng = rng
        self.shape = shape
        self.op = 0
        self.identity = ""
        self.kind = rng.choices(["ldap", "ldaps", "ldapi", "starttls"], [70, 12, 8, 10])[0]
        self.steps = rng.randint(2, 12)
        # (no draw without pools: the default corpus stays what it was, byte for byte)
        self.pooled = bool(shape.pooled) and self.kind != "ldapi" and rng.random() < shape.pooled
        if self.pooled:
            self.steps = rng.randint(300, 3000)
        self.outstanding: list[tuple[int, str, str, int]] = []   # op, verb, result body
        self.fd = 64 + number % 900

    def open(self, w: _Writer, truth: Truth) -> None:
        ip = f"10.0.{self.n % 31}.{self.n % 7 + 1}"  # a few hundred clients (app servers)
        if self.kind == "ldapi":
            w.write(f"conn={self.n} fd={self.fd} slot={self.fd} connection from local to "
                    f"/run/slapd-{w.server}.socket")
            w.write(f'conn={self.n} AUTOBIND dn="cn=Directory Manager"')
            self.identity = "cn=Directory Manager"
        else:
            ssl = "SSL " if self.kind == "ldaps" else ""
            w.write(f"conn={self.n} fd={self.fd} slot={self.fd} {ssl}connection from {ip} "
                    f"to 10.0.0.1")
            if ssl:
                w.write(f"conn={self.n} TLS1.3 128-bit AES-GCM")
        truth.counts["connections"] += 1

    def cut(self, truth: Truth) -> None:
        truth.counts["unmatched_requests"] += len(self.outstanding)
        if any(verb == "BIND" for _, verb, _, _ in self.outstanding):
            facts, before = self._bind_facts  # no RESULT: the identity never changed
            facts["bind_dn"] = before

    def step(self, w: _Writer, truth: Truth, record, final: bool) -> bool:
        rng = self.rng
        binding = any(v == "BIND" for _, v, _, _ in self.outstanding)
        # a client sends nothing while its BIND is in progress (RFC 4511 4.2.1)
        if self.outstanding and (binding or rng.random() < 0.6 or self.steps <= 0 or final):
            op, verb, body, _ = self.outstanding.pop(rng.randrange(len(self.outstanding)))
            w.write(f"conn={self.n} op={op} {body}")
            truth.counts["results"] += 1
            notes = body.split(" notes=")[1].split(" ")[0] if " notes=" in body else ""
            truth.counts["unindexed"] += "A" in notes
            truth.counts["partially_unindexed"] += "U" in notes
            truth.counts["paged"] += "P" in notes
            if verb == "BIND":
                ok = " err=0 " in body
                self.identity = self._pending_identity if ok else ""
                truth.counts["failed_binds"] += 0 if ok else 1
            return False
        if self.steps <= 0 or final:
            w.write(f"conn={self.n} op={self.op} UNBIND")
            w.write(f"conn={self.n} op={self.op} fd={self.fd} Disconnect - Cleanly Closed "
                    "Connection - U1")
            truth.counts["UNBIND"] += 1
            return True
        self.steps -= 1
        self._request(w, truth, record)
        return False

    def _request(self, w: _Writer, truth: Truth, record) -> None:
        rng = self.rng
        op = self.op
        self.op += 1
        pick = rng.random()
        if self.pooled:  # the pool binds first (again if that failed), then works
            pick = 0.0 if not self.identity else 0.22 + 0.78 * pick
        etime = f"{rng.expovariate(200):.9f}"
        timing = f"wtime=0.000{rng.randint(10000, 99999)} optime={etime} etime={etime}"
        if self.op == 1 and self.kind == "starttls":
            verb = "EXT"
            line = w.write(f'conn={self.n} op={op} EXT oid="1.3.6.1.4.1.1466.20037" '
                           'name="start_tls_plugin"')
            w.write(f"conn={self.n} op={op} RESULT err=0 tag=120 nentries=0 {timing}")
            w.write(f"conn={self.n} TLS1.3 128-bit AES-GCM")
            truth.counts["results"] += 1
        elif pick < 0.22 and not any(v == "BIND" for _, v, _, _ in self.outstanding):
            verb = "BIND"
            if self.pooled or rng.random() < 0.5:
                dn = rng.choice(SERVICE_ACCOUNTS)
            else:
                dn = (f"uid=user{rng.randint(1, self.shape.identities):04d},ou=people,"
                      "dc=example,dc=com")
            ok = rng.random() > 0.15
            line = w.write(f'conn={self.n} op={op} BIND dn="{dn}" method=128 version=3')
            self._pending_identity = dn.lower()
            err = 0 if ok else 49
            tail = f' dn="{dn.lower()}"' if ok else ""
            self.outstanding.append((op, "BIND", f"RESULT err={err} tag=97 nentries=0 "
                                     f"{timing}{tail}", line))
            # the op is issued under the old identity but carries the one it establishes
            facts = {"verb": verb, "bind_dn": dn.lower() if ok else "", "conn": self.n, "op": op,
                     "tried": dn.lower()}
            self._bind_facts = (facts, self.identity)
            record(line, facts)
            truth.counts[verb] += 1
            return
        elif pick < 0.75:
            verb = "SRCH"
            tmpl, note = rng.choice(FILTERS)
            u = f"user{rng.randint(1, 3000):04d}"
            filt = tmpl.format(u=u, v=f"user{rng.randint(1, 3000):04d}")
            paged = rng.random() < 0.08
            notes = ",".join(x for x in (note, "P" if paged else "") if x)
            persistent = rng.random() < 0.002
            opts = " options=persistent" if persistent else ""
            line = w.write(f'conn={self.n} op={op} SRCH base="ou=people,dc=example,dc=com" '
                           f'scope=2 filter="{filt}" attrs="cn mail"{opts}')
            if rng.random() < 0.03:  # an internal operation under this request
                w.write(f'conn={self.n} (Internal) op={op}(1)(1) SRCH base="cn=config" '
                        'scope=0 filter="(objectclass=*)" attrs=ALL')
                w.write(f"conn={self.n} (Internal) op={op}(1)(1) RESULT err=0 tag=48 "
                        f"nentries=1 {timing}")
                truth.counts["internal_operations"] += 1
                truth.counts["results"] += 1
            n = rng.randint(0, 50)
            details = {"A": "Fully Unindexed Filter", "U": "Partially Unindexed Filter",
                       "P": "Paged Search"}
            body = f"RESULT err=0 tag=101 nentries={n} {timing}"
            if notes:
                body += (f" notes={notes} details=\"" +
                         ",".join(details[x] for x in notes.split(",")) + '"')
            if paged:
                body += " pr_idx=0 pr_cookie=-1"
            if persistent:
                truth.counts["unmatched_requests"] += 1
            else:
                self.outstanding.append((op, verb, body, line))
        else:
            verb, line = self._write_op(w, op, timing)
        record(line, {"verb": verb, "bind_dn": self.identity, "conn": self.n, "op": op})
        truth.counts[verb] += 1

    def _write_op(self, w: _Writer, op: int, timing: str) -> tuple[str, int]:
        rng = self.rng
        dn = f"uid=tmp{rng.randint(1, 99999):05d},ou=people,dc=example,dc=com"
        verb, body, tag = rng.choice([
            ("MOD", f'MOD dn="{dn}"', 103), ("ADD", f'ADD dn="{dn}"', 105),
            ("DEL", f'DEL dn="{dn}"', 107),
            ("MODRDN", f'MODRDN dn="{dn}" newrdn="uid=x{op}" newsuperior="(null)"', 109),
            ("CMP", f'CMP dn="{dn}" attr="title"', 111),
            ("EXT", 'EXT oid="1.3.6.1.4.1.4203.1.11.3" name="whoami-plugin"', 120),
            ("ABANDON", f"ABANDON targetop=NOTFOUND msgid={op}", None),
        ])
        line = w.write(f"conn={self.n} op={op} {body}")
        if tag is not None:
            err = rng.choice([0, 0, 0, 0, 32, 50, 68]) if verb != "CMP" else rng.choice([5, 6])
            self.outstanding.append((op, verb, f"RESULT err={err} tag={tag} nentries=0 {timing}",
                                     line))
        return verb, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--mb", type=float, default=2.0, help="MB of log per server")
    parser.add_argument("--rotate-mb", type=float, default=64)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    truth = generate(args.out, args.servers, args.mb, rotate_mb=args.rotate_mb,
                     gzip_rotated=args.gzip, keep_requests=False)
    print(dict(truth.counts))


if __name__ == "__main__":
    main()
