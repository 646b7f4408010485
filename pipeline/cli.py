"""Command line: argument checks, logging setup, errors → message and exit code.

Exit codes: 0 success, 1 failure (nothing produced), 2 partial (output
written, but some input could not be read), 64 usage error, 69 a part the command needs
is not installed.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, _core
from .config import load_workloads
from .errors import ConfigError, NoLogsError, PipelineError
from .names import SCOPES, printable, problem_text
from .outputs.terminal import TRACE_STAGES, RunProgress, done_line, print_summary

EXIT_OK, EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2, 64
EXIT_UNAVAILABLE = 69  # sysexits' EX_UNAVAILABLE: a part the command needs is not installed


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dsaccess`` command."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (64, see _Parser)
        return int(e.code or 0)
    set_up_logging(args.verbose)
    stop = _on_sigterm()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (below): the run has cleaned up
        name = "terminated" if stop.got else "interrupted"
        print(f"dsaccess: {name}", file=sys.stderr)
        return 143 if stop.got else 130
    except Exception as e:  # every failure is one line; the traceback only with -v
        if args.verbose:
            traceback.print_exc()
        message, code = explain(e)
        print(f"dsaccess: error: {message}", file=sys.stderr)
        return code
    finally:
        stop.restore()


class _Stop:
    got = False
    previous: Any = None

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _on_sigterm() -> _Stop:
    """SIGTERM (systemd, kill, a batch scheduler) unwinds like Ctrl-C, so a run removes its
    staging folder instead of leaving it behind."""
    stop = _Stop()

    def handler(signum: int, frame: Any) -> None:
        stop.got = True
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        stop.previous = signal.signal(signal.SIGTERM, handler)
    return stop


def explain(e: BaseException) -> tuple[str, int]:
    """A failure → its one-line message and exit code."""
    if isinstance(e, ConfigError):
        return str(e), EXIT_USAGE
    if isinstance(e, PipelineError):
        return str(e), EXIT_FAILED
    kind = type(e).__name__
    if kind == "KilledWorker":  # distributed's, named so the CLI need not import Dask
        return (f"a Dask worker died running a task, more than once ({e}): killed, or out of "
                "memory; give the workers more memory or lower --partition-mb"), EXIT_FAILED
    if kind in ("CommClosedError", "FutureCancelledError") or (
            isinstance(e, (OSError, TimeoutError)) and "scheduler" in str(e).lower()):
        return (f"lost the Dask scheduler or its workers ({kind}: {e}); check that the "
                "scheduler and the workers are running"), EXIT_FAILED
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        fix = ("free space there" if e.errno == errno.ENOSPC else
               "check that path and its permissions")
        return f"{e.strerror or e}{where}; {fix}", EXIT_FAILED
    return (f"internal error: {kind}: {e} (run with -v for the traceback, and report it)",
            EXIT_FAILED)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (EX_USAGE), not 2 (which means partial)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"dsaccess: error: {message}\n")


# Libraries whose INFO and DEBUG lines are theirs, not ours: shown only with -vv.
NOISY = ("distributed", "dask", "paramiko", "fsspec", "asyncio", "tornado", "bokeh")


def set_up_logging(verbose: int) -> None:
    """-v: dsaccess's own debug lines (plan, stages, tasks, files); -vv: every library's."""
    logging.basicConfig(level=logging.DEBUG if verbose >= 2 else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if verbose >= 1:
        logging.getLogger("pipeline").setLevel(logging.DEBUG)
    if verbose < 2:
        for name in NOISY:  # distributed logs every scheduler and worker start at INFO
            logging.getLogger(name).setLevel(logging.ERROR if name == "distributed"
                                             else logging.WARNING)
        # an interrupted gather leaves a task of Dask's client whose exception asyncio
        # reports at ERROR on the way out: noise, after "dsaccess: interrupted"
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if verbose < 1:
        # paramiko logs every failed connection at ERROR with its traceback (30 lines a
        # server that does not speak SSH); the failure is the server's one line in
        # collect's table, or the run's problem: its traceback only with -v
        logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dsaccess",
        description="Analyse 389 Directory Server access logs: who loads the directory, "
                    "with which queries, how slowly.")
    parser.add_argument("--version", action="version", version=f"dsaccess {__version__}")
    verbose = {"action": "count", "help": "dsaccess's debug messages (-vv: also Dask's, "
                                          "paramiko's and the CEL interpreter's)"}
    parser.add_argument("-v", "--verbose", default=0, **verbose)
    # -v also after the command (`dsaccess run -v ...`); SUPPRESS keeps the one given before
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", default=argparse.SUPPRESS, **verbose)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = sub.add_parser

    def with_common(*a: Any, **k: Any) -> argparse.ArgumentParser:
        return add_parser(*a, parents=[common], **k)
    sub.add_parser = with_common  # type: ignore[method-assign]

    run = sub.add_parser(
        "run", help="parse, join and summarise access logs into OUT",
        description="Parse access logs, join each request with its RESULT, track bind "
                    "identities, and write Parquet tables and summary.json into OUT.")
    run.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="a fleet directory (one sub-directory per server), a server's log "
                          "directory, or NAME=PATH")
    run.add_argument("-o", "--out", required=True,
                     help="output directory: a path, or a URL fsspec writes (sftp://user@host"
                          "/path, s3://bucket/path, ...) for workers that share no disk")
    _reading_options(run, "beside OUT")
    run.add_argument("--since", help="only events at or after this time (ISO 8601 or "
                                     "26/Nov/2026:16:20:10 +0000)")
    run.add_argument("--until", help="only events before this time")
    run.add_argument("--server", action="append", default=[], metavar="NAME",
                     help="only this server (repeatable)")
    run.add_argument("--threads", action="append", default=[], metavar="NAME=N",
                     help="server NAME has N worker threads (nsslapd-threadnumber; "
                          "repeatable), for servers that do not log their pool (before "
                          "389 DS 3.2.1 or without nsslapd-statlog-level bit 2)")
    run.add_argument("--sort-operands", action="store_true",
                     help="fingerprint &/| operands in canonical order")
    run.add_argument("--operations", choices=OPERATIONS, default="parquet",
                     help="write every operation as OUT/operations/*.parquet (default), as "
                          "OUT/operations.jsonl, or not at all (a scheduled report needs only "
                          "the aggregates: the summary and report are the same)")
    run.add_argument("--jsonl", action="store_true",
                     help="also write OUT/operations.jsonl, whatever --operations says")
    run.add_argument("--histocrutch", action="store_true",
                     help="also one gauge per histogram bucket in metrics.prom")
    run.add_argument("--workloads", type=Path, metavar="FILE",
                     help="workload classes as CEL rules (default: the built-in classes, "
                          "the same as conf/workloads.yaml)")
    run.add_argument("--force", action="store_true",
                     help="replace OUT even when the run has warnings (over 1%% of lines "
                          "rejected, no event in the window, a workload rule failing)")
    noise = run.add_mutually_exclusive_group()
    noise.add_argument("--progress", action="store_true", default=None,
                       help="show progress even when not on a terminal")
    noise.add_argument("--quiet", action="store_true", help="no progress, no summary table")
    run.set_defaults(func=cmd_run)

    col = sub.add_parser(
        "collect", help="copy access logs from servers over SSH/SFTP into a staging folder",
        description="Copy each configured server's access logs into STAGE/<server>/, "
                    "incrementally and verified (MANIFEST.json), checking host keys.")
    col.add_argument("-c", "--config", required=True, type=Path,
                     help="servers file (see conf/servers.yaml)")
    col.add_argument("-s", "--stage", required=True, type=Path, help="staging directory")
    col.add_argument("--accept-new-host-keys", action="store_true",
                     help="record unknown host keys in known_hosts (a changed key is still "
                          "refused)")
    col.add_argument("--since", help="skip rotated files older than this time (by the stamp in "
                                     "their name, in the server's local time)")
    col.add_argument("--parallel", type=int, default=4, help="servers at once (default 4)")
    col.add_argument("--quiet", action="store_true", help="no progress, no table")
    col.set_defaults(func=cmd_collect)

    merge = sub.add_parser(
        "merge", help="combine the aggregates of several runs (e.g. seven days into a week)",
        description="Combine summary.json and the fingerprint, workload and timeseries tables "
                    "of several runs into OUT, without reading any log again.")
    merge.add_argument("runs", nargs="+", metavar="RUN_DIR", help="outputs of dsaccess run")
    merge.add_argument("-o", "--out", required=True, type=Path, help="output directory")
    merge.add_argument("--quiet", action="store_true", help="no summary table")
    merge.add_argument("--histocrutch", action="store_true",
                       help="also one gauge per histogram bucket in metrics.prom")
    merge.set_defaults(func=cmd_merge)

    rep = sub.add_parser(
        "report", help="rewrite report.html and metrics.prom of a run or merge output",
        description="Regenerate OUT/report.html and OUT/metrics.prom from OUT's aggregates, "
                    "or print a logconv-style summary with --text.")
    rep.add_argument("out", type=Path, metavar="OUT", help="a run or merge output folder")
    rep.add_argument("--text", action="store_true", help="print the logconv-style summary")
    rep.add_argument("--show-examples", action="store_true",
                     help="show one raw example filter per fingerprint (values are hidden by "
                          "default: they identify people)")
    rep.add_argument("--histocrutch", action="store_true",
                     help="also one gauge per histogram bucket (…_bucket_le_0_01), for metric "
                          "stores without a histogram type")
    rep.set_defaults(func=cmd_report)

    exp = sub.add_parser(
        "exporter", help="serve Prometheus metrics from each server's cn=monitor, live",
        description="Serve /metrics (read at each scrape from every server's cn=monitor, its "
                    "snmp and backend monitor entries, with the live connections counted by "
                    "workload class) and a status page /.")
    exp.add_argument("-c", "--config", required=True, type=Path,
                     help="servers file; the servers with an 'ldap' block are read")
    exp.add_argument("--workloads", type=Path, metavar="FILE",
                     help="workload classes as CEL rules over the live variables (default: "
                          "the built-in classes that need only them)")
    exp.add_argument("--listen", default="127.0.0.1:9389", metavar="HOST:PORT",
                     help="address to serve on (default 127.0.0.1:9389)")
    exp.add_argument("--histocrutch", action="store_true",
                     help="also one gauge per histogram bucket")
    exp.add_argument("--web-config", type=Path, metavar="FILE",
                     help="TLS and basic auth for /metrics, in the Prometheus "
                          "exporter-toolkit format (tls_server_config, basic_auth_users)")
    exp.add_argument("--once", action="store_true",
                     help="print one scrape's metrics and exit (2 when a server is down)")
    exp.set_defaults(func=cmd_exporter)

    cmp = sub.add_parser(
        "compare", help="two periods side by side: what got slower, busier, new or gone",
        description="Compare two run or merge outputs (BASE, then NEW) per fingerprint, "
                    "workload class, bind DN, verb and server, per hour; rank regressions "
                    "and improvements; write OUT/compare.json, compare_*.parquet and "
                    "compare.html, or print them with --text.")
    cmp.add_argument("base", type=Path, metavar="BASE", help="the earlier output")
    cmp.add_argument("new", type=Path, metavar="NEW", help="the later output")
    cmp.add_argument("-o", "--out", type=Path, help="output directory (else --text)")
    cmp.add_argument("--text", action="store_true", help="print the ranked lists")
    cmp.add_argument("--fail-on", action="append", default=[], metavar="THRESHOLD",
                     help="exit 2 when a fingerprint, bind DN or workload crosses it: "
                          "'p95>1.5x', 'rate>2x', 'etime>2x', 'errors>3x'")
    cmp.add_argument("--min-count", type=int, default=None, metavar="N",
                     help="operations a row needs on a side to rank or cross (default 20)")
    cmp.set_defaults(func=cmd_compare)

    tr = sub.add_parser(
        "trace", help="an identity's, a client's, a connection's or an entry's operations, "
                      "in time order across the fleet",
        description="Print the operations that match every selector given (a selector "
                    "repeated matches any of its values), in time order, with each matched "
                    "connection's open, close and BINDs: from OUT (a run made with "
                    "--operations parquet or jsonl), or from logs (INPUTs as for run), "
                    "reading only the connections that can match. Exit 1 when nothing "
                    "matched.")
    tr.add_argument("sources", nargs="+", metavar="OUT|INPUT",
                    help="a run's output folder, or access logs as for run")
    tr.add_argument("--bind-dn", action="append", default=[], metavar="DN",
                    help="operations issued under this identity, and BINDs that tried it "
                         "(compared as LDAP compares DNs)")
    tr.add_argument("--client-ip", action="append", default=[], metavar="IP",
                    help="an address or a network (10.1.2.0/24)")
    tr.add_argument("--conn", action="append", default=[], metavar="SERVER:CONN",
                    help="one connection of one server")
    tr.add_argument("--target", action="append", default=[], metavar="DN",
                    help="the entry operated on, or a search's base")
    tr.add_argument("--subtree", action="store_true",
                    help="--target matches the entries below it too")
    tr.add_argument("--filter-value", action="append", default=[], metavar="TEXT",
                    help="searches whose filter contains TEXT (any case)")
    tr.add_argument("--verb", action="append", default=[], metavar="VERB",
                    help="SRCH, MOD, BIND, ...")
    tr.add_argument("--err", action="append", default=[], type=int, metavar="CODE",
                    help="result code (49: invalidCredentials)")
    tr.add_argument("--min-etime", type=float, metavar="SECONDS",
                    help="operations that took at least this long")
    tr.add_argument("--since", metavar="TIME", help="from this time (as for run)")
    tr.add_argument("--until", metavar="TIME", help="before this time (as for run)")
    tr.add_argument("--server", action="append", default=[], metavar="NAME",
                    help="only this server")
    tr.add_argument("--format", choices=TRACE_FORMATS, default="table",
                    help="table (the terminal, default), jsonl, csv or parquet")
    tr.add_argument("-o", "--output", type=Path, metavar="FILE",
                    help="write the rows to FILE (needed for parquet; jsonl and csv go to "
                         "standard output without it)")
    _reading_options(tr, "the system's temporary folder")
    noise = tr.add_mutually_exclusive_group()
    noise.add_argument("--progress", action="store_true", default=None,
                       help="show the progress of a trace of logs even when not on a terminal")
    noise.add_argument("--quiet", action="store_true",
                       help="no progress, no closing line (the rows are still written)")
    tr.set_defaults(func=cmd_trace)

    fp = sub.add_parser(
        "fingerprint", help="print the fingerprint of LDAP filters",
        description="Print one fingerprint per filter (arguments, or one per line on stdin).")
    fp.add_argument("filters", nargs="*", metavar="FILTER")
    fp.add_argument("--sort-operands", action="store_true",
                    help="order &/| operands canonically and fold attribute case")
    fp.add_argument("--scope", choices=tuple(SCOPES.values()),
                    help="the searches' scope, which a run's fingerprints begin with")
    fp.add_argument("--id", action="store_true", help="also print the fingerprint id")
    fp.set_defaults(func=cmd_fingerprint)
    return parser


OPERATIONS = ("parquet", "jsonl", "none")


def operation_formats(choice: str, jsonl: bool) -> tuple[str, ...]:
    """The formats the operations are written in: ``--operations`` and ``--jsonl``.

    >>> operation_formats("parquet", True), operation_formats("none", False)
    (('parquet', 'jsonl'), ())
    """
    chosen = () if choice == "none" else (choice,)
    return chosen + (("jsonl",) if jsonl and "jsonl" not in chosen else ())


def _threads(given: list[str]) -> tuple[tuple[str, int], ...]:
    """``--threads NAME=N`` values → (server, workers) pairs."""
    out: dict[str, int] = {}
    for value in given:
        name, _, n = value.partition("=")
        if not name or not n.isdigit() or int(n) < 1:
            raise ConfigError(f"--threads: not NAME=N with N a number of threads from 1: "
                              f"{value!r} (e.g. --threads ldap1=16)")
        out[name] = int(n)
    return tuple(sorted(out.items()))


def _reading_options(parser: argparse.ArgumentParser, scratch_default: str) -> None:
    """How logs are read, for run and for trace from logs: where the job runs, how it is
    cut, where the shuffle goes, the SSH settings of sftp:// inputs."""
    parser.add_argument("--scratch", metavar="DIR",
                        help="where the shuffle's files go (a path or URL every worker reaches; "
                             "default: " + scratch_default + ", removed at the end)")
    parser.add_argument("--scheduler", help="tcp://host:8786 for an existing Dask cluster, or "
                                            "'synchronous' for one process (default: a local "
                                            "cluster sized to this machine)")
    parser.add_argument("--workers", type=int,
                        help="tasks at once on the local cluster (default: CPU count)")
    parser.add_argument("--worker-processes", action="store_true",
                        help="run the local cluster's tasks in worker processes, not in "
                             "threads of this one")
    parser.add_argument("--partition-mb", type=int, default=64,
                        help="MB of log per parse task, and target size of one bucket of "
                             "parsed events (default 64); smaller bounds worker memory")
    parser.add_argument("--known-hosts", default="~/.ssh/known_hosts",
                        help="known_hosts for sftp:// inputs (default ~/.ssh/known_hosts)")
    parser.add_argument("--key-file", help="private key for sftp:// inputs and outputs (default: "
                                           "SSH agent)")
    parser.add_argument("--worker-timeout", type=float, default=60, metavar="SECONDS",
                        help="fail when the Dask cluster has had no worker for this long "
                             "(default 60)")


def _check_reading(args: argparse.Namespace) -> None:
    """The options of ``_reading_options``, each what it takes, or a usage error."""
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1: {args.workers}")
    if (args.workers is not None or args.worker_processes) and args.scheduler:
        flag = "--workers" if args.workers is not None else "--worker-processes"
        raise ConfigError(f"{flag} shapes the local cluster; drop it with --scheduler")
    if args.partition_mb < 1:
        raise ConfigError(f"--partition-mb must be at least 1: {args.partition_mb}")
    if not args.worker_timeout > 0:
        raise ConfigError(f"--worker-timeout must be more than 0 s: {args.worker_timeout}")


def cmd_run(args: argparse.Namespace) -> int:
    from .engine.plan import RunOptions
    from .engine.run import run

    _check_reading(args)
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    if since is not None and until is not None and until <= since:
        raise ConfigError("--until must be after --since")
    threads = _threads(args.threads)
    progress = bool(args.progress) or (not args.quiet and sys.stderr.isatty())
    workloads = load_workloads(args.workloads)
    started = time.perf_counter()
    opts = RunOptions(
        inputs=tuple(args.inputs), out=args.out, scheduler=args.scheduler,
        workers=args.workers, worker_processes=args.worker_processes, since_ns=since,
        until_ns=until, servers=tuple(args.server),
        partition_mb=args.partition_mb, sort_operands=args.sort_operands,
        operations=operation_formats(args.operations, args.jsonl),
        progress=progress, workloads=workloads, histocrutch=args.histocrutch,
        storage_options=_ssh_options(args.known_hosts, args.key_file), force=args.force,
        worker_timeout=args.worker_timeout, scratch=args.scratch, threads=threads,
    )
    display = RunProgress() if progress else None
    try:
        result = run(opts, display)
    finally:
        if display is not None:
            display.close()
    if not args.quiet and result.published:
        print_summary(result.summary, result.tables, args.out)
    _print_findings(result.problems, result.warnings)
    if not result.published:
        print(f"dsaccess: warning: kept the previous output in {args.out} because of the "
              "warnings above; --force replaces it", file=sys.stderr)
    if not args.quiet:
        print(done_line(time.perf_counter() - started, result.bytes, result.summary),
              file=sys.stderr)
    return EXIT_PARTIAL if result.problems or result.warnings else EXIT_OK


def _ssh_options(known_hosts: str, key_file: str | None) -> dict:
    options: dict = {"known_hosts": known_hosts}
    if key_file:
        if not Path(key_file).expanduser().is_file():
            raise ConfigError(f"--key-file: not found: {key_file}")
        options["key_filename"] = str(Path(key_file).expanduser())
    return options


def cmd_collect(args: argparse.Namespace) -> int:
    from .config import load_servers
    from .sources.collect import collect

    if args.parallel < 1:
        raise ConfigError(f"--parallel must be at least 1: {args.parallel}")
    since = parse_time(args.since, "--since") if args.since else None
    servers = load_servers(args.config)
    show = not args.quiet and sys.stderr.isatty()
    outcomes = collect(servers, args.stage, accept_new_host_keys=args.accept_new_host_keys,
                       since=since, parallel=args.parallel,
                       progress=_progress_printer() if show else None)
    if show:
        print(file=sys.stderr)  # end the progress line
    failed = [o for o in outcomes if not o.ok]
    partial = [o for o in outcomes if not o.ok or o.refused]
    if not args.quiet or partial:
        for o in outcomes:  # one line a server; a traceback only with -v
            line = f"{o.server:20s} {'ok' if o.ok else 'FAILED':6s} "
            if o.error and not o.fetched and not o.refused:
                line += printable(o.error)
            else:
                line += f"fetched {len(o.fetched)} files, {o.bytes:,} bytes; unchanged {o.skipped}"
                if o.refused:  # remote names, escaped: a name cannot fake a line of this table
                    line += f"; refused {', '.join(printable(r) for r in o.refused)}"
                if o.error:
                    line += f"; then {printable(o.error)}"
            print(line, file=sys.stderr if partial else sys.stdout)
    if len(failed) == len(outcomes):
        return EXIT_FAILED
    return EXIT_PARTIAL if partial else EXIT_OK


def _progress_printer():  # type: ignore[no-untyped-def]
    totals: dict[str, int] = {}

    def show(server: str, n: int) -> None:
        totals[server] = totals.get(server, 0) + n
        text = "  ".join(f"{s} {b / 2**20:,.1f} MB" for s, b in sorted(totals.items()))
        print(f"\r{text}", end="", file=sys.stderr, flush=True)
    return show


def _print_findings(problems: list[Any], warnings: list[str]) -> None:
    """What made a run or merge partial or suspect, a line each, escaped."""
    for problem in problems:
        print(f"dsaccess: warning: {problem_text(problem)}", file=sys.stderr)
    for warning in warnings:
        print(f"dsaccess: warning: {printable(warning)}", file=sys.stderr)


def cmd_merge(args: argparse.Namespace) -> int:
    from .outputs.merge import merge_runs

    summary, tables = merge_runs([Path(r) for r in args.runs], args.out, args.histocrutch)
    if not args.quiet:
        print_summary(summary, tables, args.out)
    _print_findings(summary.get("problems", []), summary.get("warnings", []))
    # a merge of runs that had problems is partial too
    return EXIT_PARTIAL if summary.get("problems") or summary.get("warnings") else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .outputs.report import regenerate, text_summary

    if args.text:
        print(text_summary(args.out, args.show_examples), end="")
        return EXIT_OK
    regenerate(args.out, args.histocrutch, args.show_examples)
    print(f"wrote {args.out / 'report.html'} and {args.out / 'metrics.prom'}")
    return EXIT_OK


def cmd_exporter(args: argparse.Namespace) -> int:
    from .config import load_servers
    from .live.exporter import Exporter, serve

    for module, package in (("ldap", "python-ldap"), ("prometheus_client", "prometheus-client")):
        try:
            __import__(module)
        except ImportError:  # an install without the extra: say so now, not per scrape
            print(f"dsaccess: error: the exporter needs {package}: pip install "
                  "'dsaccess[exporter]' (python-ldap builds against libldap-dev and "
                  "libsasl2-dev)", file=sys.stderr)
            return EXIT_UNAVAILABLE

    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen: not HOST:PORT: {args.listen!r} (e.g. 127.0.0.1:9389)")
    servers = load_servers(args.config, need="ldap")
    rules = load_workloads(args.workloads, live=True)
    web = None
    if args.web_config is not None:
        from .live.webconfig import load_web_config
        web = load_web_config(args.web_config)
    exporter = Exporter(servers, rules, args.histocrutch)
    if args.once:
        sys.stdout.write(exporter.metrics().decode())
        down = [r for r in exporter.last.values() if not r.ok]
        for r in down:
            print(f"dsaccess: warning: {r.server}: {printable(r.error)}", file=sys.stderr)
        return EXIT_PARTIAL if down else EXIT_OK
    address = host.strip("[]") or "127.0.0.1"
    try:
        httpd = serve(exporter, address, int(port), web)
    except OSError as e:
        raise ConfigError(f"--listen: cannot listen on {args.listen}: {e.strerror}") from None
    if web is None and not _loopback(address):
        print(f"dsaccess: warning: listening on {args.listen} without --web-config: anyone "
              "who reaches it reads the servers' names, load and workloads (give TLS and "
              "basic_auth_users in a web config)", file=sys.stderr)
    scheme = "https" if web is not None and web.tls is not None else "http"
    print(f"dsaccess exporter: {len(servers)} servers, {scheme}://{args.listen}/metrics",
          file=sys.stderr)
    httpd.serve_forever()
    return EXIT_OK


def _loopback(host: str) -> bool:
    """
    >>> _loopback("127.0.0.1"), _loopback("::1"), _loopback("localhost"), _loopback("0.0.0.0")
    (True, True, True, False)
    """
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


UNPARSED = "<unparsed:"  # the fingerprint of a filter that does not parse (ARCHITECTURE §4)


def cmd_compare(args: argparse.Namespace) -> int:
    from .forensic.compare import MIN_COUNT, Threshold
    from .forensic.compare_out import run_compare, text, write_compare

    thresholds = [Threshold.parse(t) for t in args.fail_on]
    min_count = MIN_COUNT if args.min_count is None else args.min_count
    if min_count < 1:
        raise ConfigError(f"--min-count must be at least 1: {min_count}")
    if args.out is not None:
        from .outputs.files import check_target
        check_target(args.out, [args.base, args.new])
    result = run_compare(args.base, args.new, thresholds, min_count)
    if args.out is not None:
        write_compare(args.out, result)
        print(f"wrote {args.out / 'compare.html'}")
    if args.text or args.out is None:
        print(text(result["doc"]), end="")
    for line in result["doc"]["crossed"]:
        print(f"dsaccess: crossed {line}", file=sys.stderr)
    return EXIT_PARTIAL if result["doc"]["crossed"] else EXIT_OK


TRACE_FORMATS = ("table", "jsonl", "csv", "parquet")


def cmd_trace(args: argparse.Namespace) -> int:
    from .forensic.trace import Selectors, closing_line, parse_conn, write_rows

    form = args.format
    if form == "table" and args.output is not None:  # -o rows.csv: the file's kind
        form = args.output.suffix.lstrip(".").replace("ndjson", "jsonl")
        if form not in TRACE_FORMATS[1:]:
            raise ConfigError(f"-o {args.output}: give --format jsonl, csv or parquet (or "
                              "a file name ending in one of them)")
    if form == "parquet" and args.output is None:
        raise ConfigError("--format parquet: needs -o FILE")
    selectors = Selectors(
        bind_dns=tuple(args.bind_dn), client_ips=tuple(args.client_ip),
        conns=tuple(parse_conn(c) for c in args.conn), targets=tuple(args.target),
        subtree=args.subtree, filter_values=tuple(args.filter_value), verbs=tuple(args.verb),
        errs=tuple(args.err), min_etime=args.min_etime,
        since_ns=parse_time(args.since, "--since") if args.since else None,
        until_ns=parse_time(args.until, "--until") if args.until else None,
        servers=tuple(args.server)).check()
    rows, problems = _trace_rows(args, selectors)
    if form == "table":
        from .outputs.terminal import print_trace
        print_trace(rows)
    else:
        write_rows(rows, form, args.output)
    if not args.quiet:
        print(f"dsaccess: {closing_line(rows)}", file=sys.stderr)
    _print_findings(problems, [])
    if problems:  # (the rows are the other inputs': "nothing matched" is not known)
        return EXIT_PARTIAL
    return EXIT_OK if rows["match"].any() else EXIT_FAILED


def _trace_rows(args: argparse.Namespace, selectors: Any) -> tuple[Any, list[Any]]:
    """The trace's rows, from a run's OUT (one folder with run.json), else from logs, and
    the inputs that could not be read."""
    from .forensic.trace import is_output, trace

    if len(args.sources) == 1 and is_output(Path(args.sources[0])):
        return trace(Path(args.sources[0]), selectors), []
    from .engine.plan import RunOptions
    from .engine.run import trace_logs

    _check_reading(args)
    opts = RunOptions(
        inputs=tuple(args.sources), out="", scheduler=args.scheduler, workers=args.workers,
        worker_processes=args.worker_processes, servers=selectors.servers,
        partition_mb=args.partition_mb,
        storage_options=_ssh_options(args.known_hosts, args.key_file),
        worker_timeout=args.worker_timeout, scratch=args.scratch)
    progress = bool(args.progress) or (not args.quiet and sys.stderr.isatty())
    display = RunProgress(stages=TRACE_STAGES) if progress else None
    try:
        result = trace_logs(opts, selectors, display)
    except NoLogsError as e:
        if len(args.sources) > 1:
            raise
        raise NoLogsError(f"not the output of dsaccess run (no run.json), nor access logs: "
                          f"{args.sources[0]} ({e})") from None
    finally:
        if display is not None:
            display.close()
    return result.rows, result.problems


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from .fingerprint import fingerprint, fingerprint_id

    filters = args.filters or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    failed = False
    scope = None if args.scope is None else {v: k for k, v in SCOPES.items()}[args.scope]
    for text in filters:
        fp = fingerprint(text, sort_operands=args.sort_operands, scope=scope)
        print(f"{fingerprint_id(fp)}  {fp}" if args.id else fp)
        if UNPARSED in fp:  # still printed: a run counts it under that name
            reason = fp.split(UNPARSED, 1)[1].removesuffix(">")
            print(f"dsaccess: not an LDAP filter ({reason}): {printable(text)[:200]}",
                  file=sys.stderr)
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def parse_time(text: str, flag: str) -> int:
    """ISO 8601 or 389's ``26/Nov/2026:16:20:10[.nnnnnnnnn] +0000`` → UTC nanoseconds.

    >>> parse_time("2026-11-26T16:20:10Z", "--since")
    1795710010000000000
    >>> parse_time("[26/Nov/2026:11:20:10 -0500]", "--since")
    1795710010000000000
    """
    value = text.strip()
    try:
        return _core.parse_stamp(value)[0]  # the tokenizer's own reading of 389's form
    except ValueError as e:
        if not str(e).startswith("not a 389 timestamp"):  # its shape, an impossible value
            raise ConfigError(f"{flag}: {e}: {text!r}") from None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag}: not a time: {text!r} (use 2026-11-26T16:20:10Z or "
                          "26/Nov/2026:16:20:10 +0000)") from None
    if dt.tzinfo is None:  # the servers log in their own zones: say which one this is
        dt = dt.replace(tzinfo=UTC)
        print(f"dsaccess: {flag} {text.strip()}: no UTC offset given, read as UTC "
              f"(write {dt.replace(tzinfo=None).isoformat()}+01:00, say, for another zone)",
              file=sys.stderr)
    whole = int(dt.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + dt.microsecond * 1000
