"""Write run outputs: Parquet tables, JSON, and the atomic swap of OUT.

A run writes everything into a temporary folder beside OUT and renames it
into place at the end, so a failed run never leaves half an output over a
good one. OUT is only ever replaced when it is absent, an empty directory, or a
dsaccess output (``run.json`` names its format): never the inputs, never a folder
of other files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from .errors import ConfigError, OutputError

log = logging.getLogger(__name__)

FORMAT = "dsaccess-output/1"   # run.json's "format": what marks a folder as an output

PARQUET_COMPRESSION = "zstd"
# level 1: 20% faster than zstd's default for 10% more bytes on the operations table
PARQUET_LEVEL = 1


def is_output(folder: Path) -> bool:
    """Whether a folder is what run or merge writes (its run.json says so; outputs of
    versions before the marker have run.json with the histogram layout)."""
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and (str(info.get("format", "")).startswith("dsaccess-output")
                                       or ("version" in info and "histogram" in info))


def check_target(out: Path, inputs: list[Path]) -> None:
    """Refuse an OUT that a run must not replace, before any work.

    Raises:
        ConfigError: OUT is a file, a folder of other files, or equal to, inside or
            above an input.
    """
    target = out.expanduser().resolve()
    for given in inputs:
        source = given.expanduser().resolve()
        if target == source or source in target.parents or target in source.parents:
            where = ("is" if target == source else "is inside" if source in target.parents
                     else "holds")
            raise ConfigError(f"-o: {out} {where} the input {given}; choose an empty or new "
                              "directory outside the inputs")
    if not target.exists():
        return
    if not target.is_dir():
        raise ConfigError(f"-o: {out} is a file, not an output directory; choose an empty or "
                          "new directory")
    try:
        entries = sum(1 for _ in target.iterdir())
    except OSError as e:
        raise ConfigError(f"-o: cannot read {out}: {e.strerror}; choose an empty or new "
                          "directory") from None
    if entries and not is_output(target):
        raise ConfigError(f"-o: {out} is not empty and not a dsaccess output (no run.json; "
                          f"{entries} entries would be lost); choose an empty or new directory")


OWNER = ".owner"  # in a staging folder: "host pid" of the run writing it


def staging_dir(out: Path) -> Path:
    """A fresh temporary folder beside ``out`` (same filesystem, so rename is atomic),
    after removing the ones runs into the same ``out`` left when they were killed."""
    out = out.resolve()
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        tmp.mkdir()
        (tmp / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    except OSError as e:
        raise _unwritable(out.parent, e) from None
    return tmp


def remove_stale(out: Path) -> list[Path]:
    """Remove the staging (``.OUT.tmp-*``) and swap (``.OUT.old-*``) folders of runs into
    ``out`` that died (SIGKILL, power): their owner process is gone from this host. A
    folder of a run on another host, or of one still running, is left alone."""
    removed = []
    for folder in sorted(out.parent.glob(f".{glob_escape(out.name)}.old-*")) + sorted(
            out.parent.glob(f".{glob_escape(out.name)}.tmp-*")):
        if not folder.is_dir() or _owner_alive(folder):
            continue
        if ".old-" in folder.name and not out.exists():
            # killed in the middle of a swap: this is the previous output; put it back
            (folder / OWNER).unlink(missing_ok=True)
            os.rename(folder, out)
            log.warning("restored %s from %s, left by a run killed while publishing",
                        out, folder)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("removed %s, left by a run that was killed", folder)
        removed.append(folder)
    return removed


OWNERLESS_GRACE_SECONDS = 60  # a folder just made has its owner file a moment later


def _owner_alive(folder: Path) -> bool:
    try:
        host, pid = (folder / OWNER).read_text().split()
    except (OSError, ValueError):  # older versions wrote none: stale once it is not new
        return time.time() - folder.stat().st_mtime < OWNERLESS_GRACE_SECONDS
    if host != socket.gethostname():
        return True  # cannot tell: not ours to remove
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Writes under this name: a failure (full disk, read-only) names the path."""
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        raise _unwritable(path, e) from None
    except pl.exceptions.PolarsError as e:  # polars reports a full disk in its own type
        raise _unwritable(path, OSError(errno.EIO, str(e).splitlines()[0], str(path))) \
            from None


def write_bytes(data: bytes, path: Path) -> None:
    """One file, whole or not at all: written beside, then renamed."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.part")
        part.write_bytes(data)
        os.replace(part, path)


def _unwritable(path: Path, e: OSError) -> OutputError:
    fix = ("free space there, or choose another directory for -o" if e.errno == errno.ENOSPC
           else "choose a directory you can write for -o")
    return OutputError(f"cannot write the output: {e.strerror or e}: {e.filename or path}; {fix}")


def publish(tmp: Path, out: Path) -> None:
    """Replace ``out`` with ``tmp``: the old output stays until the new one is in place."""
    out = out.resolve()
    old = None
    (tmp / OWNER).unlink(missing_ok=True)  # not part of the output
    try:
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(out, old)
            (old / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        os.rename(tmp, out)
    except OSError as e:
        if old is not None and not out.exists():
            os.rename(old, out)  # the previous output back in its place
        raise _unwritable(out, e) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def discard(tmp: Path) -> None:
    """Remove a staging folder after a failed run."""
    shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Write one Parquet file (parents created)."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(path, compression=PARQUET_COMPRESSION,
                         compression_level=PARQUET_LEVEL, statistics=True)


def write_operations(ops: pl.DataFrame, root: Path, part: str) -> None:
    """Write a bucket's operations as ``root/server=NAME/part-PART.parquet`` (hive layout)."""
    for (server,), rows in ops.partition_by("server", as_dict=True).items():
        write_parquet(rows.drop("server"), root / f"server={_hive_value(server)}" /
                      f"part-{part}.parquet")


def concat_parquet(parts: list[Path], dest: Path, empty: pl.DataFrame,
                   transform: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:
    """Append Parquet pieces into one file, one row group per piece, a piece at a time (the
    memory of one piece, whatever their number); ``transform`` each piece on the way;
    ``empty``: the table when there are no pieces."""
    import pyarrow.parquet as pq

    if not parts:
        write_parquet(empty, dest)
        return
    with writing(dest):
        writer = None
        try:
            for part in parts:
                if transform is None:
                    table = pq.read_table(part)
                else:
                    table = transform(pl.read_parquet(part)).to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(dest, table.schema,
                                              compression=PARQUET_COMPRESSION,
                                              compression_level=PARQUET_LEVEL)
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()


def write_jsonl(ops: pl.DataFrame, path: Path) -> None:
    """Operations as JSON Lines: one joined operation per line, timestamps in ISO 8601."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        ops.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.9fZ")) \
            .write_ndjson(path)


def concat_files(parts: list[Path], dest: Path) -> None:
    """Concatenate text pieces into one file."""
    with writing(dest), open(dest, "wb") as out:
        for part in sorted(parts):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)


def write_json(doc: Any, path: Path) -> None:
    """Deterministic JSON: sorted as given, 2-space indent, trailing newline."""
    with writing(path):
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _hive_value(value: str) -> str:
    # Keep partition folder names safe: a server name is config, but never trust a path.
    return "".join(ch if ch.isalnum() or ch in "-_." else f"%{ord(ch):02X}" for ch in value)


def write_text(text: str, path: Path) -> None:
    with writing(path):
        path.write_text(text, encoding="utf-8")


def write_aggregates(out: Path, summary: dict[str, Any], tables: dict[str, pl.DataFrame],
                     info: dict[str, Any], histocrutch: bool = False) -> None:
    """What run and merge both write: summary.json, run.json, the aggregate tables,
    report.html and metrics.prom."""
    from .report import write_reports
    for name, table in tables.items():
        write_parquet(table, out / f"{name}.parquet")
    write_json(info, out / "run.json")
    write_json(summary, out / "summary.json")
    write_reports(out, summary, tables, info, histocrutch)
