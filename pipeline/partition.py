"""Stable bucket ids for (server, connection): every line of a connection,
from every file and every parse task, lands in the same bucket.

The id mixes a blake2b digest of the server name with a multiplicative
(Fibonacci) hash of the connection number: plain integer arithmetic, so every
worker process agrees (Python's ``hash()`` is salted per process).

>>> import polars as pl
>>> df = pl.DataFrame({"server": ["a", "a", "b"], "conn": [7, 7, None]})
>>> assign_buckets(df, 8)["bucket"].to_list() == assign_buckets(df, 8)["bucket"].to_list()
True
"""

from __future__ import annotations

import hashlib

import polars as pl

from .schema import EVENT_CLASSES, event_class

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio


def server_seed(server: str) -> int:
    """A 63-bit seed per server name, the same in every process."""
    return int.from_bytes(hashlib.blake2b(server.encode(), digest_size=8).digest(), "big") >> 1


def assign_buckets(df: pl.DataFrame, buckets: int) -> pl.DataFrame:
    """Add a ``bucket`` column (UInt32 in ``[0, buckets)``).

    Events without a connection number (``conn=Internal(0)``) go by server alone.
    """
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1: {buckets}")
    seeds = {s: server_seed(s) for s in df["server"].unique().to_list()}
    seed = pl.col("server").replace_strict(seeds, return_dtype=pl.UInt64)
    conn = pl.col("conn").fill_null(0).cast(pl.UInt64)
    mixed = (conn * pl.lit(_GOLDEN, pl.UInt64)) ^ seed   # wraps modulo 2**64
    high = mixed // pl.lit(1 << 32, pl.UInt64)  # the well-mixed high bits
    return df.with_columns((high % buckets).cast(pl.UInt32).alias("bucket"))


def split_by_bucket(df: pl.DataFrame) -> dict[tuple[int, str], pl.DataFrame]:
    """The rows of each bucket and event class, with only that class's columns.

    Keys are ``(bucket, class)``; see ``schema.EVENT_CLASSES``. Rows are ordered by
    (class, bucket) on a narrow table first, so each class gathers only its own
    columns, once, and each bucket is a slice of that.
    """
    names = list(EVENT_CLASSES)
    code = event_class(pl.col("kind")).replace_strict(names, list(range(len(names))),
                                                      return_dtype=pl.UInt8)
    keys = df.select(code.alias("class"), "bucket").with_row_index("row")\
        .sort("class", "bucket", maintain_order=True)
    runs = keys.group_by("class", "bucket", maintain_order=True).len()
    out: dict[tuple[int, str], pl.DataFrame] = {}
    start = 0
    for cls in runs["class"].unique(maintain_order=True).to_list():
        of_class = runs.filter(pl.col("class") == cls)
        size = int(of_class["len"].sum())
        rows = keys["row"].slice(start, size)
        table = df.select(EVENT_CLASSES[names[cls]])[rows]
        offset = 0
        for bucket, length in of_class.select("bucket", "len").iter_rows():
            out[(bucket, names[cls])] = table.slice(offset, length)
            offset += length
        start += size
    return out
