"""The servers' UTC offsets over time: each line of a 389 access log carries its own
(``-0400`` until daylight-saving time ends, ``-0500`` after), and the tables keep UTC.
The tokenizer reports the runs of one offset it read, ``(offset, first_ns, last_ns)``;
the runs of a server's chunks, runs and merges coalesce here, and run.json keeps them
(``utc_offsets``: per server, ``[offset, first_ns, last_ns]`` lists) so that ``dsaccess
trace`` shows each operation at the server's local time too.

>>> merge([("-0400", 10, 20)], [("-0400", 5, 9), ("-0500", 30, 40)])
[('-0400', 5, 20), ('-0500', 30, 40)]
>>> pl.select(local_text(pl.lit(3_600_000_000_000).cast(pl.Datetime("ns", "UTC")),
...                      pl.lit("-0130"))).item()
'1969-12-31T23:30:00.000000000-01:30'
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

Run = tuple[str, int, int]  # offset as logged, first and last UTC ns written with it


def merge(*runs: Iterable[Run]) -> list[Run]:
    """Runs of any number of chunks or runs as one timeline: in time order, neighbouring
    runs of one offset one."""
    out: list[Run] = []
    for tz, first, last in sorted(((str(z), int(f), int(la)) for rs in runs for z, f, la in rs),
                                  key=lambda r: (r[1], r[2])):
        if out and out[-1][0] == tz:
            out[-1] = (tz, out[-1][1], max(out[-1][2], last))
        else:
            out.append((tz, first, last))
    return out


def local_text(time: pl.Expr, tz: pl.Expr) -> pl.Expr:
    """A UTC datetime at an offset as logged (``-0530``), ISO 8601 with every digit: what
    the server wrote; null where either is."""
    sign = pl.when(tz.str.starts_with("-")).then(-1).otherwise(1)
    minutes = sign * (tz.str.slice(1, 2).cast(pl.Int64) * 60 + tz.str.slice(3, 2).cast(pl.Int64))
    wall = time.dt.replace_time_zone(None) + pl.duration(minutes=minutes, time_unit="ns")
    return (wall.dt.strftime("%Y-%m-%dT%H:%M:%S%.9f") + tz.str.slice(0, 3) + ":"
            + tz.str.slice(3, 2))


def offset_at(times: pl.DataFrame, by_server: dict[str, list[Run]]) -> pl.Series:
    """The offset each row's server wrote at its ``time`` (a UTC datetime, with
    ``server``): the last run that began at or before it, else the server's first (a row
    before every line read keeps the offset of the first); null for a server with none."""
    runs = pl.DataFrame(
        [(server, tz, first) for server, rs in by_server.items() for tz, first, _ in rs],
        schema={"server": pl.String, "tz": pl.String, "first": pl.Int64}, orient="row")
    rows = times.select("server", pl.col("time").dt.epoch("ns").alias("at"),
                        pl.int_range(pl.len()).alias("row"))
    found = rows.filter(pl.col("at").is_not_null()).sort("at").join_asof(
        runs.sort("first"), left_on="at", right_on="first", by="server", strategy="backward",
        check_sortedness=False)  # (both sorted by time, so within each server too)
    earliest = runs.sort("first").group_by("server", maintain_order=True).first() \
        .select("server", pl.col("tz").alias("earliest"))
    found = found.join(earliest, on="server", how="left").select(
        "row", pl.coalesce("tz", "earliest").alias("tz"))
    return rows.join(found, on="row", how="left").sort("row")["tz"]
