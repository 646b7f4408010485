"""Stable bucket ids for (server, connection): every line of a connection,
from every file and every parse task, lands in the same bucket.

The compiled shuffle (``rust/core/src/shuffle.rs``) computes the id per row: a blake2b
digest of the server name (``shuffle::server_seed``) mixed with a multiplicative
(Fibonacci) hash of the connection number (of the op ids, for lines of no connection, such as
``conn=Internal(0)``: only lines with the same ids pair); plain integer arithmetic, so
every worker process agrees (Python's ``hash()`` is salted per process). This module
places each server's buckets (``bucket_layout``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .. import _core

# Sub-buckets per bucket (the core's): a join task whose bucket outgrew its memory budget
# joins them a few at a time (a connection is whole in one).
SUBS: int = _core.SUBS


def bucket_layout(server_bytes: Mapping[str, int], target: float, at_least: int = 1
                  ) -> dict[str, tuple[int, int]]:
    """Buckets per server: ``server → (first bucket, how many)``.

    A server of more than ``target`` (bytes of parsed events) owns a range of buckets, so
    a bucket holds one server: its join task reads only that server's shuffle files and
    writes one operations file. Smaller servers share one bucket, in name order, until it
    holds ``target``. The target shrinks until there are ``at_least`` buckets (one per
    worker thread) where the servers allow. There is no upper bound: the number of buckets
grows with the input, so a bucket's size (a join task's memory) does not.

    >>> bucket_layout({"a": 250, "b": 10, "c": 20, "d": 90}, target=100)
    {'a': (0, 3), 'b': (3, 1), 'c': (3, 1), 'd': (4, 1)}
    >>> bucket_layout({"a": 10}, target=100, at_least=2)
    {'a': (0, 2)}
    """
    total = sum(server_bytes.values())
    if total and at_least > 1:
        target = min(target, total / at_least)
    layout: dict[str, tuple[int, int]] = {}
    base, shared, filled = 0, None, 0.0
    for server in sorted(server_bytes):
        size = server_bytes[server]
        count = max(1, math.ceil(size / target)) if target > 0 else 1
        if count == 1:  # shares a bucket with its small neighbours
            if shared is None or filled + size > target:
                shared, filled = base, 0.0
                base += 1
            layout[server] = (shared, 1)
            filled += size
        else:
            layout[server] = (base, count)
            base, shared = base + count, None
    return layout
