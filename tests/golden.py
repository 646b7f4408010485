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


def servers(tmp: Path) -> Iterator[tuple[str, pl.DataFrame]]:
    """(server, every event of its files in rotation order) of the same corpus."""
    from pipeline.logline import parse_lines

    files: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in corpus(tmp):
        server, file = name.rsplit("/", 1)
        files.setdefault(server, []).append((file, data))
    for server, found in sorted(files.items()):
        # rotated files by the stamp in their name, the live "access" last
        found.sort(key=lambda f: (f[0].removesuffix(".gz") == "access", f[0]))
        yield server, pl.concat([
            parse_lines(data, server=server.rsplit("/", 1)[-1], file=file, file_seq=seq).events
            for seq, (file, data) in enumerate(found)])
