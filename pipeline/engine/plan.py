"""What a run reads and how its work is cut: the inputs' files as chunks (stage A's
tasks), each server's buckets (stage B's), and which chunks hold each bucket's events.
Nothing here reads a log; listing the inputs is the only I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_WORKLOADS
from ..errors import ConfigError, NoLogsError, SourceError
from ..sources.source import LOG_NAMES, Chunk, discover, parse_inputs, plan_chunks
from .partition import bucket_layout
from .shuffle import Sources

DEFAULT_RULES = tuple((name, when, None) for name, when in DEFAULT_WORKLOADS)


DEFAULT_PARTITION_MB = 64


# Arrow bytes per log byte after parsing (measured: 1.4 on real logs): buckets hold about
# --partition-mb of Arrow data each.
EXPANSION = 1.5


# Access logs compress about 6:1 (the bundled sample); planning with 8 errs toward
# more, smaller partitions, so a fleet of .gz files does not overload a worker.
GZIP_RATIO = 8


# A join task joins its bucket a few sub-buckets at a time when it holds more than this
# many times --partition-mb of events (a bucket is planned to hold about one).
BUDGET = 2


@dataclass(frozen=True)
class RunOptions:
    """What ``dsaccess run`` was asked to do."""

    inputs: tuple[str, ...]
    out: str | Path                   # a local path or an fsspec URL
    scheduler: str | None = None      # None: LocalCluster; "synchronous"; "tcp://host:port"
    workers: int | None = None          # tasks at once on the local cluster
    worker_processes: bool = False      # the local cluster's workers: processes, not threads
    since_ns: int | None = None
    until_ns: int | None = None
    servers: tuple[str, ...] = ()
    partition_mb: int = DEFAULT_PARTITION_MB
    sort_operands: bool = False
    # how the operations are written: "parquet" (OUT/operations/), "jsonl"
    # (OUT/operations.jsonl); none for a scheduled report, which needs only the aggregates
    operations: tuple[str, ...] = ("parquet",)
    histocrutch: bool = False
    progress: bool = False
    force: bool = False               # replace OUT even when this run has warnings
    worker_timeout: float = 60        # seconds with no Dask worker before the run fails
    # checked CEL rules (config.load_workloads); the built-in classes by default
    workloads: tuple[tuple[str, str, int | None], ...] = DEFAULT_RULES
    storage_options: dict[str, Any] = field(default_factory=dict)
    scratch: str | Path | None = None  # the shuffle's folder: None is inside OUT's staging
    # (server, worker threads) for servers that do not log their pool (--threads)
    threads: tuple[tuple[str, int], ...] = ()


Problem = dict[str, str]  # {"server", "file", "problem"}: what could not be read, and why


def problem(server: str, file: str, text: str) -> Problem:
    return {"server": server, "file": file, "problem": text}


def local_inputs(inputs: tuple[str, ...]) -> list[Path]:
    """The local folders and files the inputs name (``NAME=PATH``, globs by their folder)."""
    out = []
    for item in inputs:
        name, sep, path = item.partition("=")
        path = path if sep and "/" not in name and "://" not in name else item
        if "://" in path and not path.startswith("file://"):
            continue
        path = path.removeprefix("file://")
        out.append(Path(path).parent if any(c in Path(path).name for c in "*?[") else Path(path))
    return out


def chunks(opts: RunOptions) -> tuple[list[Chunk], list[Problem]]:
    """The chunks to parse, and the servers or folders that could not be listed (their
    servers are a problem of the run, the others go on)."""
    pairs = parse_inputs(list(opts.inputs), opts.storage_options)
    if len(opts.servers) == 1 and len(pairs) == 1 and "://" in pairs[0][1]:
        pairs = [(opts.servers[0], pairs[0][1])]  # `run sftp://host/... --server NAME`
    if opts.servers:
        known = {n for n, _ in pairs}
        missing = [s for s in opts.servers if s not in known]
        if missing:
            raise ConfigError(f"--server not among the inputs: {', '.join(missing)} "
                              f"(inputs name: {', '.join(sorted(known))})")
        pairs = [(n, u) for n, u in pairs if n in opts.servers]
    unknown = [name for name, _ in opts.threads if name not in {n for n, _ in pairs}]
    if unknown:
        raise ConfigError(f"--threads names no server of the run: {', '.join(unknown)} "
                          f"(servers: {', '.join(sorted({n for n, _ in pairs}))})")
    files, problems = [], []
    for name, url in pairs:
        notes: list[str] = []
        try:
            found = discover(name, url, opts.storage_options, notes)
            problems += [problem(name, url, note) for note in notes]
        except SourceError as e:
            problems.append(problem(name, url, str(e)))
            continue
        if not found and len(pairs) > 1:
            problems.append(problem(name, url, "no access logs in this folder (expected "
                                               f"{LOG_NAMES})"))
        files += found
    if not files and problems:
        raise SourceError("no input could be read: " + "; ".join(
            f"{p['server']}: {p['problem']}" for p in problems))
    if not files:
        raise NoLogsError(f"no access logs found in the inputs (expected files named "
                          f"{LOG_NAMES})")
    return plan_chunks(files, chunk_bytes=max(1, opts.partition_mb) << 20), problems


def layout(chunks: list[Chunk], partition_mb: int, threads: int) -> dict[str, tuple[int, int]]:
    """Each server's buckets (``partition.bucket_layout``), from the size of its logs: as
    many as the input needs, so a bucket holds about --partition-mb of events however
    large the input."""
    sizes: dict[str, int] = {}
    for c in chunks:
        if c.start == 0:
            size = c.file.size * (GZIP_RATIO if c.file.gz else 1) * EXPANSION
            sizes[c.file.server] = sizes.get(c.file.server, 0) + int(size)
    return bucket_layout(sizes, partition_mb << 20, at_least=threads)


def bucket_sources(chunks: list[Chunk], layout: dict[str, tuple[int, int]]) -> list[Sources]:
    """Per bucket, the files holding its events: the chunks of its servers, as runs of
    consecutive chunk numbers (a task's arguments stay small however many chunks a server
    has), each with the bucket's number among its server's buckets."""
    runs: dict[str, list[list[int]]] = {}
    for c in sorted(chunks, key=lambda c: c.index):
        mine = runs.setdefault(c.file.server, [])
        if mine and mine[-1][1] == c.index:
            mine[-1][1] += 1
        else:
            mine.append([c.index, c.index + 1])
    buckets = max((base + count for base, count in layout.values()), default=1)
    out: list[list[tuple[int, int, int]]] = [[] for _ in range(buckets)]
    for server, (base, count) in sorted(layout.items()):
        for batch in range(count):
            out[base + batch] += [(first, end, batch) for first, end in runs.get(server, [])]
    return [tuple(s) for s in out]
