"""Write run outputs: Parquet tables, JSON, and the atomic swap of OUT.

A run writes everything into a temporary folder beside OUT and renames it
into place at the end, so a failed run never leaves half an output over a
good one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl

log = logging.getLogger(__name__)

PARQUET_COMPRESSION = "zstd"
# level 1: 20% faster than zstd's default for 10% more bytes on the operations table
PARQUET_LEVEL = 1


def staging_dir(out: Path) -> Path:
    """A fresh temporary folder beside ``out`` (same filesystem, so rename is atomic)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    return tmp


def publish(tmp: Path, out: Path) -> None:
    """Replace ``out`` with ``tmp``: the old output stays until the new one is in place."""
    out = out.resolve()
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def discard(tmp: Path) -> None:
    """Remove a staging folder after a failed run."""
    shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Write one Parquet file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path, compression=PARQUET_COMPRESSION, compression_level=PARQUET_LEVEL,
                     statistics=True)


def write_operations(ops: pl.DataFrame, root: Path, part: str) -> None:
    """Write a bucket's operations as ``root/server=NAME/part-PART.parquet`` (hive layout)."""
    for (server,), rows in ops.partition_by("server", as_dict=True).items():
        write_parquet(rows.drop("server"), root / f"server={_hive_value(server)}" /
                      f"part-{part}.parquet")


def concat_parquet(parts: list[Path], dest: Path, empty: pl.DataFrame) -> None:
    """Append Parquet pieces into one file, one row group per piece (``empty``: no pieces)."""
    import pyarrow.parquet as pq

    if not parts:
        write_parquet(empty, dest)
        return
    writer = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(dest, table.schema, compression=PARQUET_COMPRESSION,
                                         compression_level=PARQUET_LEVEL)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()


def write_jsonl(ops: pl.DataFrame, path: Path) -> None:
    """Operations as JSON Lines: one joined operation per line, timestamps in ISO 8601."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ops.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.9fZ")).write_ndjson(path)


def concat_files(parts: list[Path], dest: Path) -> None:
    """Concatenate text pieces into one file."""
    with open(dest, "wb") as out:
        for part in sorted(parts):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)


def write_json(doc: Any, path: Path) -> None:
    """Deterministic JSON: sorted as given, 2-space indent, trailing newline."""
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _hive_value(value: str) -> str:
    # Keep partition folder names safe: a server name is config, but never trust a path.
    return "".join(ch if ch.isalnum() or ch in "-_." else f"%{ord(ch):02X}" for ch in value)
