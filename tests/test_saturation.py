"""The worker pool's saturation against a generator's truth: operations on a millisecond
grid, so the level in flight is constant on each millisecond and counting them one by one
gives every figure without the sweep's formula."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import polars as pl
import pytest

from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run

T0 = 1_795_132_800  # 2026-11-20T00:00:00Z: a whole second (and minute)


def _stamp(ms: int) -> str:
    from datetime import UTC, datetime
    t = datetime.fromtimestamp(T0 + ms // 1000, UTC)
    return f"[{t:%d/%b/%Y:%H:%M:%S}.{ms % 1000 * 1_000_000:09d} +0000]"


def _fleet(root: Path, seed: int) -> dict[str, list[tuple[int, int, int, tuple | None]]]:
    """Two servers' logs over 10 s: per server (start ms, end ms, wtime µs, pool)."""
    rng = random.Random(seed)
    truth = {}
    for server in ("ds1", "ds2"):
        ops = []
        lines = [f"{_stamp(0)} conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.2"]
        for conn in range(1, 40):
            at = rng.randrange(0, 9_000)
            for op in range(rng.randrange(5, 40)):
                start = at + rng.randrange(0, 20)
                end = start + rng.choice([0, 1, 2, 5, 30, 400])
                if end > 9_999:
                    break
                wtime = rng.choice([0, 200, 1_000, 9_999, 10_000, 150_000])  # µs
                pool = (rng.randrange(0, 5), 4, rng.randrange(0, 3)) if server == "ds2" else None
                ops.append((start, end, wtime, pool))
                extra = f" wbusy={pool[0]}/{pool[1]} wqdepth={pool[2]}" if pool else ""
                lines += [
                    f'{_stamp(start)} conn={conn} op={op} SRCH base="dc=x" scope=2 '
                    f'filter="(uid=u{op})" attrs=ALL',
                    f"{_stamp(end)} conn={conn} op={op} RESULT err=0 tag=101 nentries=1 "
                    f"wtime={wtime / 1e6:.6f} optime={(end - start) / 2e3:.6f} "
                    f"etime={(end - start) / 1e3:.9f}"
                    f"{extra}"]
                at = end
        lines.append(f"{_stamp(10_000)} conn=1 op=-1 fd=64 closed - U1")
        folder = root / server
        folder.mkdir(parents=True)
        (folder / "access").write_text("\n".join(lines) + "\n")
        truth[server] = ops
    return truth


def _nearest_rank(values: list, q: float):
    values = sorted(values)
    return values[max(1, math.ceil(q * len(values))) - 1] if values else None


def _expected(ops: list[tuple[int, int, int, tuple | None]]) -> list[dict]:
    """Per second 0..9: the figures, by counting each millisecond (and the second at 10 s,
    which covers no time)."""
    level = [0] * 10_000
    for start, end, _, _ in ops:
        for ms in range(start, end):
            level[ms] += 1
    rows = []
    for sec in range(10):
        cells = sorted(level[sec * 1000:(sec + 1) * 1000])
        mine = [o for o in ops if o[0] // 1000 == sec]
        waits = [o[2] / 1e6 for o in mine]
        pools = [o[3] for o in mine if o[3]]
        saturated = {o[0] // 1000 for o in mine if o[3] and o[3][0] == o[3][1] and o[3][2] > 0}
        rows.append({
            "operations": len(mine), "in_flight_p50": cells[499], "in_flight_p99": cells[989],
            "in_flight_max": cells[-1], "wtime_p95": _nearest_rank(waits, 0.95),
            "wtime_max": max(waits, default=None),
            "waited_10ms": sum(w >= 0.01 for w in waits) / len(waits) if waits else None,
            "busy_max": max((p[0] for p in pools), default=None),
            "queue_max": max((p[2] for p in pools), default=None),
            "saturated_seconds": len(saturated) if pools else None,
        })
    return rows


def test_saturation_per_second_is_the_generators_truth(tmp_path: Path) -> None:
    truth = _fleet(tmp_path / "logs", seed=7)
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(tmp_path / "logs"),), out=out, scheduler="synchronous"))
    table = pl.read_parquet(out / "saturation.parquet")
    columns = list(_expected([])[0])
    fleet_ops = truth["ds1"] + truth["ds2"]
    for server, ops in [("ds1", truth["ds1"]), ("ds2", truth["ds2"]), (None, fleet_ops)]:
        rows = table.filter(pl.col("server").eq_missing(server)).sort("start")
        assert rows["seconds"].to_list() == [1] * 11
        got = rows.head(10).select(columns).to_dicts()
        want = _expected(ops)
        for sec, (g, w) in enumerate(zip(got, want, strict=True)):
            if server is None:  # the fleet's pool is not a pool: its levels and waits only
                w.update(busy_max=None, queue_max=None, saturated_seconds=None)
                g.update(busy_max=None, queue_max=None, saturated_seconds=None)
            assert g == w, (server, sec)
        assert rows["in_flight_max"][10] is None  # the second at the last instant
    summary = json.loads((out / "summary.json").read_text())
    for server in ("ds1", "ds2"):
        ops = truth[server]
        s = summary["servers"][server]["saturation"]
        waits = [o[2] / 1e6 for o in ops]
        assert s["operations"] == len(ops)
        assert s["peak_in_flight"] == max(r["in_flight_max"] for r in _expected(ops))
        assert s["wtime_p99"] == _nearest_rank(waits, 0.99)
        assert s["waited_10ms"] == sum(w >= 0.01 for w in waits)
    assert summary["servers"]["ds1"]["saturation"]["saturated_seconds"] is None  # not logged
    saturated = {o[0] // 1000 for o in truth["ds2"] if o[3][0] == o[3][1] and o[3][2] > 0}
    assert summary["servers"]["ds2"]["saturation"]["saturated_seconds"] == len(saturated) > 0
    assert summary["servers"]["ds2"]["saturation"]["workers"] == 4
    assert summary["saturation"]["peak_in_flight"] == max(
        r["in_flight_max"] for r in _expected(fleet_ops))
    # who waited: the workloads' and fingerprints' counts, and metrics.prom's histogram
    work = pl.read_parquet(out / "workloads.parquet")
    prom = (out / "metrics.prom").read_text().splitlines()
    for server, ops in truth.items():
        waited = [o[2] for o in ops if o[2] >= 10_000]
        mine = work.filter(pl.col("server") == server)
        assert mine["waited"].sum() == len(waited)
        assert int(mine["waited_wtime_sum_ns"].sum()) == sum(waited) * 1000
        assert mine["wtime_count"].sum() == len(ops)

        def prom_sum(metric: str, server: str = server) -> int:
            return sum(int(float(line.rsplit(" ", 1)[1])) for line in prom
                       if line.startswith(metric) and f'server="{server}"' in line)
        assert prom_sum("dsaccess_operation_wtime_seconds_count") == len(ops)
        assert sum(int(float(line.rsplit(" ", 1)[1])) for line in prom if line.startswith(
            "dsaccess_operation_wtime_seconds_bucket") and f'server="{server}"' in line
            and 'le="0.01"' in line) == sum(o[2] <= 10_000 for o in ops)
    fps = pl.read_parquet(out / "fingerprints.parquet")
    assert fps["waited"].sum() == sum(o[2] >= 10_000 for o in fleet_ops)
    # who held the pool in ds2's saturated seconds: every search is one fingerprint
    held = pl.read_parquet(out / "pool_held.parquet")
    in_full = [o for o in truth["ds2"] if o[0] // 1000 in saturated]
    by_print = held.filter(pl.col("by") == "fingerprint").rows(named=True)
    assert [(r["server"], r["who"], r["operations"]) for r in by_print] == [
        ("ds2", "sub (uid=...)", len(in_full))]
    assert by_print[0]["optime_sum"] == pytest.approx(sum(o[1] - o[0] for o in in_full) / 2e3)
    assert held["server"].unique().to_list() == ["ds2"]
    # the report says it in one sentence, and shades the seconds
    page = (out / "report.html").read_text()
    assert (f'<p id="pool-sentence">The worker pool was full with operations queued on ds2 '
            f"({len(saturated):,} s), first in the period from 2026-11-20 00:00:0"
            f"{min(saturated)}. ") in page
    data = json.loads(page.split('id="report-data">')[1].split("</script>")[0])
    chart = next(c for c in data["charts"] if c["id"] == "chart-pool")
    assert len(chart["layout"]["shapes"]) == len(saturated)
    assert 'id="who-waited"' in page and 'id="who-held"' in page


def test_slabs_of_time_give_what_one_slab_gives(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep is fed a slab of time at a time, so that it never holds every operation:
    cut into many slabs (a few hundred events each), the periods, the figures and who
    held the pool are those of one slab, to the bit."""
    from pipeline.engine import saturation

    _fleet(tmp_path / "logs", seed=5)
    cuts: list[tuple[int, ...]] = []
    real = saturation.slab_cuts

    def spy(spans: list[tuple[int, int, int]], per_slab: int | None = None) -> tuple[int, ...]:
        cuts.append(real(spans, per_slab))
        return cuts[-1]
    monkeypatch.setattr(saturation, "slab_cuts", spy)
    outs = {}
    for per_slab in (None, 300):
        if per_slab:
            monkeypatch.setattr(saturation, "SLAB_EVENTS", per_slab)
        outs[per_slab] = out = tmp_path / f"out-{per_slab}"
        run(RunOptions(inputs=(str(tmp_path / "logs"),), out=out, scheduler="synchronous"))
    assert len(cuts[0]) == 0 and len(cuts[-1]) > 8
    for name in ("saturation.parquet", "pool_held.parquet"):
        one, many = (pl.read_parquet(outs[k] / name) for k in (None, 300))
        assert one.height > 0 and one.equals(many), name
    one, many = (json.loads((outs[k] / "summary.json").read_text()) for k in (None, 300))
    assert one["saturation"] == many["saturation"]
    assert one["servers"] == many["servers"]


def test_threads_give_the_workers_a_server_does_not_log(tmp_path: Path) -> None:
    """``--threads NAME=N`` fills the worker count where the logs do not give it (ds1),
    never over what they give (ds2 logs 4); a name of no server is refused."""
    from pipeline.errors import ConfigError

    _fleet(tmp_path / "logs", seed=3)
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(tmp_path / "logs"),), out=out, scheduler="synchronous",
                   threads=(("ds1", 16), ("ds2", 32))))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["servers"]["ds1"]["saturation"]["workers"] == 16
    assert summary["servers"]["ds2"]["saturation"]["workers"] == 4
    table = pl.read_parquet(out / "saturation.parquet")
    assert table.filter(pl.col("server") == "ds1")["workers"].unique().to_list() == [16]
    with pytest.raises(ConfigError, match="--threads names no server of the run: ds9"):
        run(RunOptions(inputs=(str(tmp_path / "logs"),), out=tmp_path / "other",
                       scheduler="synchronous", threads=(("ds9", 4),)))


def test_a_run_without_events_has_no_periods(tmp_path: Path) -> None:
    """No event, no window: no period (a fleet period at the epoch was the first version's
    answer)."""
    folder = tmp_path / "logs" / "ds1"
    folder.mkdir(parents=True)
    (folder / "access").write_text("\tthe title block only\n\n")
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(tmp_path / "logs"),), out=out, scheduler="synchronous",
                   force=True))
    assert pl.read_parquet(out / "saturation.parquet").height == 0
    pool = json.loads((out / "summary.json").read_text())["saturation"]
    assert pool["operations"] == 0 and pool["peak_in_flight"] is None
