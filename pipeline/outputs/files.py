"""Write run outputs: Parquet tables, JSON, and the atomic swap of OUT.

A run writes everything into a temporary folder beside OUT and renames it
into place at the end, so a failed run never leaves half an output over a
good one. OUT is only ever replaced when it is absent, an empty directory, or a
dsaccess output (``run.json`` names its format): never the inputs, never a folder
of other files. OUT, the staging folder and the scratch are ``store.Place``s: local
paths or fsspec URLs, written the same way (functions also take a local ``Path``).
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
from typing import IO, Any

import paramiko
import polars as pl

from ..errors import ConfigError, OutputError, SourceError
from ..sources.store import Place, place
from ..tables.aggregate import server_runs

Where = Place | Path

log = logging.getLogger(__name__)

FORMAT = "dsaccess-output/1"   # run.json's "format": what marks a folder as an output

PARQUET_COMPRESSION = "zstd"
# level -1 (zstd's first fast level): on a bucket's operations 9% less time to write than
# level 1 for 2% more bytes, and level 1 was 20% faster than the default for 10% more;
# snappy would save another 15% for 25% more bytes, too many for tables kept week after week
PARQUET_LEVEL = -1


def is_output(folder: Where) -> bool:
    """Whether a folder is what run, merge or compare writes (its run.json or compare.json
    says so; outputs of versions before the marker have run.json with the histogram
    layout)."""
    try:
        info = json.loads((place(folder) / "run.json").read_text())
    except (OSError, ValueError):
        try:
            info = json.loads((place(folder) / "compare.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and str(info.get("format", "")).startswith(
            "dsaccess-compare")
    return isinstance(info, dict) and (str(info.get("format", "")).startswith("dsaccess-output")
                                       or ("version" in info and "histogram" in info))


def check_target(out: Where, inputs: list[Path], flag: str = "-o") -> None:
    """Refuse an OUT that a run must not replace, before any work.

    Raises:
        ConfigError: OUT is a file, a folder of other files, or equal to, inside or
            above an input.
        OutputError: OUT's server cannot be reached.
    """
    where = place(out)
    if where.local:
        target = Path(where.url)
        for given in inputs:
            source = given.expanduser().resolve()
            if target == source or source in target.parents or target in source.parents:
                how = ("is" if target == source else "is inside" if source in target.parents
                       else "holds")
                raise ConfigError(f"{flag}: {out} {how} the input {given}; choose an empty "
                                  "or new directory outside the inputs")
    with writing(where):
        if not where.exists():
            return
        if not where.is_dir():
            raise ConfigError(f"{flag}: {out} is a file, not an output directory; choose an "
                              "empty or new directory")
        try:
            entries = len(where.names())
        except OSError as e:
            raise ConfigError(f"{flag}: cannot read {out}: {e.strerror or e}; choose an "
                              "empty or new directory") from None
    if entries and not is_output(where):
        raise ConfigError(f"-o: {out} is not empty and not a dsaccess output (no run.json; "
                          f"{entries} entries would be lost); choose an empty or new directory")


OWNER = ".owner"  # in a staging folder: "host pid" of the run writing it


def staging_dir(out: Where) -> Place:
    """A fresh temporary folder beside ``out`` (same filesystem, so rename is atomic),
    after removing the ones runs into the same ``out`` left when they were killed."""
    out = place(out)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    with writing(out.parent):
        out.parent.makedirs()
        remove_stale(out)
        _new_owned(tmp)
    return tmp


SCRATCH_PREFIX = ".dsaccess-scratch-"


def scratch_dir(root: Where | None, staging: Place | None) -> Place:
    """The shuffle's folder: inside the staging folder, or a fresh folder under ``root``
    (``--scratch``) after removing the ones killed runs left there."""
    if root is None:
        assert staging is not None, "a scratch folder goes under --scratch or the staging"
        return staging / "_shuffle"
    root = place(root, flag="--scratch")
    tmp = root / f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    with writing(root):
        root.makedirs()
        _remove_dead(root.glob(f"{glob_escape(SCRATCH_PREFIX)}*"))
        _new_owned(tmp)
    return tmp


def _new_owned(folder: Place) -> None:
    folder.mkdir_new()
    (folder / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")


def remove_stale(out: Where) -> list[Place]:
    """Remove the staging (``.OUT.tmp-*``) and swap (``.OUT.old-*``) folders of runs into
    ``out`` that died (SIGKILL, power): their owner process is gone from this host. A
    folder of a run on another host, or of one still running, is left alone."""
    out = place(out)
    removed = []
    for folder in out.parent.glob(f".{glob_escape(out.name)}.old-*"):
        if not folder.is_dir() or _owner_alive(folder):
            continue
        if not out.exists():
            # killed in the middle of a swap: this is the previous output; put it back
            (folder / OWNER).remove()
            folder.rename(out)
            log.warning("restored %s from %s, left by a run killed while publishing",
                        out, folder)
            continue
        removed += _remove_dead([folder])
    return removed + _remove_dead(out.parent.glob(f".{glob_escape(out.name)}.tmp-*"))


def _remove_dead(folders: list[Place]) -> list[Place]:
    removed = []
    for folder in folders:
        if not folder.is_dir() or _owner_alive(folder):
            continue
        folder.remove()
        log.warning("removed %s, left by a run that was killed", folder)
        removed.append(folder)
    return removed


OWNERLESS_GRACE_SECONDS = 60  # a folder just made has its owner file a moment later


def _owner_alive(folder: Place) -> bool:
    try:
        host, pid = (folder / OWNER).read_text().split()
    except (OSError, ValueError):  # older versions wrote none: stale once it is not new
        return time.time() - folder.mtime() < OWNERLESS_GRACE_SECONDS
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
def writing(path: Where) -> Iterator[None]:
    """Writes under this name: a failure (full disk, read-only, a server that cannot be
    reached) names the path."""
    try:
        yield
    except (OutputError, ConfigError):
        raise
    except OSError as e:
        raise _unwritable(path, e) from None
    except pl.exceptions.PolarsError as e:  # polars reports a full disk in its own type
        raise _unwritable(path, OSError(errno.EIO, str(e).splitlines()[0], str(path))) \
            from None
    except (SourceError, paramiko.SSHException, EOFError) as e:  # sftp:// and its host key
        raise OutputError(f"cannot write the output: {e}: {path}; check that server, or "
                          "choose another place for -o / --scratch") from None


def write_bytes(data: bytes, path: Where) -> None:
    """One file, whole or not at all: written beside, then renamed."""
    path = place(path)
    with writing(path):
        if path.local:
            path.parent.makedirs()
        path.write_bytes(data)


def _unwritable(path: Where, e: OSError) -> OutputError:
    fix = ("free space there, or choose another directory for -o" if e.errno == errno.ENOSPC
           else "choose a directory you can write for -o")
    return OutputError(f"cannot write the output: {e.strerror or e}: {e.filename or path}; {fix}")


def publish(tmp: Where, out: Where) -> None:
    """Replace ``out`` with ``tmp``: the old output stays until the new one is in place."""
    tmp, out = place(tmp), place(out)
    old = None
    with writing(out):
        (tmp / OWNER).remove()  # not part of the output
        try:
            if out.exists():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
                out.rename(old)
                (old / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}\n")
            tmp.rename(out)
        except BaseException:
            if old is not None and not out.exists():
                old.rename(out)  # the previous output back in its place
            raise
    if old is not None:
        discard(old)


def discard(tmp: Where) -> None:
    """Remove a staging or scratch folder (after a failed run, or once used)."""
    try:
        place(tmp).remove()
    except Exception as e:  # noqa: BLE001 (a server gone: its folder is a stale one now)
        log.warning("could not remove %s: %s", tmp, e)


@contextmanager
def _file(path: Where) -> Iterator[str | IO[bytes]]:
    """Where a writer that takes a path or a file (polars, pyarrow) writes one file, whole
    or not at all (``Place.write_target``); a failure names the path; local parents are
    made (the run makes remote ones beforehand)."""
    path = place(path)
    with writing(path):
        if path.local:
            path.parent.makedirs()
        with path.write_target() as target:
            yield target


# Columns whose values are mostly distinct: no dictionary for them (hashing every value to
# learn that costs, and the writer then falls back to plain values anyway).
DISTINCT_VALUES = frozenset({"filter", "dn", "text", "example", "line", "result_line"})
DICTIONARY_TYPES = (pl.String, pl.Int64, pl.Int32)


def _encodings(schema: pl.Schema) -> dict[str, Any]:
    """How pyarrow's writer encodes a table of ``schema``: dictionaries for the strings and
    integers of few distinct values (verbs, DNs that bind, notes, file names, op numbers,
    result codes, entry counts), plain values for the others, and min/max statistics for
    the numbers, times and booleans, which a reader prunes row groups on (ts above all),
    not for strings, whose bounds over a bucket of hashed connections prune nothing.
    (polars' writer estimates every string column's distinct values to decide, and bounds
    every column: its dictionary attempts were two fifths of its samples, and this takes a
    fifth less CPU on a bucket's operations.)"""
    strings = {name for name, dtype in schema.items() if dtype == pl.String}
    coded = {name for name, dtype in schema.items() if dtype in DICTIONARY_TYPES}
    return {"compression": PARQUET_COMPRESSION, "compression_level": PARQUET_LEVEL,
            "use_dictionary": sorted(coded - DISTINCT_VALUES),
            "write_statistics": [c for c in schema if c not in strings],
            "store_schema": False}  # a reader takes the types Parquet names


def write_parquet(df: pl.DataFrame, path: Where) -> None:
    """Write one Parquet file, whole or not at all (local parents created)."""
    import pyarrow.parquet as pq

    table = _arrow(df)
    with _file(path) as target:
        pq.write_table(table, target, **_encodings(df.schema))


def _arrow(df: pl.DataFrame) -> Any:
    """The frame as the Parquet writer takes it: string views as they are (no copy),
    except inside lists and structs (``index_reads``), which pyarrow cannot write with
    them ("Slicing not implemented for StringView"): those become large strings."""
    import pyarrow as pa

    table = df.to_arrow(compat_level=pl.CompatLevel.newest())
    nested = [i for i, f in enumerate(table.schema)  # (all null: written as it is)
              if pa.types.is_nested(f.type) and "string_view" in str(f.type)
              and table.column(i).null_count < len(table)]
    for i in nested:
        field = table.schema.field(i)
        plain = pa.field(field.name, _without_views(field.type), field.nullable)
        table = table.set_column(i, plain, table.column(i).cast(plain.type))
    return table


def _without_views(t: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_large_list(t):
        return pa.large_list(_without_views(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_without_views(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _without_views(f.type), f.nullable) for f in t])
    return t


def write_ipc(df: pl.DataFrame, path: Where) -> None:
    """Write one Arrow IPC file, uncompressed, whole or not at all: scratch read once by
    the same run, where Parquet's encoding is CPU spent for nothing."""
    with _file(path) as target:
        df.write_ipc(target, compression="uncompressed")


def read_ipc(path: Where, columns: list[str] | None = None) -> pl.DataFrame:
    return _read(pl.read_ipc, path, columns)


def write_ipc_batches(df: pl.DataFrame, bounds: list[int], path: Where) -> None:
    """Write one Arrow IPC file of ``df``'s rows ``bounds[i]:bounds[i + 1]`` as batch ``i``
    (empty ones too), uncompressed, whole or not at all: scratch a reader takes a batch at
    a time (``read_ipc_batch``)."""
    import pyarrow as pa

    table = df.to_arrow(compat_level=pl.CompatLevel.newest()).combine_chunks()
    rows = table.to_batches()[0] if df.height else None  # (one batch: one chunk a column)
    schema = table.schema
    with _file(path) as target, pa.ipc.new_file(target, schema) as writer:
        for start, end in zip(bounds, bounds[1:], strict=False):
            writer.write_batch(rows.slice(start, end - start) if rows is not None
                               else pa.RecordBatch.from_pylist([], schema=schema))


def read_ipc_batch(path: Where, index: int, columns: list[str] | None = None
                   ) -> pl.DataFrame:
    """Record batch ``index`` of an Arrow IPC file (``columns`` of it, those it has), read
    by itself (its bytes only, through the file's footer)."""
    import pyarrow as pa

    path = place(path)
    with (pa.OSFile(path.url) if path.local else path.open("rb")) as source:
        batch = pa.ipc.open_file(source).get_batch(index)
    if columns is not None:
        batch = batch.select([c for c in columns if c in batch.schema.names])
    return pl.DataFrame(pl.from_arrow(batch))


def read_parquet(path: Where, columns: list[str] | None = None) -> pl.DataFrame:
    return _read(pl.read_parquet, path, columns)


def scan_parquet(path: Where) -> pl.LazyFrame:
    """A Parquet file to read lazily (the columns a query takes, a row group at a time); a
    remote one is read whole (polars scans no SFTP)."""
    path = place(path)
    return pl.scan_parquet(path.url) if path.local else read_parquet(path).lazy()


def _read(reader: Callable[..., pl.DataFrame], path: Where, columns: list[str] | None
          ) -> pl.DataFrame:
    """A local file by its path (the reader maps or seeks it), a remote one through a file
    object."""
    path = place(path)
    if path.local:
        return reader(path.url, columns=columns)
    with path.open("rb") as fh:
        return reader(fh, columns=columns)


def operations_folder(root: Where, server: str) -> Place:
    """The hive folder of a server's operations: ``root/server=NAME``."""
    return place(root) / f"server={_hive_value(server)}"


def write_operations(ops: pl.DataFrame, root: Where, part: str) -> None:
    """Write a bucket's operations as ``root/server=NAME/part-PART.parquet`` (hive layout).

    The join orders operations by server first, so each server's rows are one slice
    (no copy; ``partition_by`` copied every column of every row); rows in another order
    are put in that order first (a stable sort), so a server never gets two files."""
    runs = server_runs(ops)
    if runs is None:  # (sorted, each server's rows are one run)
        runs = server_runs(ops.sort("server", maintain_order=True, nulls_last=True)) or []
    for server, rows in runs:
        write_parquet(rows.drop("server"), operations_folder(root, server) / f"part-{part}.parquet")


def concat_parquet(parts: list[Where], dest: Where, empty: pl.DataFrame,
                   transform: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:
    """Append pieces (Parquet, or Arrow IPC: ``.arrow``) into one Parquet file, one row
    group per piece, a piece at a time (the memory of one piece, whatever their number);
    ``transform`` each piece on the way; ``empty``: the table when there are no pieces."""
    import pyarrow.parquet as pq

    if not parts:
        write_parquet(empty, dest)
        return
    with _file(dest) as fh:
        writer = None
        try:
            for part in parts:
                piece = read_ipc(part) if str(part).endswith(".arrow") else read_parquet(part)
                piece = transform(piece) if transform else piece
                table = _arrow(piece)
                if writer is None:
                    writer = pq.ParquetWriter(fh, table.schema, **_encodings(piece.schema))
                writer.write_table(table.cast(writer.schema))
        finally:
            if writer is not None:
                writer.close()


def write_jsonl(ops: pl.DataFrame, path: Where) -> None:
    """Operations as JSON Lines: one joined operation per line, timestamps in ISO 8601."""
    with _file(path) as target:
        ops.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.9fZ")) \
            .write_ndjson(target)


def concat_files(parts: list[Where], dest: Where) -> None:
    """Concatenate pieces into one file, in the order given."""
    dest = place(dest)
    with writing(dest), dest.open_write() as out:
        for part in parts:
            with place(part).open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)


def write_json(doc: Any, path: Where) -> None:
    """Deterministic JSON: sorted as given, 2-space indent, trailing newline."""
    write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", path)


def _hive_value(value: str) -> str:
    # Keep partition folder names safe: a server name is config, but never trust a path.
    return "".join(ch if ch.isalnum() or ch in "-_." else f"%{ord(ch):02X}" for ch in value)


def write_text(text: str, path: Where) -> None:
    path = place(path)
    with writing(path):
        path.write_text(text)

