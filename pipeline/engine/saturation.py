"""Is the worker pool saturated? Operations in flight, waits for a worker and, where the
server logs it (389 DS 3.2.1+), its busy workers and queue, per server and for the fleet,
per load period: ``saturation.parquet`` and summary.json's ``saturation``.

The join tasks write each bucket's client operations that have a RESULT and an etime
(flights: Arrow IPC, a file per server; three narrow columns, more where the server logs
its pool) beside their connection pieces, a record batch per slab of time (``slab_cuts``);
a task per server, and one for the fleet, hands its operations to the compiled core
(``rust/core/src/saturation.rs`` defines every figure) a slab at a time, and gets the
periods back. A sweep holds a slab, not every operation: the fleet's held every
operation of the run at once (half a GB at 2 GB of logs, and growing with them)."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from .. import _core
from ..outputs import files
from ..sources.store import Place

NS = 1_000_000_000
# an operation's start: its RESULT time less its etime, rounded as the core reads times
START = (pl.col("result_ts").cast(pl.Int64)
         - (pl.col("etime") * 1e9).round(mode="half_away_from_zero").cast(pl.Int64, strict=False))
FLIGHT_COLUMNS = ["start", "result_ts", "wtime", "wbusy", "wmax", "wqdepth"]
# what the fleet's sweep needs of each operation
FLEET_COLUMNS = ["start", "result_ts", "wtime"]
# who an operation was, where its server logs the pool (null elsewhere: they are only read
# for the saturated seconds, which only such a server has); ``row``: its place in its
# piece, so the operations of those seconds are summed in the order they were written
WHO = {"workload": "workload", "bind DN": "bind_dn", "fingerprint": "fingerprint"}
HELD_COLUMNS = ["optime", *WHO.values()]
HELD_TOP = 10
# events (about two an operation) per slab of the sweep: tens of MB held per sweep
SLAB_EVENTS = 2_000_000
Range = tuple[int, int]


def slab_cuts(spans: list[tuple[int, int, int]], per_slab: int | None = None
              ) -> tuple[int, ...]:
    """The times (ns) that cut a run into slabs of about ``per_slab`` events, from its
    parse tasks' ``(first, last, events)``, each task's events taken as spread evenly over
    its time range (a task reads tens of MB of one file: a slab is off by at most a task's
    events per server). Slab ``i`` holds the starts in ``[cuts[i - 1], cuts[i])``.

    >>> slab_cuts([(0, 99, 100), (50, 149, 100)], per_slab=50)
    (50, 75, 100, 150)
    """
    per_slab = per_slab or SLAB_EVENTS
    edges: list[tuple[int, float]] = []
    for first, last, events in spans:
        if events > 0 and last >= first:
            rate = events / (last + 1 - first)
            edges += [(first, rate), (last + 1, -rate)]
    edges.sort()
    cuts: list[int] = []
    done, rate, at, target = 0.0, 0.0, 0, float(per_slab)
    for t, change in edges:
        while rate > 0 and done + rate * (t - at) >= target:
            cut = at + max(1, math.ceil((target - done) / rate))
            if cut > t:
                break
            if not cuts or cut > cuts[-1]:
                cuts.append(cut)
            done, at, target = target, cut, target + per_slab
        done += max(rate, 0.0) * (t - at)
        at, rate = t, rate + change
    return tuple(cuts)


def slab_of(times: pl.Series, cuts: tuple[int, ...]) -> pl.Series:
    """Each time's (ns) slab of ``cuts`` (``slab_cuts``)."""
    return pl.Series(cuts, dtype=pl.Int64).search_sorted(times, side="right") \
        .cast(pl.Int64).alias("slab")


def slab_bounds(slabs: pl.Series, cuts: tuple[int, ...]) -> list[int]:
    """The slabs of rows in slab order → where each slab's rows begin, then their end:
    the bounds of a batch per slab (``files.write_ipc_batches``)."""
    return slabs.search_sorted(pl.Series(range(len(cuts) + 2)), side="left").to_list()


def write_flights(ops: pl.DataFrame, folder: Place, name: str, cuts: tuple[int, ...]) -> None:
    """A bucket's client operations with a RESULT and an etime, as the sweep reads them:
    a file per server, ``folder/server=NAME/b<name>.arrow``, of a batch per slab of
    ``cuts`` (the join orders operations by server, so each server's rows are one slice)."""
    logged = pl.col("wbusy").is_not_null()
    rows = ops.select("server", "internal", START.alias("start"), *FLIGHT_COLUMNS[1:],
                      *HELD_COLUMNS) \
        .filter(~pl.col("internal") & pl.col("start").is_not_null())
    rows = rows.with_columns(slab_of(rows["start"], cuts))
    for (server,), part in rows.partition_by("server", as_dict=True,
                                             maintain_order=True).items():
        if part["wbusy"].null_count() == part.height:  # no pool logged: 24 bytes a row
            part = part.select("slab", *FLEET_COLUMNS)
        else:
            part = part.select("slab", *FLIGHT_COLUMNS, *(pl.when(logged).then(pl.col(c))
                                                          .alias(c) for c in HELD_COLUMNS),
                               pl.int_range(pl.len(), dtype=pl.Int64).alias("row"))
        if cuts:  # (one slab: the rows as they are)
            part = part.sort("slab", maintain_order=True)
        files.write_ipc_batches(part.drop("slab"), slab_bounds(part["slab"], cuts),
                                files.operations_folder(folder, server) / f"b{name}.arrow")


def server_saturation(server: str, folder: Place, period_s: int, covered: Range, slabs: int
                      ) -> tuple[str, pl.DataFrame, dict[str, Any]]:
    """One server's periods and figures, from its flight pieces (``slabs`` batches each);
    its figures' ``held``: who held the pool during its saturated seconds
    (``held_table``)."""
    pieces = files.operations_folder(folder, server).glob("b*.arrow")
    periods, figures = _sweep(pieces, FLIGHT_COLUMNS, period_s, covered, slabs)
    seconds = figures.pop("saturated_at", None)
    figures["held"] = _held(server, pieces, seconds, slabs) if seconds else None
    return server, periods.with_columns(pl.lit(server).alias("server")), figures


def _held(server: str, pieces: list[Place], seconds: list[int], slabs: int) -> pl.DataFrame:
    """During the saturated seconds, whose operations took the workers' time: per workload
    class, bind DN and fingerprint, the operations that started in those seconds and
    their optime, the ``HELD_TOP`` of each by optime."""
    started = pl.col("start").floordiv(NS).is_in(pl.Series(seconds, dtype=pl.Int64).implode())
    frames = [files.read_ipc_batch(piece, k, ["start", "row", *HELD_COLUMNS])
              .filter(started).with_columns(pl.lit(i, pl.Int64).alias("piece"))
              for k in range(slabs) for i, piece in enumerate(pieces)]
    ops = _gathered(frames, ["piece", "row", *HELD_COLUMNS]).sort("piece", "row")
    tops = []
    for by, column in WHO.items():
        rows = ops.group_by(column).agg(pl.len().cast(pl.Int64).alias("operations"),
                                        pl.col("optime").sum().alias("optime_sum"))
        tops.append(rows.sort(["optime_sum", column], descending=[True, False],
                                nulls_last=True).head(HELD_TOP).select(
            pl.lit(server).alias("server"), pl.lit(by).alias("by"),
            pl.col(column).cast(pl.String).alias("who"), "operations", "optime_sum"))
    return pl.concat(tops)


HELD_SCHEMA = {"server": pl.String, "by": pl.String, "who": pl.String,
               "operations": pl.Int64, "optime_sum": pl.Float64}


def held_table(servers: list[tuple[str, pl.DataFrame, dict[str, Any]]]) -> pl.DataFrame:
    """pool_held.parquet: per server with saturated seconds, who held the pool then."""
    frames = [f["held"] for _, _, f in servers if f.get("held") is not None]
    return pl.concat(frames) if frames else pl.DataFrame(schema=HELD_SCHEMA)


def fleet_saturation(folder: Place, period_s: int, covered: Range, slabs: int
                     ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The fleet's periods (server null) and figures: every server's operations in one
    sweep, in flight together."""
    pieces = [piece for server in folder.glob("server=*") for piece in server.glob("b*.arrow")]
    periods, figures = _sweep(pieces, FLEET_COLUMNS, period_s, covered, slabs)
    figures.pop("saturated_at", None)
    return periods.with_columns(pl.lit(None, pl.String).alias("server")), figures


def no_events() -> tuple[pl.DataFrame, dict[str, Any]]:
    """The fleet's periods and figures for a run that found no event: no period."""
    periods, figures = _sweep([], FLEET_COLUMNS, 60, (0, 0), 0)
    return periods.clear().with_columns(pl.lit(None, pl.String).alias("server")), figures


def _sweep(pieces: list[Place], columns: list[str], period_s: int, covered: Range,
           slabs: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The core's sweep over the pieces' operations, fed a slab at a time."""
    sweep = _core.Sweep(period_s, *covered)
    for k in range(slabs):
        frames = [files.read_ipc_batch(piece, k, columns) for piece in pieces]
        sweep.feed(_gathered(frames, columns).to_arrow())
    table, figures = sweep.finish()
    return pl.DataFrame(table), figures


def _gathered(frames: list[pl.DataFrame], columns: list[str]) -> pl.DataFrame:
    """Flight pieces as one frame of ``columns``, typed; null where a piece lacks one (a
    server that does not log its pool writes three)."""
    return pl.concat([f.select((pl.col(c) if c in f.columns else pl.lit(None))
                               .cast(TYPES[c]).alias(c) for c in columns) for f in frames]) \
        if frames else pl.DataFrame(schema={c: TYPES[c] for c in columns})


TYPES = {"start": pl.Int64, "result_ts": pl.Int64, "wtime": pl.Float64, "wbusy": pl.Int64,
         "wmax": pl.Int64, "wqdepth": pl.Int64, "optime": pl.Float64, "workload": pl.String,
         "bind_dn": pl.String, "fingerprint": pl.String, "piece": pl.Int64, "row": pl.Int64}


def with_threads(servers: list[tuple[str, pl.DataFrame, dict[str, Any]]],
                 threads: dict[str, int]) -> list[tuple[str, pl.DataFrame, dict[str, Any]]]:
    """The workers a server's logs do not give, from ``--threads NAME=N``: in its periods
    and its figures (what the logs give wins)."""
    out = []
    for server, periods, figures in servers:
        n = threads.get(server)
        if n is not None:
            periods = periods.with_columns(pl.col("workers").fill_null(n))
            figures = {**figures, "workers": figures.get("workers") or n}
        out.append((server, periods, figures))
    return out


def table(servers: list[tuple[str, pl.DataFrame, dict[str, Any]]],
          fleet: pl.DataFrame) -> pl.DataFrame:
    """saturation.parquet: each server's periods, then the fleet's (server null)."""
    frames = [periods for _, periods, _ in servers] + [fleet]
    df = pl.concat(frames, how="diagonal_relaxed")
    return df.select("server", *[c for c in df.columns if c != "server"])


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``saturation`` object from a sweep's figures (none: a server without
    events). ``saturated_seconds`` and ``workers`` are null where the server did not log
    its pool (3.2.1+ with ``nsslapd-statlog-level`` bit 2): unknown, not none."""
    return {"operations": figures.get("operations", 0),
            "peak_in_flight": figures.get("peak_in_flight"),
            "wtime_p95": figures.get("wtime_p95"), "wtime_p99": figures.get("wtime_p99"),
            "waited_10ms": figures.get("waited_10ms", 0),
            "waited_10ms_share": figures.get("waited_10ms_share"),
            "saturated_seconds": figures.get("saturated_seconds"),
            "workers": figures.get("workers")}
