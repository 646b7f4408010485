"""The whole job against logs whose truth the generator recorded."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.run import RunOptions, run

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


def test_every_request_has_its_verb_and_identity(synthetic: tuple[Truth, Path]) -> None:
    truth, out = synthetic
    ops = pl.read_parquet(out / "operations", hive_partitioning=True).filter(
        pl.col("line").is_not_null() & ~pl.col("internal"))
    got = {(r["server"], r["file"], r["line"]): r
           for r in ops.select("server", "file", "line", "verb", "bind_dn", "conn", "op")
           .iter_rows(named=True)}
    assert len(truth.requests) > 10_000
    wrong = [(key, facts, got.get(key)) for key, facts in truth.requests.items()
             if key not in got or any(got[key][k] != v for k, v in facts.items())]
    assert wrong == []
