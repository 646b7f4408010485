"""Mergeable latency histograms: log-spaced buckets, DDSketch style.

A value ``v > 0`` falls in bucket ``i = ceil(log(v) / log(GAMMA))``, which holds
``(GAMMA**(i-1), GAMMA**i]``; the bucket's representative ``2 * GAMMA**i / (GAMMA + 1)``
is within ``(GAMMA - 1) / (GAMMA + 1)`` (under 1%) of every value in it. Zero
(whole-second logs print ``etime=0``) has its own bucket. Histograms are kept
as rows ``(keys..., bucket, count)``, so merging partials, buckets or whole
runs is a group-by sum, and percentiles of a merged group come from merged
buckets, never from averaged percentiles. The compiled core counts the rows
(``rust/core/src/aggregate.rs``, which owns the layout); this module merges them
and reads them back.

>>> import polars as pl
>>> h = pl.DataFrame({"k": ["a", "a"], "bucket": [-151, 0], "count": [99, 1]})
>>> p = percentiles(h, ["k"], (0.5, 0.99, 1.0)).row(0, named=True)
>>> round(p["p50"], 4), round(p["p99"], 4), round(p["p100"], 4)
(0.0498, 0.0498, 0.9901)
"""

from __future__ import annotations

import math

import polars as pl

from .. import _core

GAMMA = _core.HISTOGRAM_GAMMA
ZERO_BUCKET = _core.HISTOGRAM_ZERO_BUCKET    # values at or below MIN_VALUE
MIN_VALUE = _core.HISTOGRAM_MIN_VALUE        # the logs' resolution: one nanosecond
LAYOUT = {"kind": "log", "gamma": GAMMA, "min_value": MIN_VALUE}  # recorded with every run
_LOG_GAMMA = math.log(GAMMA)


QUANTILES = (0.5, 0.95, 0.99)


def representative(bucket: pl.Expr) -> pl.Expr:
    """The value a bucket stands for."""
    return pl.when(bucket == ZERO_BUCKET).then(0.0).otherwise(
        2.0 * (bucket.cast(pl.Float64) * _LOG_GAMMA).exp() / (GAMMA + 1.0))


def merge(parts: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """Add histograms with the same keys: associative and commutative."""
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts, how="vertical_relaxed").group_by(*keys, "bucket").agg(
        pl.col("count").sum())


def percentiles(hist: pl.DataFrame, keys: list[str],
                qs: tuple[float, ...] = QUANTILES) -> pl.DataFrame:
    """Per key, the value at each quantile ``q`` (columns ``p50``, ``p95``, ...)."""
    return summarize(hist, keys, "", qs).select(*keys, *(f"p{round(q * 100):d}" for q in qs))


def summarize(hist: pl.DataFrame, keys: list[str], prefix: str,
              qs: tuple[float, ...] = QUANTILES) -> pl.DataFrame:
    """Per key: the histogram as list columns ``{prefix}_hist_bucket``/``_count`` (buckets in
    order) and the quantiles ``{prefix}_p50``... (``p50``... when ``prefix`` is empty).

    Groups are numbered once, so the cumulative counts run over an integer key instead of
    sorting the (string) keys.
    """
    b, c = f"{prefix}_hist_bucket", f"{prefix}_hist_count"
    lists = hist.group_by(keys).agg(
        pl.col("bucket").sort().alias(b), pl.col("count").sort_by("bucket").alias(c),
    ).with_row_index("_group")
    if not qs:
        return lists.drop("_group")
    flat = lists.select("_group", b, c).explode(b, c).with_columns(
        pl.col(c).cum_sum().over("_group").alias("_cum"),
        pl.col(c).sum().over("_group").alias("_total"),
    )
    name = (lambda q: f"{prefix}_p{round(q * 100):d}") if prefix else \
        (lambda q: f"p{round(q * 100):d}")
    values = flat.group_by("_group").agg(
        representative(pl.col(b).filter(pl.col("_cum") >= q * pl.col("_total")).first())
        .alias(name(q))
        for q in qs
    )
    return lists.join(values, on="_group", how="left").drop("_group")


def from_lists(table: pl.DataFrame, keys: list[str], prefix: str) -> pl.DataFrame:
    """``summarize``'s list columns back to ``(keys..., bucket, count)`` rows. Lazily: a
    finished table comes in a chunk per server, and eagerly its list columns were put in
    one chunk before they were exploded (on the many-identity fleet's workloads, +108 MB
    where this takes +35)."""
    b, c = f"{prefix}_hist_bucket", f"{prefix}_hist_count"
    return table.lazy().select(*keys, b, c).explode(b, c).rename(
        {b: "bucket", c: "count"}).filter(pl.col("bucket").is_not_null()).collect()
