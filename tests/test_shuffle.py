"""The shuffle's files: every event of a task lands once, in its connection's bucket."""

from __future__ import annotations

import polars as pl

from pipeline import shuffle
from pipeline.logline import parse_lines, tokenize
from pipeline.partition import server_seed
from pipeline.schema import EVENT_CLASSES

from .test_logline import _sample_files

GOLDEN = 0x9E3779B97F4A7C15


def _reference_bucket(server: str, conn: int | None, buckets: int) -> int:
    # the formula as plain Python integers: what every process must agree on
    mixed = (((conn or 0) * GOLDEN) % 2**64) ^ server_seed(server)
    return (mixed >> 32) % buckets


def test_every_event_lands_once_in_its_connections_bucket(tmp_path) -> None:
    _, data = next(iter(_sample_files()))
    buckets = 7
    all_ts = parse_lines(data, server="x", file="f").events["ts"]
    span = all_ts.max() - all_ts.min()
    since, until = all_ts.min() + span // 5, all_ts.max() - span // 5  # the middle 60%
    written = shuffle.write_buckets(tmp_path, 3, tokenize(data).classes, server="ldap9",
                                    file="access", file_seq=2, buckets=buckets,
                                    since_ns=since, until_ns=until)
    events = parse_lines(data, server="ldap9", file="access", file_seq=2).events
    events = events.filter((pl.col("ts") >= since) & (pl.col("ts") < until))
    seen = []
    for cls in EVENT_CLASSES:
        for b in range(buckets):
            got = shuffle.read_bucket(tmp_path, cls, [(3, b)], {3: 0})
            if got is None:
                continue
            assert {_reference_bucket("ldap9", c, buckets) for c in got["conn"]} == {b}
            assert set(got["server"]) == {"ldap9"} and set(got["file_seq"]) == {2}
            seen += got["line"].to_list()
    assert sorted(seen) == sorted(events["line"].to_list())
    assert (written.first_ts, written.last_ts) == (events["ts"].min(), events["ts"].max())
    assert written.kept == events.height
