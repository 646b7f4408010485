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
