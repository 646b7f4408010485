"""Where the graph runs, and the only module that imports Dask.

The graph is built from ``task`` calls and computed once per stage boundary, so the
same graph runs on a LocalCluster (by default threads in this process, or worker
processes), on an existing cluster (``tcp://host:8786``) or in one thread
(``synchronous``, for debugging). Exactly one place chooses (``Scheduler``). Tasks tell
the client when they are done (``tell``), for the progress display and -v.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import dask
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import ConfigError, PipelineError
from .plan import RunOptions

log = logging.getLogger(__name__)

CANCEL_WAIT_SECONDS = 60
WATCH_SECONDS = 0.5
COMBINE_FAN_IN = 4  # partial tables merged per combine task (memory ~ fan-in x partial)
PROGRESS_TOPIC = "dsaccess-progress"


class Observer(Protocol):
    """What a progress display hears of a run (``terminal.RunProgress`` is one)."""

    def planned(self, tasks: dict[str, int], bytes_: int) -> None: ...
    def event(self, message: dict[str, Any]) -> None: ...
    def stage(self, name: str) -> None: ...


class Logged:
    """The observer, and -v's debug lines of the same events."""

    def __init__(self, inner: Observer | None) -> None:
        self.inner = inner

    def planned(self, tasks: dict[str, int], bytes_: int) -> None:
        """The tasks of the stages about to run (stage → how many), over ``bytes_`` of
        logs; a trace plans twice (its first pass, then the rest)."""
        log.debug("plan: %s over %s bytes",
                  ", ".join(f"{n} {stage} tasks" for stage, n in tasks.items()), f"{bytes_:,}")
        if self.inner:
            self.inner.planned(tasks, bytes_)

    def event(self, message: dict[str, Any]) -> None:
        log.debug("done: %s", message)
        if self.inner:
            self.inner.event(message)

    def stage(self, name: str) -> None:
        log.debug("stage: %s", name)
        if self.inner:
            self.inner.stage(name)


def task(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` as a task of the graph (run when the graph is computed)."""
    return dask.delayed(function, pure=False)(*args)


def tree(parts: list[Any], combine: Callable[[list[Any]], Any]) -> tuple[Any, int]:
    """A tree of ``combine`` tasks over the graph's ``parts`` (an associative merge, so
    partials merge on the workers), and the number of combine tasks."""
    level, tasks = parts, 0
    while len(level) > 1:
        level = [task(combine, level[i:i + COMBINE_FAN_IN])
                 for i in range(0, len(level), COMBINE_FAN_IN)]
        tasks += len(level)
    if len(level) == 1:
        return level[0], tasks
    return task(combine, level), tasks + 1


# The tasks as the graph runs them: each tells the client it is done (bytes, lines,
# seconds), for the progress display and -v. On a worker through Dask's event log; in one
# process (synchronous) straight to the observer.
_LOCAL: list[Any] = []


def tell(message: dict[str, Any]) -> None:
    try:
        from distributed import get_worker
        get_worker().log_event(PROGRESS_TOPIC, message)
    except ValueError:  # not on a worker
        for observer in _LOCAL:
            observer.event(message)


class _WorkerSetup(WorkerPlugin):
    """A worker plugin: Ctrl-C is the client's to answer, not each worker's; and the
    cyclic garbage collector leaves the modules alone (``long_lived``).

    ``quiet``: a worker process's own distributed log is off. Its complaints while the
    cluster is torn down under it ("failed to communicate with scheduler during
    heartbeat", "failed during get data", with their tracebacks, after an interrupt) are
    not news, and a task's failure reaches the client, which says it in one line; the
    client silences its own the same way (``Scheduler.__exit__``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.quiet:
            logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)
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


class Compute:
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


class Scheduler:
    """Choose where the graph runs: exactly one place makes that choice."""

    def __init__(self, opts: RunOptions, observer: Observer) -> None:
        self.opts = opts
        self.observer = observer
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Compute:
        opts = self.opts
        if opts.scheduler == "synchronous":  # polars keeps its own thread pool in-process
            _LOCAL.append(self.observer)
            return Compute(1)
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
        return Compute(threads, self.client, opts.worker_timeout)

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
            # (worker processes only: in-process workers share the client's loggers)
            quiet = opts.worker_processes and \
                logging.getLogger().getEffectiveLevel() > logging.DEBUG
            self.client.register_plugin(_WorkerSetup(quiet), name="dsaccess-worker-setup")
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
