"""``dsaccess compare BASE NEW``: two periods side by side, from their aggregates.

Per fingerprint, workload class, bind DN, verb and server: operations and their rate per
hour (periods of different lengths compare per hour), errors, the unindexed share, etime
p50/p95/p99 (from the merged histograms, never averaged percentiles) and total etime per
hour, each side, their difference and ratio; what appeared and what vanished. Then the
regressions of each ranked dimension, by the etime per hour they added, then by p95
ratio (rows with fewer than ``min_count`` operations on a side do not rank: noise), and
the improvements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..tables import histogram
from ..tables.aggregate import iso_ns
from ..tables.frames import Table, height

# dimension → (its table, its key column)
DIMENSIONS = {"fingerprint": ("fingerprints", "fingerprint"), "workload": ("workloads", "workload"),
              "bind_dn": ("workloads", "bind_dn"), "verb": ("workloads", "verb"),
              "server": ("workloads", "server")}
RANKED = ("fingerprint", "bind_dn", "workload")  # the dimensions regressions are listed by
MIN_COUNT = 20
METRICS = ("p50", "p95", "p99", "rate", "etime", "errors")
THRESHOLD = re.compile(r"(?P<metric>[a-z0-9]+)\s*>\s*(?P<ratio>\d+(?:\.\d+)?)x")
SETTINGS = (("fingerprint", "fingerprint options (--sort-operands)"),
            ("histogram", "histogram layout"))


@dataclass(frozen=True)
class Threshold:
    """``p95>1.5x``: a row whose p95 grew over 1.5 times crosses it."""

    metric: str
    ratio: float

    @staticmethod
    def parse(text: str) -> Threshold:
        """
        >>> Threshold.parse("p95>1.5x"), Threshold.parse("rate > 2x")
        (Threshold(metric='p95', ratio=1.5), Threshold(metric='rate', ratio=2.0))
        """
        m = THRESHOLD.fullmatch(text.strip())
        if not m or m["metric"] not in METRICS:
            raise ConfigError(f"--fail-on: not a threshold: {text!r} (METRIC>RATIOx, METRIC "
                              f"one of {', '.join(METRICS)}: for example 'p95>1.5x')")
        return Threshold(m["metric"], float(m["ratio"]))

    def column(self) -> str:
        return {"rate": "rate_ratio", "etime": "etime_ratio", "errors": "errors_ratio"}.get(
            self.metric, f"{self.metric}_ratio")


def check_comparable(base: dict[str, Any], new: dict[str, Any], names: tuple[str, str]) -> None:
    """Refuse outputs whose rows would not line up, naming the setting."""
    for key, what in SETTINGS:
        if base.get(key) != new.get(key):
            raise ConfigError(f"{names[0]} and {names[1]} were made with different {what} "
                              f"({base.get(key)} and {new.get(key)}): their rows do not line "
                              "up; run them again with the same settings")


def hours(summary: dict[str, Any]) -> float:
    """The period a summary covers, in hours (at least a second)."""
    first, last = summary["time_range"]["first"], summary["time_range"]["last"]
    if not first or not last:
        return 1 / 3600
    span = (iso_ns(last) - iso_ns(first)) / 1e9
    return max(span, 1.0) / 3600


def side(tables: dict[str, Table], dimension: str) -> pl.DataFrame:
    """One output's rows of a dimension: key, count, errors, unindexed, etime_sum and
    p50/p95/p99 from the merged histogram."""
    table_name, key = DIMENSIONS[dimension]
    table = tables.get(table_name)
    if table is None or not height(table):
        return pl.DataFrame(schema={"key": pl.String, "count": pl.Int64, "errors": pl.Int64,
                                    "unindexed": pl.Int64, "etime_sum": pl.Float64,
                                    "p50": pl.Float64, "p95": pl.Float64, "p99": pl.Float64})
    table = table.lazy().with_columns(pl.col(key).cast(pl.String).fill_null("").alias("key"))
    # (etime summed as integer nanoseconds: the same rows give the same sum in any order)
    sums = table.group_by("key").agg(
        pl.col("count").sum(), pl.col("errors").sum(), pl.col("unindexed").sum(),
        (pl.col("etime_sum_ns").cast(pl.Int128).sum().cast(pl.Float64) / 1e9).alias("etime_sum")
    ).collect()
    hist = histogram.from_lists(table, ["key"], "etime")
    quantiles = histogram.percentiles(hist.group_by("key", "bucket").agg(pl.col("count").sum()),
                                      ["key"])
    return sums.join(quantiles, on="key", how="left")


def compare_dimension(base: pl.DataFrame, new: pl.DataFrame, base_hours: float,
                      new_hours: float) -> pl.DataFrame:
    """Both sides of one dimension, joined on its key: per side ``base_*``/``new_*``, the
    rates per hour, the ratios (new / base) and ``status`` (both, appeared, vanished)."""
    joined = base.join(new, on="key", how="full", coalesce=True, suffix="_new").rename(
        {c: f"base_{c}" for c in base.columns if c != "key"}).rename(
        {f"{c}_new": f"new_{c}" for c in new.columns if c != "key"})
    counts = ("count", "errors", "unindexed", "etime_sum")
    joined = joined.with_columns(*(pl.col(f"{s}_{c}").fill_null(0) for s in ("base", "new")
                                   for c in counts))
    per_hour = {"base": base_hours, "new": new_hours}
    joined = joined.with_columns(
        *(pl.col(f"{s}_count").truediv(h).alias(f"{s}_rate") for s, h in per_hour.items()),
        *(pl.col(f"{s}_etime_sum").truediv(h).alias(f"{s}_etime_per_hour")
          for s, h in per_hour.items()),
        *(pl.col(f"{s}_unindexed").truediv(pl.col(f"{s}_count")).alias(f"{s}_unindexed_share")
          for s in per_hour),
        *(pl.col(f"{s}_errors").truediv(h).alias(f"{s}_errors_rate") for s, h in per_hour.items()),
        pl.when(pl.col("base_count") == 0).then(pl.lit("appeared"))
        .when(pl.col("new_count") == 0).then(pl.lit("vanished")).otherwise(pl.lit("both"))
        .alias("status"))
    return joined.with_columns(
        (pl.col("new_etime_per_hour") - pl.col("base_etime_per_hour")).alias("etime_delta"),
        _ratio("new_rate", "base_rate").alias("rate_ratio"),
        _ratio("new_etime_per_hour", "base_etime_per_hour").alias("etime_ratio"),
        _ratio("new_errors_rate", "base_errors_rate").alias("errors_ratio"),
        *(_ratio(f"new_{q}", f"base_{q}").alias(f"{q}_ratio") for q in ("p50", "p95", "p99")),
    ).sort("etime_delta", "key", descending=[True, False], nulls_last=True)


def _ratio(a: str, b: str) -> pl.Expr:
    return pl.when(pl.col(b) > 0).then(pl.col(a) / pl.col(b)).otherwise(None)


def ranked(table: pl.DataFrame, min_count: int = MIN_COUNT,
           better: bool = False) -> pl.DataFrame:
    """A dimension's regressions (or improvements, ``better``): rows whose etime per hour
    rose (fell), with at least ``min_count`` operations on both sides, or new (gone) with
    that many on the side that has them; by that change, then by p95 ratio. (Dimensions
    are ranked apart: a workload holds its fingerprints' change again.)"""
    steady = (pl.col("base_count") >= min_count) & (pl.col("new_count") >= min_count)
    if better:
        moved = (pl.col("etime_delta") < 0) & (steady | (
            (pl.col("status") == "vanished") & (pl.col("base_count") >= min_count)))
    else:
        moved = (pl.col("etime_delta") > 0) & (steady | (
            (pl.col("status") == "appeared") & (pl.col("new_count") >= min_count)))
    return table.filter(moved).sort(["etime_delta", "p95_ratio", "key"],
                                    descending=[not better, not better, False],
                                    nulls_last=True)


def crossed(tables: dict[str, Table], thresholds: list[Threshold],
            min_count: int = MIN_COUNT) -> list[str]:
    """Each row of a ranked dimension over a threshold (both sides with enough operations),
    as ``p95 ×2.10: fingerprint (uid=...)``."""
    out = []
    for t in thresholds:
        for dimension in RANKED:
            rows = tables[dimension].filter(
                (pl.col("base_count") >= min_count) & (pl.col("new_count") >= min_count)
                & (pl.col(t.column()) > t.ratio)).sort(t.column(), descending=True)
            out += [f"{t.metric} ×{r[t.column()]:.2f} (over {t.ratio:g}x): {dimension} "
                    f"{r['key'] or '(anonymous)'}" for r in rows.iter_rows(named=True)]
    return out


def compare(base: tuple[dict[str, Any], dict[str, pl.DataFrame]],
            new: tuple[dict[str, Any], dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """Every dimension's comparison table, for two (summary, tables) outputs."""
    (bs, bt), (ns, nt) = base, new
    bh, nh = hours(bs), hours(ns)
    return {d: compare_dimension(side(bt, d), side(nt, d), bh, nh) for d in DIMENSIONS}
