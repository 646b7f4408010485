"""The whole job against logs whose truth the generator recorded."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run

from .synth import Truth, generate


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Path]:
    root = tmp_path_factory.mktemp("synth")
    truth = generate(root / "logs", servers=3, mb_per_server=2.5, rotate_mb=0.7,
                     gzip_rotated=True, restarts=2)
    out = root / "out"
    run(RunOptions(inputs=(str(root / "logs"),), out=out, scheduler="synchronous",
                   partition_mb=1))
    return truth, out


def test_counts_equal_the_generators(synthetic: tuple[Truth, Path]) -> None:
    truth, out = synthetic
    s = json.loads((out / "summary.json").read_text())
    c = truth.counts
    ops = s["operations"]
    for verb in ("BIND", "SRCH", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT", "ABANDON",
                 "UNBIND"):
        assert ops[verb] == c[verb], verb
    assert s["connections"] == c["connections"]
    assert s["restarts"] == c["restarts"] == 3 * 3
    assert s["internal_operations"] == c["internal_operations"]
    assert s["results"]["total"] == c["results"]
    assert s["results"]["by_err"]["49"] == c["failed_binds"]
    assert s["searches"] == {"unindexed": c["unindexed"],
                             "partially_unindexed": c["partially_unindexed"],
                             "paged": c["paged"]}
    assert s["unmatched"] == {"requests": c["unmatched_requests"], "results": 0}
    assert s["lines"]["rejected"] == 0


def _wrong_requests(truth: Truth, out: Path) -> list:
    """The generator's requests whose verb, identity, conn or op the run got wrong."""
    ops = pl.read_parquet(out / "operations", hive_partitioning=True).filter(
        pl.col("line").is_not_null() & ~pl.col("internal"))
    got = {(r["server"], r["file"], r["line"]): r
           for r in ops.select("server", "file", "line", "verb", "bind_dn", "conn", "op")
           .iter_rows(named=True)}
    return [(key, facts, got.get(key)) for key, facts in truth.requests.items()
            if key not in got or any(got[key][k] != v for k, v in facts.items()
                                     if k != "tried")]


def test_every_request_has_its_verb_and_identity(synthetic: tuple[Truth, Path]) -> None:
    truth, _ = synthetic
    assert len(truth.requests) > 10_000
    assert _wrong_requests(truth, synthetic[1]) == []


def test_many_identities_and_pooled_connections(tmp_path: Path) -> None:
    """The bench's many-identity corpus (issue 32, item 9), small: thousands of people
    bind, and application pools hold connections open for hundreds of operations."""
    truth = generate(tmp_path / "logs", servers=2, mb_per_server=3, rotate_mb=1,
                     identities=5000, pooled=0.1)
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(tmp_path / "logs"),), out=out, scheduler="synchronous",
                   partition_mb=1))
    assert _wrong_requests(truth, out) == []
    bound = {(server, facts["bind_dn"]) for (server, _, _), facts in truth.requests.items()
             if facts["verb"] == "BIND" and facts["bind_dn"] == facts["tried"]}
    binds = pl.read_parquet(out / "binds.parquet").filter(pl.col("err") == 0)
    assert len(bound) > 2 * 400  # (300 people at most without the option)
    assert set(binds.select("server", pl.col("dn").str.to_lowercase()).iter_rows()) == bound
    conns = pl.read_parquet(out / "connections.parquet")
    assert conns.filter(pl.col("operations") >= 50).height > 20  # others: 12 at most


def test_a_window_keeps_identities_bound_before_it(synthetic: tuple[Truth, Path],
                                                   tmp_path: Path) -> None:
    """Cut in the rotated files, away from the restarts: every request in the
    window has the identity the generator issued it under, and its client, though its
    connection opened and bound in an earlier file (issue 32, item 10)."""
    truth, out = synthetic
    whole = pl.read_parquet(out / "operations", hive_partitioning=True).filter(
        pl.col("line").is_not_null() & ~pl.col("internal"))
    ts = whole["ts"].dt.epoch("ns").sort()  # busy times, away from the restarts' gaps
    since, until = ts[int(ts.len() * 0.4)], ts[int(ts.len() * 0.8)]
    cut = tmp_path / "cut"
    run(RunOptions(inputs=(str(out.parent / "logs"),), out=cut, scheduler="synchronous",
                   partition_mb=1, since_ns=since, until_ns=until))
    ops = pl.read_parquet(cut / "operations", hive_partitioning=True).filter(
        pl.col("line").is_not_null() & ~pl.col("internal"))
    got = {(r["server"], r["file"], r["line"]): r for r in ops.iter_rows(named=True)}
    # requests in the window whose RESULT is in it too (a BIND answered after the window
    # ends has not changed the identity in it)
    inside = whole.filter((pl.col("ts").dt.epoch("ns") >= since)
                          & (pl.col("result_ts").dt.epoch("ns") < until))
    assert inside.height > 3000
    # requests on connections opened before the window: those a cut used to lose
    opened_before = inside.filter(pl.col("session").dt.epoch("ns") < since)
    assert opened_before.filter(pl.col("bind_dn") != "").height > 100
    wrong = []
    for r in inside.iter_rows(named=True):
        key = (r["server"], r["file"], r["line"])
        facts = truth.requests.get(key)
        if facts is None:  # UNBIND and StartTLS: the generator keeps no truth of them
            continue
        if key not in got or got[key]["bind_dn"] != facts["bind_dn"] \
                or got[key]["client_ip"] != r["client_ip"]:
            wrong.append((key, facts, got.get(key, {}).get("bind_dn")))
    assert wrong == []
