"""The job: parse tasks → one shuffle by (server, conn) → enrich tasks → outputs.

This is the only module that imports Dask. The graph is built from
``dask.delayed`` calls and computed once, so the same graph runs on a
LocalCluster (by default threads in this process, or worker processes), on an existing
cluster (``tcp://host:8786``) or in one thread (``synchronous``, for debugging).

The shuffle goes through files (``shuffle``): each parse task writes one file
per event class with a record batch per bucket and sub-bucket, and an index; each
enrich task reads its bucket's batches from each. There are as many buckets as the
input needs, so memory is bounded by the partition size, not the input size.
The workers write the large files of the output (operations, rejects, connections,
JSON Lines); the client holds and writes only the aggregates. OUT and the scratch may
be fsspec URLs (``store.Place``): a cluster that shares no disk with the client writes
to the same server (sftp://, s3://, ...).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dask
import polars as pl
from distributed.diagnostics.plugin import WorkerPlugin

from . import aggregate, histogram, outputs, report, saturation, trace, views
from .config import DEFAULT_WORKLOADS
from .enrich import join_pieces
from .errors import ConfigError, NoLogsError, PipelineError, SourceError
from .partition import bucket_layout
from .schema import EVENT_CLASSES
from .shuffle import Sources
from .source import LOG_NAMES, Chunk, discover, parse_inputs, plan_chunks
from .stages import (
    BucketReport,
    ChunkReport,
    add_steps,
    between_stages,
    combine_task,
    concat_task,
    enrich_task,
    fleet_timeline,
    line_offsets,
    parse_task,
    rejects_task,
    server_timeline,
    suspects_task,
    trace_task,
)
from .store import Place, place

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class RunResult:
    summary: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    problems: list[Problem]
    stage_seconds: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    published: bool = True            # False: warnings, and OUT kept its previous output
    bytes: int = 0                    # log bytes read (after decompression)


class Observer(Protocol):
    """What a progress display hears of a run (``terminal.RunProgress`` is one)."""

    def planned(self, chunks: int, bytes_: int, buckets: int, combines: int) -> None: ...
    def event(self, message: dict[str, Any]) -> None: ...
    def stage(self, name: str) -> None: ...


def run(opts: RunOptions, observer: Observer | None = None) -> RunResult:
    """Run the whole job and publish ``opts.out``.

    Raises:
        ConfigError: bad inputs or options, before any log is read.
        PipelineError: a failure that left no output.
    """
    started = time.perf_counter()
    out = place(opts.out, opts.storage_options)
    scratch_root = place(opts.scratch, opts.storage_options, "--scratch") if opts.scratch \
        else None
    outputs.check_target(out, _local_inputs(opts.inputs))
    chunks, unread = _plan(opts)
    staging = outputs.staging_dir(out)
    scratch: Place | None = None
    observer = _Logged(observer)
    try:
        scratch = outputs.scratch_dir(scratch_root, staging)
        _make_folders(staging, scratch, {c.file.server for c in chunks},
                      "parquet" in opts.operations)
        with _scheduler(opts, observer) as compute:
            layout = _layout(chunks, opts.partition_mb, compute.threads)
            parse, between = _stage_a(chunks, layout, scratch, (opts.since_ns, opts.until_ns))
            budget = BUDGET * (opts.partition_mb << 20)
            enrich_ = [dask.delayed(_enrich, pure=False)(b, sources, between, scratch,
                                                         staging, opts.sort_operands,
                                                         opts.operations, opts.workloads,
                                                         budget)
                       for b, sources in enumerate(_sources(chunks, layout))]
            combined, combines = _tree(enrich_)  # partials merge on the workers
            observer.planned(len(chunks), sum((c.file.size if c.end == -1 else c.end) - c.start
                                                 for c in chunks), len(enrich_), combines)
            planned = time.perf_counter()
            chunk_reports, reduced = compute(parse, combined)
            fleet_peak, timelines, pool = _assemble(compute, chunk_reports, layout, scratch,
                                                    staging, "jsonl" in opts.operations)
        computed = time.perf_counter()
        observer.stage("write")
        summary, tables, problems = _finish(opts, staging, chunk_reports, reduced, unread,
                                            timelines, fleet_peak, pool)
        outputs.discard(scratch)
        warnings = summary["warnings"]
        # a suspect run does not replace a previous output, unless asked to
        published = not (warnings and outputs.is_output(out) and not opts.force)
        if published:
            outputs.publish(staging, out)
        else:
            outputs.discard(staging)
    except BaseException:
        if scratch is not None:
            outputs.discard(scratch)
        outputs.discard(staging)
        raise
    done = time.perf_counter()
    stage = {
        "plan": planned - started,
        "parse_cpu": sum(r.seconds for r in chunk_reports),
        "enrich_combine_cpu": reduced.seconds,
        **{f"worker_{k}": v for k, v in add_steps(*(r.steps for r in chunk_reports),
                                                   reduced.steps).items()},
        "compute": computed - planned,
        "write": done - computed,
        "total": done - started,
    }
    return RunResult(summary=summary, tables=tables, problems=problems, stage_seconds=stage,
                     warnings=warnings, published=published,
                     bytes=sum(r.bytes for r in chunk_reports))


@dataclass(frozen=True)
class TraceResult:
    rows: pl.DataFrame                # trace.COLUMNS, in time order
    problems: list[Problem]
    stage_seconds: dict[str, float]
    bytes: int = 0                    # log bytes the second pass read
    lines: int = 0                    # the lines it read, and of them
    skipped: int = 0                  # those of connections that cannot match (not parsed)


def trace_logs(opts: RunOptions, sel: trace.Selectors) -> TraceResult:
    """``dsaccess trace INPUT...``: the job of ``run`` shaped for a few connections.

    When a selector follows connections (identity, client, filter value, target), a
    first pass over every chunk finds the connections that may match
    (``trace.suspects``, no tokenizing); the second parses only their lines (``--conn``
    names its own), shuffles and joins them as a run does, so each match carries its
    identity and client, and keeps the rows ``sel`` selects. Nothing is aggregated or
    written but the shuffle's scratch (``--scratch``, or the system's temporary folder),
    removed at the end."""
    started = time.perf_counter()
    chunks, unread = _plan(opts)
    scratch = outputs.scratch_dir(place(opts.scratch or tempfile.gettempdir(),
                                        opts.storage_options, "--scratch"), None)
    observer = _Logged(None)
    try:
        _make_folders(scratch, scratch, {c.file.server for c in chunks}, False)
        with _scheduler(opts, observer) as compute:
            servers = sorted({c.file.server for c in chunks})
            found: dict[str, list[Any]] = {s: [] for s in servers}
            if trace.needs_suspects(sel):
                first = [dask.delayed(suspects_task, pure=False)(c, sel) for c in chunks]
                for c, f in zip(chunks, compute(first)[0], strict=True):
                    found[c.file.server].append(f)
            read = {s: trace.connections_to_read(s, found[s], sel) for s in servers}
            chunks = [c for c in chunks if read[c.file.server] != []]
            suspected = time.perf_counter()
            layout = _layout(chunks, opts.partition_mb, compute.threads)
            parse, between = _stage_a(chunks, layout, scratch, (None, None), read)
            budget = BUDGET * (opts.partition_mb << 20)
            joins = [dask.delayed(trace_task, pure=False)(b, sources, between, scratch, sel,
                                                          budget)
                     for b, sources in enumerate(_sources(chunks, layout))]
            reports, parts = compute(parse, joins) if chunks else ([], [])
    finally:
        outputs.discard(scratch)
    per_server = aggregate.combine_all([r.partial for r in reports])
    rows = trace.in_order(pl.concat(parts)) if parts else trace.no_rows()
    rows = trace.with_local_times(rows, {s: p[aggregate.UTC_OFFSETS] for s, p in
                                         per_server.items() if aggregate.UTC_OFFSETS in p})
    problems = unread + [problem(r.server, r.file, r.problem) for r in
                         sorted(reports, key=lambda r: r.index) if r.problem]
    done = time.perf_counter()
    lines = [p.get("lines", {}) for p in per_server.values()]
    return TraceResult(rows, problems, {"suspects": suspected - started,
                                        "parse_join": done - suspected, "total": done - started},
                       sum(r.bytes for r in reports), sum(n.get("total", 0) for n in lines),
                       sum(n.get("skipped", 0) for n in lines))


def _stage_a(chunks: list[Chunk], layout: dict[str, tuple[int, int]], scratch: Place,
             window: tuple[int | None, int | None],
             connections: dict[str, list[int] | None] | None = None) -> tuple[list[Any], Any]:
    """Stage A's parse tasks (each server's ``connections`` only, for a trace) and the
    one task that waits for them all (``between_stages``)."""
    parse = [dask.delayed(_parse, pure=False)(c, layout[c.file.server][1], scratch, *window,
                                              (connections or {}).get(c.file.server))
             for c in chunks]
    return parse, dask.delayed(between_stages, pure=False)(parse, *window)


CANCEL_WAIT_SECONDS = 60
WATCH_SECONDS = 0.5
COMBINE_FAN_IN = 4  # partial tables merged per combine task (memory ~ fan-in x partial)
PROGRESS_TOPIC = "dsaccess-progress"


def _tree(reports: list[Any]) -> tuple[Any, int]:
    """A tree of ``combine_task`` calls over delayed reports (associative merge), and the
    number of combine tasks."""
    level, tasks = reports, 0
    while len(level) > 1:
        level = [dask.delayed(_combine, pure=False)(level[i:i + COMBINE_FAN_IN])
                 for i in range(0, len(level), COMBINE_FAN_IN)]
        tasks += len(level)
    if len(level) == 1:
        return level[0], tasks
    return dask.delayed(_combine)(level), tasks + 1


# The tasks as the graph runs them: each tells the client it is done (bytes, lines,
# seconds), for the progress display and -v. On a worker through Dask's event log; in one
# process (synchronous) straight to the observer.
_LOCAL: list[Any] = []


def _tell(message: dict[str, Any]) -> None:
    try:
        from distributed import get_worker
        get_worker().log_event(PROGRESS_TOPIC, message)
    except ValueError:  # not on a worker
        for observer in _LOCAL:
            observer.event(message)


def _parse(chunk: Chunk, *args: Any) -> ChunkReport:
    report = parse_task(chunk, *args)
    _tell({"stage": "parse", "server": report.server, "file": report.file,
           "bytes": report.bytes, "lines": report.lines, "seconds": round(report.seconds, 3)})
    return report


def _enrich(bucket: int, *args: Any) -> BucketReport:
    report = enrich_task(bucket, *args)
    _tell({"stage": "join", "bucket": bucket, "operations": report.operations,
           "seconds": round(report.seconds, 3)})
    return report


def _combine(reports: list[BucketReport]) -> BucketReport:
    report = combine_task(reports)
    _tell({"stage": "aggregate", "parts": len(reports)})
    return report


class _Logged:
    """The observer, and -v's debug lines of the same events."""

    def __init__(self, inner: Observer | None) -> None:
        self.inner = inner

    def planned(self, chunks: int, bytes_: int, buckets: int, combines: int) -> None:
        log.debug("plan: %d parse tasks over %s bytes, %d join tasks, %d combine tasks",
                  chunks, f"{bytes_:,}", buckets, combines)
        if self.inner:
            self.inner.planned(chunks, bytes_, buckets, combines)

    def event(self, message: dict[str, Any]) -> None:
        log.debug("done: %s", message)
        if self.inner:
            self.inner.event(message)

    def stage(self, name: str) -> None:
        log.debug("stage: %s", name)
        if self.inner:
            self.inner.stage(name)


def _local_inputs(inputs: tuple[str, ...]) -> list[Path]:
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


Problem = dict[str, str]  # {"server", "file", "problem"}: what could not be read, and why


def problem(server: str, file: str, text: str) -> Problem:
    return {"server": server, "file": file, "problem": text}


def _plan(opts: RunOptions) -> tuple[list[Chunk], list[Problem]]:
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


def _layout(chunks: list[Chunk], partition_mb: int, threads: int) -> dict[str, tuple[int, int]]:
    """Each server's buckets (``partition.bucket_layout``), from the size of its logs: as
    many as the input needs, so a bucket holds about --partition-mb of events however
    large the input."""
    sizes: dict[str, int] = {}
    for c in chunks:
        if c.start == 0:
            size = c.file.size * (GZIP_RATIO if c.file.gz else 1) * EXPANSION
            sizes[c.file.server] = sizes.get(c.file.server, 0) + int(size)
    return bucket_layout(sizes, partition_mb << 20, at_least=threads)


def _sources(chunks: list[Chunk], layout: dict[str, tuple[int, int]]) -> list[Sources]:
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


class _WorkerSetup(WorkerPlugin):
    """A worker plugin: Ctrl-C is the client's to answer, not each worker's; and the
    cyclic garbage collector leaves the modules alone (``long_lived``)."""

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        long_lived()


def long_lived() -> None:
    """Move every object alive out of the cyclic collector's view, and collect a third
    as often (the thresholds ``dask worker`` sets; it freezes nothing). In a worker this
    module is imported by now, so that is the modules the tasks run (polars, dask, the
    job's: several hundred thousand objects), which the collector's full passes walked
    again and again: 3.5% of a run's CPU samples before (perf, 4 servers x 141 MB), 2.0%
    after."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*(max(now, 3 * default) for now, default in
                       zip(gc.get_threshold(), GC_THRESHOLDS, strict=True)))


GC_THRESHOLDS = (700, 10, 10)  # CPython's defaults


class _DeferredInterrupt:
    """Ctrl-C while the cluster starts is held back, not dropped: SIGINT is blocked in
    this thread, so the threads and worker processes started meanwhile inherit the block
    (a terminal sends Ctrl-C to the whole process group; only this process answers it,
    with one line, after closing the cluster). When the block is lifted, a Ctrl-C that
    came meanwhile is delivered, and ``__exit__`` raises it as KeyboardInterrupt."""

    def __enter__(self) -> _DeferredInterrupt:
        self.got: list[int] = []
        self.active = (threading.current_thread() is threading.main_thread()
                       and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)
        if self.active:  # (started with Ctrl-C ignored, a background job: it stays so)
            self.previous = signal.signal(signal.SIGINT, lambda n, f: self.got.append(n))
            self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.active:
            return
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)  # a held Ctrl-C arrives now
        signal.signal(signal.SIGINT, self.previous)
        if self.got and exc[0] is None:
            raise KeyboardInterrupt


class _Compute:
    def __init__(self, threads: int, client: Any = None, worker_timeout: float = 60) -> None:
        self.threads = threads
        self.client = client
        self.worker_timeout = worker_timeout

    def __call__(self, *graphs: Any) -> Any:
        if self.client is None:
            return dask.compute(*graphs, scheduler="synchronous")
        futures = self.client.compute(list(graphs))
        try:
            self._watch(futures)
            return tuple(self.client.gather(futures))
        except BaseException:
            self._cancel(futures)
            raise

    def _watch(self, futures: list[Any]) -> None:
        """Wait for the futures; fail when the cluster has had no worker for
        ``worker_timeout`` seconds (a lost worker's tasks run again elsewhere, but with
        none left Dask would wait forever)."""
        from distributed import wait
        seen = time.monotonic()
        while True:
            # returns as soon as every future is done (a sleep between checks kept each
            # compute waiting up to WATCH_SECONDS after its last task: 0.5 s a run)
            try:
                wait(futures, timeout=WATCH_SECONDS)
                return
            except TimeoutError:
                pass
            if self.client.scheduler_info().get("workers"):
                seen = time.monotonic()
            elif time.monotonic() - seen > self.worker_timeout:
                raise PipelineError(
                    f"no Dask worker for {self.worker_timeout:g} s (--worker-timeout): the "
                    "workers died or were stopped; start workers or check their logs, then "
                    "run again (the previous output is as it was)")

    def _cancel(self, futures: list[Any]) -> None:
        """Cancel the run's tasks and wait (a while) until none still runs: a task left
        running on a remote worker would write into the staging folder after the run
        removed it."""
        try:
            self.client.cancel(futures, force=True)
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while time.monotonic() < deadline:
                running = [k for keys in self.client.processing().values() for k in keys]
                if not running:
                    return
                time.sleep(0.2)
            log.warning("tasks still running after %d s: %s", CANCEL_WAIT_SECONDS,
                        ", ".join(map(str, running[:5])))
        except Exception as e:  # the cluster is gone already: nothing runs for us
            log.debug("cancel: %s", e)


class _scheduler:
    """Choose where the graph runs: exactly one place makes that choice."""

    def __init__(self, opts: RunOptions, observer: Observer) -> None:
        self.opts = opts
        self.observer = observer
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> _Compute:
        opts = self.opts
        if opts.scheduler == "synchronous":  # polars keeps its own thread pool in-process
            _LOCAL.append(self.observer)
            return _Compute(1)
        from distributed import Client, LocalCluster
        # it logs every worker start at INFO, and sets its loggers' levels on import:
        # quiet again, unless -vv asked for every library's messages (the root at DEBUG)
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("distributed").setLevel(logging.ERROR)
        if opts.scheduler:
            if not opts.scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
                raise ConfigError(f"--scheduler: {opts.scheduler!r} is not an address "
                                  "(use tcp://host:8786, or 'synchronous')")
            try:
                self.client = Client(opts.scheduler, timeout="20s")
            except OSError as e:
                raise PipelineError(f"cannot reach the Dask scheduler: {opts.scheduler} ({e}); "
                                    "is `dask scheduler` running there?") from e
        else:
            if opts.worker_processes:
                # started now, unblocked: starting it later, from the cluster's thread,
                # unblocks Ctrl-C in that thread, and the workers it spawns inherit that
                from multiprocessing import resource_tracker
                resource_tracker.ensure_running()
            try:
                with _DeferredInterrupt():
                    self._start_local(LocalCluster, Client)
            except BaseException:  # Ctrl-C held back while it started: close it again
                self.__exit__(*sys.exc_info())
                raise
        info = self.client.scheduler_info()
        threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()) or 1
        observer = self.observer
        self.client.subscribe_topic(PROGRESS_TOPIC, lambda event: observer.event(event[1]))
        return _Compute(threads, self.client, opts.worker_timeout)

    def _start_local(self, LocalCluster: Any, Client: Any) -> None:  # noqa: N803
        """A cluster on this machine, and a client of it."""
        opts = self.opts
        if not opts.worker_processes:
            # by default, one worker in this process with a thread per task: every task is
            # a few calls into the compiled core, which release the GIL, so threads run
            # them side by side with no copies between processes and no workers to start
            # (2 cores: 1.3x a process per task on one 422 MB log, 1.15x on a 2 GB fleet,
            # and one process of 1.1 GB instead of a client and two workers of 2.3 GB)
            self.cluster = LocalCluster(
                n_workers=1, threads_per_worker=opts.workers or os.cpu_count() or 1,
                processes=False, dashboard_address=":0", silence_logs=logging.ERROR)
        else:
            workers = opts.workers or os.cpu_count() or 1
            # one thread per worker process; polars inside a task gets that one thread too
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", env={"POLARS_MAX_THREADS": "1"},
                silence_logs=logging.ERROR,
            )
        self.client = Client(self.cluster)
        # Ctrl-C ignored in each worker too, the ones a nanny starts later among them
        try:
            self.client.register_plugin(_WorkerSetup(), name="dsaccess-worker-setup")
        except OSError as e:  # CommClosedError: a worker died while it was told
            # the scheduler keeps the plugin and gives it to the worker its nanny starts
            log.debug("worker plugin: %s", e)

    def __exit__(self, *exc: Any) -> None:
        if self.observer in _LOCAL:
            _LOCAL.remove(self.observer)
        if exc[0] is not None and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # interrupted or failed: the cluster's complaints while it is torn down
            # (comms closed under a progress event) are not news; the run's error is
            logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(PROGRESS_TOPIC)
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _make_folders(staging: Place, scratch: Place, servers: set[str], operations: bool) -> None:
    """Every folder the tasks write into, made once here: on a remote store, tasks that
    made them as they went would race (and pay a round trip per file)."""
    with outputs.writing(scratch):
        for name in (*EVENT_CLASSES, "rejects", "connections", "flights", "jsonl"):
            (scratch / name).makedirs()
        if not scratch.local:
            for server in servers:
                outputs.operations_folder(scratch / "flights", server).makedirs()
    if not operations:
        return
    with outputs.writing(staging):
        (staging / "operations").makedirs()
        if not staging.local:  # (a local write makes its folder: no round trip to save)
            for server in servers:
                outputs.operations_folder(staging / "operations", server).makedirs()


def _assemble(compute: _Compute, reports: list[ChunkReport], layout: dict[str, tuple[int, int]],
              scratch: Place, staging: Place, jsonl: bool
              ) -> tuple[int, list[tuple[str, int, pl.DataFrame]], Pool]:
    """On the workers, after stage B: rejects.parquet, connections.parquet and
    operations.jsonl from the tasks' pieces, the fleet's peak concurrent connections, and
    each server's timeline (its peak, its restarts) from its buckets' connection pieces;
    the worker pool's saturation per server and for the fleet from their flight pieces.
    The client gets numbers, the restart rows and the periods, whatever the input."""
    order = {r.index: (r.server, r.file, r.index) for r in reports}
    ranges = _ranges(aggregate.combine_all([r.partial for r in reports]))
    fleet = _span(ranges)
    period = aggregate.load_period(*fleet)
    graphs = [
        dask.delayed(rejects_task, pure=False)(scratch, staging, order, line_offsets(reports)),
        dask.delayed(concat_task, pure=False)(scratch / "connections", "b*.parquet",
                                              staging / "connections.parquet",
                                              join_pieces({}).connections),
        dask.delayed(fleet_timeline, pure=False)(scratch / "connections"),
        *[dask.delayed(server_timeline, pure=False)(server, scratch / "connections",
                                                    range(base, base + count))
          for server, (base, count) in sorted(layout.items())],
    ]
    n = len(graphs)
    pools = [dask.delayed(saturation.server_saturation, pure=False)(
                 server, scratch / "flights", period, ranges[server])
             for server in sorted(layout) if server in ranges]
    fleet_pool = dask.delayed(saturation.fleet_saturation, pure=False)(
        scratch / "flights", period, fleet) if ranges else saturation.no_events()
    graphs += [fleet_pool, *pools]
    if jsonl:
        graphs.append(dask.delayed(concat_task, pure=False)(
            scratch / "jsonl", "b*.jsonl", staging / "operations.jsonl", None))
    done, = compute(graphs)
    return done[2], list(done[3:3 + len(layout)]), (done[n + 1:n + 1 + len(pools)], *done[n])


# the pool's saturation: each server's (name, periods, figures), the fleet's periods and
# figures (``saturation``)
Pool = tuple[list[tuple[str, pl.DataFrame, dict[str, Any]]], pl.DataFrame, dict[str, Any]]


def _ranges(per_server: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Each server's window of events, (first, last) ns, where it has events."""
    return {s: (p["time_range"]["first"], p["time_range"]["last"])
            for s, p in per_server.items() if "time_range" in p}


def _span(ranges: dict[str, tuple[int, int]]) -> tuple[int | None, int | None]:
    """The servers' windows together, (first, last) ns; (None, None) without any."""
    return (min((f for f, _ in ranges.values()), default=None),
            max((t for _, t in ranges.values()), default=None))


def _finish(opts: RunOptions, staging: Place, chunk_reports: list[ChunkReport],
            reduced: BucketReport, unread: list[Problem],
            timelines: list[tuple[str, int, pl.DataFrame]], fleet_peak: int, pool: Pool
            ) -> tuple[dict[str, Any], dict[str, pl.DataFrame], list[Problem]]:
    per_server = aggregate.combine_all([r.partial for r in chunk_reports] + [reduced.partial])
    for r in chunk_reports:  # servers whose files held no events still appear
        per_server.setdefault(r.server, {})
    for p in unread:  # and so do servers that could not be read at all
        per_server.setdefault(p["server"], {})
    for server, peak, _ in timelines:
        if peak:
            per_server.setdefault(server, {})["peak_connections"] = peak
    starts = pl.concat([t[2] for t in timelines])  # one per server: never empty
    summary = aggregate.finalize(per_server, dict(starts.group_by("server").len().iter_rows()),
                                 fleet_peak)
    summary["workload_rule_errors"] = dict(sorted(reduced.rule_errors.items()))
    problems = unread + [problem(r.server, r.file, r.problem) for r in
                         sorted(chunk_reports, key=lambda r: r.index) if r.problem]
    problems = [dict(t) for t in dict.fromkeys(tuple(p.items()) for p in problems)]
    summary["problems"] = problems
    spans = {s: (aggregate.iso(p[aggregate.LOGS_RANGE]["first"]),
                 aggregate.iso(p[aggregate.LOGS_RANGE]["last"]))
             for s, p in per_server.items() if aggregate.LOGS_RANGE in p}
    summary["warnings"] = views.run_warnings(summary, windowed=opts.since_ns is not None
                                             or opts.until_ns is not None, spans=spans)
    ranges = _ranges(per_server)
    period = aggregate.load_period(*_span(ranges))
    servers, fleet_periods, fleet_figures = pool
    servers = saturation.with_threads(servers, dict(opts.threads))
    summary["saturation"] = saturation.summary(fleet_figures)
    figures = {server: f for server, _, f in servers}
    for server, section in summary["servers"].items():  # (a server without events: {})
        section["saturation"] = saturation.summary(figures.get(server, {}))
    # a run that found no events: the tables of an empty bucket's task (their schemas)
    partials = reduced.tables or join_pieces({}, load_period=period).tables
    tables = aggregate.finalize_tables({**partials, "restarts": starts}, ranges, period)
    tables["saturation"] = saturation.table(servers, fleet_periods)
    tables["pool_held"] = saturation.held_table(servers)
    info = run_info(opts)
    info["inputs"] = _inputs(chunk_reports, opts)
    info[aggregate.UTC_OFFSETS] = {s: p[aggregate.UTC_OFFSETS]
                                   for s, p in sorted(per_server.items())
                                   if aggregate.UTC_OFFSETS in p}
    report.write_aggregates(staging, summary, tables, info, opts.histocrutch)
    return summary, tables, problems


def run_info(opts: RunOptions) -> dict[str, Any]:
    """What a later ``merge`` must agree on to combine this run with others."""
    from . import __version__
    return {
        "format": outputs.FORMAT,
        "version": __version__,
        "window": {"since": opts.since_ns, "until": opts.until_ns},
        "histogram": histogram.LAYOUT,
        # "by_scope": a search's fingerprint begins with its scope (runs made before do
        # not; a merge of both would keep one search apart under two names)
        "fingerprint": {"sort_operands": opts.sort_operands, "by_scope": True},
        "workloads": [{"name": n, "when": w} for n, w, _ in opts.workloads],
    }


def _inputs(reports: list[ChunkReport], opts: RunOptions) -> list[dict[str, Any]]:
    """Each file read: its line accounting, bytes, and the window it was read for (what a
    merge needs to count each line once, and to refuse runs that overlap)."""
    files: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in reports:
        entry = files.setdefault((r.server, r.file_seq, r.file), {
            "server": r.server, "file": r.file, "url": r.url, "bytes": 0,
            "since": opts.since_ns,
            "until": opts.until_ns, "lines": dict.fromkeys(aggregate.LINE_KEYS, 0)})
        entry["bytes"] += r.bytes
        for key, n in r.partial.get(r.server, {}).get("lines", {}).items():
            entry["lines"][key] += n
    return [files[k] for k in sorted(files)]
