"""What ``run`` and ``merge`` print: the progress while a run (or a trace of logs) works,
one closing line, and a summary that fits a 50-line terminal (the rest: ``dsaccess
report OUT --text``).

Times are in milliseconds in every table here, as in the HTML report.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..names import err_name, ms, problem_text, when
from ..tables import frames
from . import views

TOP = 5
SUMMARY_LINES = 50
# (stage, label) in the order they run; "write" is done when the display closes
RUN_STAGES = (("parse", "parse + shuffle"), ("join", "join + enrich"),
              ("aggregate", "aggregate"), ("write", "write outputs"))
TRACE_STAGES = (("suspects", "find connections"), ("parse", "parse + shuffle"),
                ("join", "join + select"))


class RunProgress:
    """The stage, the bytes and lines done, MB/s and an ETA, on stderr (rich)."""

    def __init__(self, console: Console | None = None,
                 stages: tuple[tuple[str, str], ...] = RUN_STAGES) -> None:
        self.console = console or Console(stderr=True)
        self.stages = stages
        self.progress = Progress(TextColumn("{task.description:<16}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                                 TimeRemainingColumn(), console=self.console)
        self.tasks: dict[str, Any] = {}
        self.lock = threading.Lock()  # events arrive on the Dask client's thread
        self.bytes = self.lines = self.operations = 0
        self.started = time.perf_counter()

    def planned(self, tasks: dict[str, int], bytes_: int) -> None:
        with self.lock:
            if not self.tasks:
                self.progress.start()
            for stage, label in self.stages:
                if stage in tasks:
                    self.tasks[stage] = self.progress.add_task(
                        label, total=max(tasks[stage], 1), detail="")

    def event(self, message: dict[str, Any]) -> None:
        stage = message.get("stage")
        with self.lock:
            if stage not in self.tasks:
                return
            seconds = max(time.perf_counter() - self.started, 1e-9)
            if stage == "parse":
                self.bytes += int(message.get("bytes", 0))
                self.lines += int(message.get("lines", 0))
                detail = (f"{self.bytes / 1e6:,.0f} MB, {_count(self.lines)} lines, "
                          f"{self.bytes / 1e6 / seconds:,.1f} MB/s")
            elif stage == "join":
                self.operations += int(message.get("operations", 0))
                detail = f"{_count(self.operations)} operations"
            else:
                detail = ""
            self.progress.update(self.tasks[stage], advance=1, detail=detail)

    def stage(self, name: str) -> None:
        with self.lock:
            for stage, _ in self.stages:  # every task before this stage is done
                if stage == name:
                    break
                if stage in self.tasks:
                    task = self.progress.tasks[self.tasks[stage]]
                    self.progress.update(task.id, completed=task.total)

    def close(self) -> None:
        with self.lock:
            if "write" in self.tasks:
                self.progress.update(self.tasks["write"], completed=1)
            self.progress.stop()


def _count(n: int) -> str:
    """``2_100_000`` → ``2.1 M``."""
    for limit, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:,.1f} {unit}"
    return f"{n:,}"


def done_line(seconds: float, bytes_: int, summary: dict[str, Any]) -> str:
    """``done in 15.2 s: 316 MB, 2.1 M lines, 20.8 MB/s; 0 rejected``."""
    lines = summary["lines"]
    rate = bytes_ / 1e6 / max(seconds, 1e-9)
    return (f"done in {seconds:,.1f} s: {bytes_ / 1e6:,.0f} MB, {_count(lines['total'])} lines, "
            f"{rate:,.1f} MB/s; {lines['rejected']:,} rejected")


def print_summary(summary: dict[str, Any], tables: dict[str, frames.Table], out: str | Path,
                  console: Console | None = None) -> None:
    """Accounting first, then what an operator looks at first; at most 50 lines. On a
    terminal every line fits its width (columns of least use dropped, DNs and filters
    shortened in the middle); elsewhere (a file, a pipe, a CI log) nothing is cut."""
    console = console or summary_console()
    lines, ops = summary["lines"], summary["operations"]
    peak_rate, _ = views.fleet_peak_rate(tables)
    first, last = summary["time_range"]["first"], summary["time_range"]["last"]
    console.print(f"wrote {_esc(str(out))}")
    console.print(
        f"lines {lines['total']:,}: parsed {lines['parsed']:,}, "
        + (f"outside the window {lines['outside_window']:,}, " if lines["outside_window"]
           else "")
        + f"rejected {lines['rejected']:,}, header {lines['header']:,}, blank {lines['blank']:,}")
    console.print((f"{when(first)} to {when(last)} UTC" if first else "no events")
                  + f"; servers {len(summary['servers'])}, "
                  f"connections {summary['connections']:,} (fleet peak concurrent "
                  f"{summary['peak_connections']:,}), restarts {summary['restarts']:,}; "
                  f"fleet peak {peak_rate:,.1f} ops/s")
    s = summary["searches"]
    console.print(f"operations {ops['total']:,}; abandoned {summary.get('abandoned', 0):,}; "
                  f"unmatched requests {summary['unmatched']['requests']:,}, results "
                  f"{summary['unmatched']['results']:,}; searches unindexed {s['unindexed']:,}, "
                  f"partially {s['partially_unindexed']:,}, paged {s['paged']:,}")
    if "saturation" in summary:
        console.print("worker pool: " + views.pool_sentence(summary, tables))
    console.print(_verbs(console, summary, tables))
    fps = tables.get("fingerprints")
    if fps is not None and fps.height:
        rows = []
        for r in fps.sort("etime_sum", "fingerprint", descending=[True, False]).head(TOP) \
                .iter_rows(named=True):
            mark = ("A ", "bold red") if r["unindexed"] else (
                ("U ", "") if r["partially_unindexed"] else ("", ""))
            rows.append([(*mark, r["fingerprint"]), f"{r['count']:,}", ms(float(r["etime_sum"])),
                         ms(r["etime_p95"]), f"{r['unindexed']:,}", f"{r['bind_dns']:,}"])
        console.print(_fitted(console, "top search fingerprints by total etime (A: unindexed, "
                              "U: partially)", ("fingerprint", "searches", "etime total (ms)",
                                                "p95 (ms)", "unindexed", "bind DNs"),
                              rows, drop=(5, 4, 3)))
    dns = views.bind_dns(tables, TOP)
    if dns.height:
        rows = [[("", "", views.dn_text(r["bind_dn"])), f"{r['count']:,}", ms(r["etime_sum"]),
                 f"{r['errors']:,}"] for r in dns.iter_rows(named=True)]
        console.print(_fitted(console, "top bind DNs by operations",
                              ("bind DN", "operations", "etime total (ms)", "errors"), rows,
                              drop=(3,)))
    failed = views.failed_binds(tables, 3)
    if failed.height:
        rows = [[("", "", views.target_text(r["dn"])), f"{r['failed']:,}", r["codes"]]
                for r in failed.iter_rows(named=True)]
        console.print(_fitted(console, "failed binds by the DN they tried",
                              ("target DN", "failed", "codes"), rows, drop=(2,)))
    errors = {k: v for k, v in summary["results"]["by_err"].items() if not views.outcome(k)}
    if errors:
        ranked = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))
        entries = [f"{err_name(k)} {v:,}" for k, v in ranked[:6]]
        if len(ranked) > 6:
            entries[-1] += f" and {len(ranked) - 6} more"
        _print_entries(console, "failed results: ", entries)
    for problem in summary.get("problems", [])[:5]:
        console.print(f"[yellow]problem:[/] {_esc(problem_text(problem))}")
    console.print(f"details: dsaccess report {_esc(str(out))} --text; "
                  f"{_esc(str(out).rstrip('/') + '/report.html')}")


FULL_WIDTH = 10_000  # not a terminal: no line is cut or wrapped
MIN_TEXT = 24        # the shortest a DN or filter column is cut to before it is left wider


def summary_console() -> Console:
    """Standard output, at the terminal's width; unlimited when it is not a terminal."""
    terminal = Console().is_terminal
    return Console(highlight=False, soft_wrap=False, width=None if terminal else FULL_WIDTH)


def _fitted(console: Console, title: str, headers: tuple[str, ...], rows: list[list[Any]],
            drop: tuple[int, ...]) -> Table:
    """A table no wider than the console: the columns in ``drop`` go first, in that order,
    then the first column's texts are shortened in the middle (a DN's start and its
    suffix both say whose it is), but not below ``MIN_TEXT``."""
    keep = list(range(len(headers)))

    def build(text_width: int | None = None) -> Table:
        table = _table(title, tuple(headers[i] for i in keep))
        for row in rows:
            mark, style, text = row[0]
            cell = Text.assemble((mark, style), middle(text, text_width) if text_width else text)
            table.add_row(cell, *(Text(row[i]) for i in keep[1:]))  # (not rich markup)
        return table

    table = build()
    for column in drop:
        if _width(console, table) <= console.width:
            break
        keep.remove(column)
        table = build()
    over = _width(console, table) - console.width
    if over > 0:
        longest = max(len(r[0][2]) for r in rows)
        table = build(max(MIN_TEXT, longest - over))
    return table


def middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by "…".

    >>> middle("uid=svc-reporting-batch,ou=services,dc=example,dc=com", 30)
    'uid=svc-reporti…example,dc=com'
    """
    if len(text) <= width:
        return text
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def _width(console: Console, table: Table) -> int:
    """The table's natural width (rich's own measure stops at the console's, and then
    cuts every column with an ellipsis, numbers too)."""
    return Measurement.get(console, console.options.update_width(FULL_WIDTH), table).maximum


def _print_entries(console: Console, lead: str, entries: list[str]) -> None:
    """``lead`` and the entries, comma-separated, wrapped between entries only: an entry
    ("16 noSuchAttribute 5") is never split across lines."""
    line = lead
    for k, entry in enumerate(entries):
        piece = entry + ("," if k < len(entries) - 1 else "")
        if line.strip() and len(line) + len(piece) > console.width and line != lead:
            console.print(_esc(line.rstrip()))
            line = "  "
        line += piece + " "
    console.print(_esc(line.rstrip()))


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(col, overflow="ellipsis", no_wrap=True,
                         justify="left" if i == 0 or col == "codes" else "right")
    return table


def _verbs(console: Console, summary: dict[str, Any], tables: dict[str, frames.Table]) -> Table:
    """Operations, errors and p95 per verb, the verbs by operations; those of least use
    left out (and counted in the title) when the console is too narrow for all."""
    rows = views.verbs(summary, tables)
    for shown in range(rows.height, 0, -1):
        part = rows.head(shown)
        title = "operations by verb" + (f" ({rows.height - shown} more in the report)"
                                        if shown < rows.height else "")
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("")
        for verb in part["verb"]:
            table.add_column(verb, justify="right", no_wrap=True)
        table.add_row("operations", *(f"{n:,}" for n in part["operations"]))
        table.add_row("errors", *(f"{n:,}" for n in part["errors"]))
        table.add_row("etime p95 (ms)", *(ms(v) for v in part["etime_p95"]))
        if _width(console, table) <= console.width:
            break
    return table


def _esc(text: str) -> str:
    return text.replace("[", r"\[")  # log values are not rich markup


def print_trace(rows: pl.DataFrame, console: Console | None = None) -> None:
    """A trace's rows as a table, matched operations plain and their connections' context
    dim. On a terminal, the columns of least use go first (``TRACE_DROPS``) until the text
    columns (DNs, filter, error name) have room, then those are cut at the end, the room
    shared so a short column leaves its rest to the others; a time or a number never is."""
    if not rows.height:
        return
    console = console or summary_console()
    shown = [("time (UTC)", "time"), ("server's time", "local_time"), ("server", "server"),
             ("conn", "conn"), ("op", "op"),
             ("verb", "verb"), ("bind DN", "bind_dn"), ("client", "client_ip"),
             ("target", "target"), ("scope", "scope"), ("filter", "filter"), ("err", "err"),
             ("etime (ms)", "etime"), ("wtime (ms)", "wtime")]
    # the date once in the header when every row is on one day (11 columns more for text)
    days = rows["time"].dt.date().unique()
    if days.len() == 1:
        shown[0] = (f"{days[0]} (UTC)", "time")
    local_days = rows["local_time"].str.slice(0, 10).drop_nulls().unique()
    if local_days.len() == 1:
        shown[1] = (f"{local_days[0]} (server)", "local_time")
    one_day = {"time": days.len() == 1, "local_time": local_days.len() == 1}
    cells = {name: [_trace_cell(name, v, one_day.get(name, False)) for v in rows[name]]
             for _, name in shown}
    widest = {name: max([len(title), *map(len, cells[name])]) for title, name in shown}
    room: dict[str, int] = {}
    for drop in (*TRACE_DROPS, None):
        fixed = sum(widest[n] for _, n in shown if n not in TRACE_TEXT) + 3 * (len(shown) - 1)
        room = _shared(console.width - fixed, {n: widest[n] for _, n in shown if n in TRACE_TEXT})
        if drop is None or all(room[n] >= min(widest[n], TRACE_TEXT_MIN) for n in room):
            break
        shown = [(t, n) for t, n in shown if n != drop]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for title, name in shown:
        table.add_column(title, no_wrap=True, overflow="ellipsis", max_width=room.get(name),
                         justify="right" if name in ("conn", "op", "etime", "wtime") else "left")
    for k, match in enumerate(rows["match"]):
        table.add_row(*(Text(cells[name][k]) for _, name in shown),
                      style="" if match else "dim")
    console.print(table)


TRACE_TEXT = ("bind_dn", "client_ip", "target", "filter", "err")  # cut at the end if need be
TRACE_DROPS = ("wtime", "scope", "local_time", "target", "client_ip", "filter")  # in order
TRACE_TEXT_MIN = 16  # the least a text column is given before another column goes


def _shared(space: int, widest: dict[str, int]) -> dict[str, int]:
    """``space`` shared among columns: the narrow ones get their width, the rest share what
    is left equally (each at least 1).

    >>> _shared(40, {"a": 5, "b": 30, "c": 30})
    {'a': 5, 'b': 17, 'c': 17}
    """
    out: dict[str, int] = {}
    left = dict(sorted(widest.items(), key=lambda kv: kv[1]))
    while left:
        name, width = next(iter(left.items()))
        share = max(space // len(left), 1)
        if width > share:
            return {**out, **{n: share for n in left}}
        out[name] = width
        space -= width
        del left[name]
    return out


def _trace_cell(name: str, value: Any, one_day: bool = False) -> str:
    if value is None:
        return ""
    if name == "time":
        text = when(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        return text[11:] if one_day else text
    if name == "local_time":  # 2026-11-01T01:00:00.000000000-05:00: as the time, and -0500
        text = f"{value[:10]} {value[11:23]} {value[-6:].replace(':', '')}"
        return text[11:] if one_day else text
    if name in ("etime", "wtime"):
        return ms(value)
    if name == "bind_dn":
        return views.dn_text(value)
    return str(value)

