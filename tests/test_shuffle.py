"""The shuffle's files: every event of a task lands once, in its connection's bucket."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import EXIT_FAILED, explain
from pipeline.engine import shuffle
from pipeline.engine.enrich import join_pieces
from pipeline.engine.logline import tokenize
from pipeline.engine.partition import SUBS
from pipeline.engine.schema import EVENT_CLASSES
from pipeline.errors import ShuffleError
from pipeline.sources.store import place

from .events import EVENT_SCHEMA, parse_lines, read_bucket
from .test_logline import _sample_files

GOLDEN = 0x9E3779B97F4A7C15


def server_seed(server: str) -> int:
    """The reference of the core's seed: BLAKE2b of the name in 8 bytes, >> 1."""
    return int.from_bytes(hashlib.blake2b(server.encode(), digest_size=8).digest(), "big") >> 1
M64 = 2**64


def _reference_key(conn: int | None, ids: tuple[int | None, ...]) -> int:
    # the formula as plain Python integers: what every process must agree on
    if conn is not None:
        return conn % M64
    h = 0xCBF29CE484222325
    for v in ids:
        for byte in (-1 if v is None else v).to_bytes(8, "little", signed=True):
            h = ((h ^ byte) * 0x100000001B3) % M64
    return h


def _reference_batch(server: str, key: int, buckets: int) -> tuple[int, int]:
    mixed = ((key * GOLDEN) % M64) ^ server_seed(server)
    return (mixed >> 32) % buckets, (mixed & 0xFFFFFFFF) % SUBS


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
    # the window's events, and before it a connection's context: its open, TLS, AUTOBIND,
    # HAProxy, BIND and extended requests, BIND RESULTs (what the join needs to know who
    # the connection is in the window)
    context = pl.col("kind").is_in(["CONNECT", "TLS", "AUTOBIND", "HAPROXY", "BIND", "EXT"]) \
        | ((pl.col("kind") == "RESULT") & (pl.col("tag") == 97))
    events = events.filter(((pl.col("ts") >= since) & (pl.col("ts") < until))
                           | ((pl.col("ts") < since) & context))
    assert events.filter(pl.col("ts") < since).height > 100
    seen = []
    for cls in EVENT_CLASSES:
        for b in range(buckets):
            found = shuffle.pieces(tmp_path, cls, ((3, 4, b),))
            assert [p.chunk for p in found] == [3]
            for sub in range(SUBS):
                got = read_bucket(cls, found, range(sub, sub + 1), {3: 0})
                if got is None:
                    continue
                batches = {_reference_batch("ldap9", _reference_key(
                    r["conn"], (r["op"], r["op_internal"], r["op_nested"])), buckets)
                    for r in got.iter_rows(named=True)}
                assert batches == {(b, sub)}
                assert set(got["server"]) == {"ldap9"} and set(got["file_seq"]) == {2}
                seen += got["line"].to_list()
            # the whole bucket at once is its sub-buckets in order
            whole = read_bucket(cls, found, range(SUBS), {3: 100})
            assert whole is None or whole["line"].min() > 100
    assert sorted(seen) == sorted(events["line"].to_list())
    window = events.filter(pl.col("ts") >= since)  # the context is not counted
    assert (written.first_ts, written.last_ts) == (window["ts"].min(), window["ts"].max())
    assert written.kept == window.height


def test_the_cores_class_layout_has_the_event_tables_types() -> None:
    """The shuffle's classes (the core's) are columns of the events table with its types."""
    import pyarrow as pa

    from pipeline import _core
    from pipeline.engine.schema import empty_class
    layout = _core.event_classes()
    assert list(layout) == ["request", "result", "lone", "other"]
    for name, schema in layout.items():
        want = pl.DataFrame(schema={c: EVENT_SCHEMA[c] for c in pa.schema(schema).names})
        assert pa.schema(schema) == want.to_arrow().schema, name
        assert empty_class(name).schema == want.schema, name


def test_the_cores_seed_is_blake2b_of_the_server_name() -> None:
    from pipeline import _core
    names = ["ldap1", "ldap2", "real389a", "é-server", ""]
    assert [_core.server_seed(n) for n in names] == [server_seed(n) for n in names]
    assert len({_core.server_seed(n) for n in names}) == len(names)


def test_lines_of_no_connection_spread_by_their_op_ids() -> None:
    keys = {_reference_key(None, (0, i, n)) for i in range(4) for n in range(2)}
    assert len({_reference_batch("ldap1", k, 64)[0] for k in keys}) > 1
    assert _reference_key(None, (0, 1, 0)) == _reference_key(None, (0, 1, 0))


def test_a_file_that_is_not_this_runs_shuffle_file_is_refused(tmp_path) -> None:
    _, data = next(iter(_sample_files()))
    shuffle.write_buckets(tmp_path, 0, tokenize(data).classes, server="s", file="access",
                          file_seq=0, buckets=2)
    with pytest.raises(ShuffleError, match="shuffle file: not of this run"):
        shuffle.pieces(tmp_path, "request", ((0, 1, 5),))  # a bucket it does not have
    path = shuffle.path_of(place(tmp_path), "request", 0)
    Path(path.url).write_bytes(Path(path.url).read_bytes()[:-3])
    with pytest.raises(ShuffleError):
        shuffle.pieces(tmp_path, "request", ((0, 1, 0),))


def test_a_damaged_batch_is_an_error_naming_its_file(tmp_path) -> None:
    _, data = next(iter(_sample_files()))
    shuffle.write_buckets(tmp_path, 0, tokenize(data).classes, server="s", file="access",
                          file_seq=0, buckets=1)
    path = shuffle.path_of(place(tmp_path), "request", 0)
    found = shuffle.pieces(tmp_path, "request", ((0, 1, 0),))
    middle = (found[0].offsets[0] + found[0].offsets[SUBS]) // 2
    raw = bytearray(Path(path.url).read_bytes())
    raw[middle] ^= 0x55  # one byte of one batch, as a failing disk would change it
    Path(path.url).write_bytes(bytes(raw))
    named = re.escape(f"{path}: shuffle file: a batch damaged (its checksum differs): "
                      f"{ShuffleError.FIX}")
    with pytest.raises(ShuffleError, match=named):
        read_bucket("request", found, range(SUBS), {0: 0})
    # the run's own path, decoding and joining in one call, fails the same way, and the
    # command line says what is wrong and the fix, not "internal error"
    with pytest.raises(ShuffleError, match=named) as failed:
        join_pieces({"request": shuffle.read_pieces(found, range(SUBS), {0: 0})})
    assert explain(failed.value) == (str(failed.value), EXIT_FAILED)


def test_parts_split_a_heavy_bucket_and_keep_its_order() -> None:
    assert shuffle.parts([5] * SUBS, 100) == [range(SUBS)]
    split = shuffle.parts([60, 50, 10, 200, 5, 0, 0, 0], 100)
    assert [s for r in split for s in r] == list(range(SUBS))
    assert all(sum([60, 50, 10, 200, 5, 0, 0, 0][s] for s in r) <= 100 or len(r) == 1
               for r in split)


T = "[26/Nov/2026:16:22:20.116136841 +0000] "


def test_internal_operations_spread_over_buckets_and_still_pair(tmp_path) -> None:
    # conn=Internal(0) lines have no connection: they go by their op ids, so they do not
    # all land in one bucket, and the repeated ids still pair in the file's order
    lines = []
    for i in range(200):
        ids = f"0({i % 7})({i % 2})"
        lines.append(f'{T}conn=Internal(0) op={ids} SRCH base="cn=b{i}" scope=0 '
                     f'filter="(objectClass=*)" attrs=ALL')
        lines.append(f"{T}conn=Internal(0) op={ids} RESULT err=0 tag=48 nentries={i} "
                     "wtime=0.1 optime=0.1 etime=0.1")
    data = ("\n".join(lines) + "\n").encode()
    buckets = 16
    shuffle.write_buckets(tmp_path, 0, tokenize(data).classes, server="ds", file="f",
                          file_seq=0, buckets=buckets)
    used, paired = 0, []
    for b in range(buckets):
        joined = join_pieces({cls: shuffle.read_pieces(shuffle.pieces(tmp_path, cls,
                                                                      ((0, 1, b),)),
                                                       range(SUBS), {0: 0})
                              for cls in EVENT_CLASSES})
        if not joined.events:
            continue
        used += 1
        paired += joined.operations.select("base", "nentries").rows()
    assert used >= 5  # 14 distinct ids over 16 buckets
    assert sorted(paired) == sorted((f"cn=b{i}", i) for i in range(200))


def test_the_benchs_shuffle_example_encodes_each_class_with_its_columns() -> None:
    # rust/core/examples/shuffle_file.rs, whose instruction counts the bench reports, keeps
    # its own copy of the classes' columns (it runs without Python)
    source = (Path(__file__).parents[1] / "rust/core/examples/shuffle_file.rs").read_text()
    start = source.index("= [", source.index("const CLASSES"))
    block = source[start:source.index("];", start)]
    classes = [re.findall(r'"(\w+)"', part) for part in block.split("&[")[1:]]
    provenance = {"server", "file", "file_seq"}
    assert classes == [[c for c in cols if c not in provenance]
                       for cols in EVENT_CLASSES.values()]
