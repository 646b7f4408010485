"""Is the worker pool saturated? Operations in flight, waits for a worker and, where the
server logs it (389 DS 3.2.1+), its busy workers and queue, per server and for the fleet,
per load period: ``saturation.parquet`` and summary.json's ``saturation``.

The join tasks write each bucket's client operations that have a RESULT and an etime
(flights: Arrow IPC, a file per server; three narrow columns, more where the server logs
its pool) beside their connection pieces; a task per server, and one for the fleet, hands
its operations to the compiled core (``rust/core/src/saturation.rs`` defines every
figure) and gets the periods back."""

from __future__ import annotations

from typing import Any

import polars as pl

from .. import _core
from ..outputs import files
from ..sources.store import Place

FLIGHT_COLUMNS = ["result_ts", "etime", "wtime", "wbusy", "wmax", "wqdepth"]
# what the fleet's sweep needs of each operation (it holds the whole fleet's at once)
FLEET_COLUMNS = ["result_ts", "etime", "wtime"]
# who an operation was, where its server logs the pool (null elsewhere: they are only read
# for the saturated seconds, which only such a server has)
WHO = {"workload": "workload", "bind DN": "bind_dn", "fingerprint": "fingerprint"}
HELD_COLUMNS = ["optime", *WHO.values()]
HELD_TOP = 10
Range = tuple[int, int]


def write_flights(ops: pl.DataFrame, folder: Place, name: str) -> None:
    """A bucket's client operations with a RESULT and an etime, as the sweep reads them:
    a file per server, ``folder/server=NAME/b<name>.arrow`` (the join orders operations by
    server, so each server's rows are one slice)."""
    logged = pl.col("wbusy").is_not_null()
    rows = ops.select("server", "internal", *FLIGHT_COLUMNS, *HELD_COLUMNS).filter(
        ~pl.col("internal") & pl.col("result_ts").is_not_null()
        & pl.col("etime").is_not_null())
    for (server,), part in rows.partition_by("server", as_dict=True,
                                             maintain_order=True).items():
        if part["wbusy"].null_count() == part.height:  # no pool logged: 24 bytes a row
            part = part.select(FLEET_COLUMNS)
        else:
            part = part.select(*FLIGHT_COLUMNS, *(pl.when(logged).then(pl.col(c)).alias(c)
                                                  for c in HELD_COLUMNS))
        files.write_ipc(part, files.operations_folder(folder, server) / f"b{name}.arrow")


def server_saturation(server: str, folder: Place, period_s: int, covered: Range
                      ) -> tuple[str, pl.DataFrame, dict[str, Any]]:
    """One server's periods and figures, from its flight pieces; its figures' ``held``:
    who held the pool during its saturated seconds (``held_table``)."""
    pieces = files.operations_folder(folder, server).glob("b*.arrow")
    frames = [files.read_ipc(piece) for piece in pieces]  # (pool columns where logged)
    periods, figures = _sweep(frames, FLIGHT_COLUMNS, period_s, covered)
    mask = figures.pop("in_saturated", None)
    figures["held"] = _held(server, frames, mask) if mask is not None else None
    return server, periods.with_columns(pl.lit(server).alias("server")), figures


def _held(server: str, frames: list[pl.DataFrame], mask: list[bool]) -> pl.DataFrame:
    """During the saturated seconds, whose operations took the workers' time: per workload
    class, bind DN and fingerprint, the operations that started in those seconds and
    their optime, the ``HELD_TOP`` of each by optime."""
    ops = _gathered(frames, HELD_COLUMNS).filter(pl.Series(mask))
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


def fleet_saturation(folder: Place, period_s: int, covered: Range
                     ) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The fleet's periods (server null) and figures: every server's operations in one
    sweep, in flight together."""
    frames = [files.read_ipc(piece, FLEET_COLUMNS)
              for server in folder.glob("server=*") for piece in server.glob("b*.arrow")]
    periods, figures = _sweep(frames, FLEET_COLUMNS, period_s, covered)
    return periods.with_columns(pl.lit(None, pl.String).alias("server")), figures


def no_events() -> tuple[pl.DataFrame, dict[str, Any]]:
    """The fleet's periods and figures for a run that found no event: no period."""
    periods, figures = _sweep([], FLEET_COLUMNS, 60, (0, 0))
    return periods.clear().with_columns(pl.lit(None, pl.String).alias("server")), figures


def _sweep(frames: list[pl.DataFrame], columns: list[str], period_s: int, covered: Range
           ) -> tuple[pl.DataFrame, dict[str, Any]]:
    table, figures = _core.saturation(_gathered(frames, columns).to_arrow(), period_s,
                                      *covered)
    return pl.DataFrame(table), figures


def _gathered(frames: list[pl.DataFrame], columns: list[str]) -> pl.DataFrame:
    """Flight pieces as one frame of ``columns``, typed; null where a piece lacks one (a
    server that does not log its pool writes three)."""
    return pl.concat([f.select((pl.col(c) if c in f.columns else pl.lit(None))
                               .cast(TYPES[c]).alias(c) for c in columns) for f in frames]) \
        if frames else pl.DataFrame(schema={c: TYPES[c] for c in columns})


TYPES = {"result_ts": pl.Int64, "etime": pl.Float64, "wtime": pl.Float64, "wbusy": pl.Int64,
         "wmax": pl.Int64, "wqdepth": pl.Int64, "optime": pl.Float64, "workload": pl.String,
         "bind_dn": pl.String, "fingerprint": pl.String}


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
