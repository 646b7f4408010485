"""Golden tables: compact, stable digests of what the parser and the join produce on the
bundled real sample and a seeded generator corpus.

The digests were written from the polars implementation before the compiled core
replaced it (the differential check), and are now the spec the core is held to.
A digest is the sha256 of the rows' ``repr`` in a total order: Python's repr of ints,
strings and floats is exact and stable across versions.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from pipeline.engine.enrich import Joined

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"


def digest(df: pl.DataFrame, order: list[str]) -> str:
    """sha256 of the rows in ``order`` (with every column as a tie-break)."""
    rows = df.sort([*order, *(c for c in df.columns if c not in order)], nulls_last=True,
                   maintain_order=True)
    h = hashlib.sha256(json.dumps(rows.columns).encode())
    for row in rows.iter_rows():
        h.update(repr(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def corpus(tmp: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file of the real sample and of a seeded generator corpus."""
    from .synth import generate

    for path in sorted((FIXTURES / "real389").glob("real389*/access*")):
        data = path.read_bytes()
        yield f"{path.parent.name}/{path.name}", gzip.decompress(data) if path.suffix == ".gz" \
            else data
    generate(tmp, servers=2, mb_per_server=2.0, seed=11)
    for path in sorted(tmp.rglob("access*")):
        data = path.read_bytes()
        yield f"synth/{path.parent.name}/{path.name}", gzip.decompress(data) \
            if path.suffix == ".gz" else data


def servers(tmp: Path) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """(server, its files as (name, bytes) in rotation order) of the same corpus."""
    files: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in corpus(tmp):
        server, file = name.rsplit("/", 1)
        files.setdefault(server, []).append((file, data))
    for server, found in sorted(files.items()):
        # rotated files by the stamp in their name, the live "access" last
        found.sort(key=lambda f: (f[0].removesuffix(".gz") == "access", f[0]))
        yield server, found


def join_files(server: str, files: list[tuple[str, bytes]]) -> Joined:
    """One server's files (text or JSON logs) through the production path of a run without
    Dask: each file a
    parse task's chunk (tokenized, written to the shuffle's files as one bucket), then the
    bucket's task (``enrich.join_pieces``: decoded, joined, aggregated in the core)."""
    import tempfile

    from pipeline.engine import shuffle
    from pipeline.engine.enrich import join_pieces
    from pipeline.engine.logline import tokenize, tokenize_json
    from pipeline.engine.partition import SUBS
    from pipeline.engine.schema import EVENT_CLASSES
    from pipeline.sources.jsonlog import is_json_log

    with tempfile.TemporaryDirectory() as scratch:
        offsets = {}
        for seq, (name, data) in enumerate(files):
            tokens = tokenize_json(data) if is_json_log(data[:4096]) else tokenize(data)
            shuffle.write_buckets(scratch, seq, tokens.classes, server=server,
                                  file=name, file_seq=seq, buckets=1)
            offsets[seq] = 0
        sources = ((0, len(files), 0),)
        return join_pieces({cls: shuffle.read_pieces(shuffle.pieces(scratch, cls, sources),
                                                     range(SUBS), offsets)
                            for cls in EVENT_CLASSES})


# The tables and files of a run's OUT held by golden digests: each aggregate table by its
# keys, the connections, and summary.json (its warnings aside: they name paths).
OUTPUT_TABLES = {
    "fingerprints": ["fingerprint"],
    "workloads": ["server", "workload", "bind_dn", "verb"],
    "timeseries": ["server", "minute", "verb"],
    "load": ["server", "start"],
    "binds": ["server", "dn", "err"],
    "clients": ["server", "client_ip", "transport", "close_code"],
    "restarts": ["server", "ts"],
    "connections": ["server", "session", "conn"],
    "slowest": ["server", "ts", "conn", "op", "line"],
    "saturation": ["server", "start"],
    "pool_held": ["server", "by", "who"],
    "indexes": ["server", "attribute", "index"],
}


def output_digests(out: Path) -> dict[str, object]:
    """Digests of every aggregate table of a run's OUT, with its row count, and the
    summary (without its warnings)."""
    found: dict[str, object] = {}
    for name, order in OUTPUT_TABLES.items():
        df = pl.read_parquet(out / f"{name}.parquet")
        found[name] = [df.height, digest(df, order)]
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("warnings", None)
    found["summary"] = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()
    return found


def output_corpora(tmp: Path) -> dict[str, Path]:
    """The inputs of the output digests: the bundled sample, and a generated fleet of two
    servers with rotations, restarts and zones (seeded)."""
    from .synth import generate

    generate(tmp / "synth", servers=2, mb_per_server=2.0, seed=11, rotate_mb=0.6, restarts=2)
    return {"sample": FIXTURES / "real389", "synth": tmp / "synth"}


# Workload rules whose classes are held by golden digests (cel.json), written by
# cel-python 0.5 (commit 1d17f2b), the engine the compiled core's replaced: the typed
# subset, and rules beyond it (int against double, functions, a look-around regex).
CEL_RULES = (
    'bind_dn.startsWith("uid=svc-")', 'bind_dn.endsWith(",dc=com")', 'bind_dn.contains("ou=")',
    'bind_dn.matches("(?i)^cn=directory manager$")', 'verb == "SRCH" && unindexed',
    "etime > 0.05", "etime <= 0.05 || paged", "!(err == 0)", "err != -1 && nentries >= 2",
    'verb in ["BIND", "UNBIND"]', "scope == 2", "tls", "conn_duration > 1.5", "true", "false",
    'client_ip == "" || server == "ds1"', "etime > 1", "size(bind_dn) > 3",
    "etime + 1.0 > 2.0", 'bind_dn.matches("^(?!uid=svc-)")', 'bind_dn == "(unknown)"',
    'base.endsWith("dc=com") && scope != 0', 'fingerprint.contains("objectClass")',
    'attrs == "" || attrs.contains("cn")', "int(nentries) * 2 > 3 || etime >= 2.5",
    "err in [32, 49] && !paged", 'bind_dn.lowerAscii() == "x" || true',
)


def cel_operations() -> pl.DataFrame:
    """Operations with every variable of the batch rules, nulls among them (seeded)."""
    import random
    rng = random.Random(5)
    n = 3000
    pick = rng.choice
    return pl.DataFrame({
        "server": [pick(["ds1", "ds2"]) for _ in range(n)],
        "bind_dn": [pick(["uid=svc-a,dc=com", "cn=Directory Manager", "", None,
                          "uid=u,ou=people,dc=com"]) for _ in range(n)],
        "client_ip": [pick([None, "", "10.0.0.1"]) for _ in range(n)],
        "verb": [pick(["SRCH", "BIND", "UNBIND", None]) for _ in range(n)],
        "base": [pick([None, "", "dc=com", "ou=people,dc=com"]) for _ in range(n)],
        "scope": [pick([None, 0, 1, 2]) for _ in range(n)],
        "fingerprint": [pick([None, "(objectClass=*)", "(uid=...)"]) for _ in range(n)],
        "attrs": [pick([None, "", "cn sn", "ALL"]) for _ in range(n)],
        "err": [pick([None, 0, 32, 49]) for _ in range(n)],
        "etime": [pick([None, rng.random() / 10, rng.random() * 3, 1.0, 0.05])
                  for _ in range(n)],
        "nentries": [pick([None, 0, 1, 5]) for _ in range(n)],
        "unindexed": [pick([None, True, False]) for _ in range(n)],
        "paged": [pick([None, True, False]) for _ in range(n)],
        "tls": [pick([None, "TLS1.3"]) for _ in range(n)],
        "conn_duration": [pick([None, rng.random() * 3]) for _ in range(n)],
    })


def class_digest(workload: list[str | None], failed: int) -> list[object]:
    """How many rows a rule matched, the sha256 of the classes in row order, and how many
    rows it failed on (a runtime error: no match, counted)."""
    return [sum(w == "hit" for w in workload),
            hashlib.sha256(repr(workload).encode()).hexdigest(), failed]


def operation_digests(tmp: Path) -> dict[str, dict[str, object]]:
    """Per server of the corpus: the operations' and connections' rows and digests."""
    found: dict[str, dict[str, object]] = {}
    for server, files in servers(tmp):
        e = join_files(server.rsplit("/", 1)[-1], files)
        found[server] = {
            "rows": [e.operations.height, e.connections.height],
            "operations": digest(e.operations, ["server", "file", "line", "result_file",
                                                "result_line"]),
            "connections": digest(e.connections, ["server", "conn", "first_seen"])}
    return found


if __name__ == "__main__":  # rewrite digests, for a defect fixed on purpose (named in a test)
    import sys
    import tempfile

    from pipeline.engine.plan import RunOptions
    from pipeline.engine.run import run

    if sys.argv[1:] == ["events"]:
        from tests.events import parse_lines
        with tempfile.TemporaryDirectory() as tmp:
            table = {}
            for name, data in corpus(Path(tmp)):
                r = parse_lines(data, server="s", file="f")
                table[name] = {"counts": r.counts, "events": digest(r.events, ["line"]),
                               "rejects": digest(r.rejects, ["line"])}
        (GOLDEN / "events.json").write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        raise SystemExit(0)
    if sys.argv[1:] == ["operations"]:
        with tempfile.TemporaryDirectory() as tmp:
            table = operation_digests(Path(tmp))
        (GOLDEN / "operations.json").write_text(json.dumps(table, indent=1, sort_keys=True)
                                                + "\n")
        raise SystemExit(0)
    if sys.argv[1:] != ["outputs"]:
        raise SystemExit("usage: python -m tests.golden outputs|operations|events")
    with tempfile.TemporaryDirectory() as tmp:
        written = {}
        for name, logs in output_corpora(Path(tmp)).items():
            out = Path(tmp) / f"out-{name}"
            run(RunOptions(inputs=(str(logs),), out=out, scheduler="synchronous"))
            written[name] = output_digests(out)
    (GOLDEN / "outputs.json").write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
