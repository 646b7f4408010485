"""Aggregate tables, mergeable histograms and `merge`, against known truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run
from pipeline.errors import ConfigError
from pipeline.outputs.merge import merge_runs
from pipeline.tables import aggregate, histogram

from .synth import generate


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("agg")
    generate(root / "logs", servers=2, mb_per_server=2, rotate_mb=0.6, restarts=2)
    out = root / "all"
    run(RunOptions(inputs=(str(root / "logs"),), out=out, scheduler="synchronous",
                   partition_mb=1))
    return root, out


def _ops(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "operations", hive_partitioning=True)


def test_fingerprint_counts_are_exact_and_percentiles_within_one_percent(corpus) -> None:
    _, out = corpus
    ops = _ops(out).filter(pl.col("verb") == "SRCH")
    fps = pl.read_parquet(out / "fingerprints.parquet")
    assert fps["count"].sum() == ops.height
    for row in fps.sort("count", descending=True).head(6).iter_rows(named=True):
        mine = ops.filter(pl.col("fingerprint") == row["fingerprint"])
        assert row["count"] == mine.height
        assert row["unindexed"] == mine["unindexed"].sum()
        assert row["paged"] == mine["paged"].sum()
        assert row["nentries_sum"] == mine["nentries"].sum()
        assert row["bind_dns"] == mine["bind_dn"].drop_nulls().n_unique()
        assert row["etime_sum"] == pytest.approx(mine["etime"].sum(), rel=1e-9)
        etimes = mine["etime"].drop_nulls().sort()
        for q in (50, 95, 99):
            exact = _nearest_rank(etimes, q / 100)
            assert abs(row[f"etime_p{q}"] - exact) <= 0.01 * exact, (row["fingerprint"], q)


def _nearest_rank(values: pl.Series, q: float) -> float:
    import math
    return values[max(0, math.ceil(q * len(values)) - 1)]


def test_workload_and_timeseries_counts_add_up(corpus) -> None:
    _, out = corpus
    ops = _ops(out).filter(~pl.col("internal"))
    work = pl.read_parquet(out / "workloads.parquet")
    series = pl.read_parquet(out / "timeseries.parquet")
    assert work["count"].sum() == series["count"].sum() == ops.height
    by_verb = dict(ops.group_by("verb").len().iter_rows())
    assert dict(work.group_by("verb").agg(pl.col("count").sum()).iter_rows()) == by_verb
    failed = ops.filter(pl.col("err").is_not_null() & ~pl.col("err").is_in([0, 5, 6, 10, 14]))
    assert work["errors"].sum() == failed.height
    # each operation's class by the built-in rules (config.DEFAULT_WORKLOADS, first match
    # wins), restated here over the operations' own columns: all rows "other" fails
    dn = pl.col("bind_dn").fill_null("")
    expected = ops.with_columns(pl.when(dn.str.to_lowercase() == "cn=directory manager")
                                .then(pl.lit("directory-manager"))
                                .when((pl.col("verb") == "SRCH") & pl.col("unindexed"))
                                .then(pl.lit("unindexed-scans"))
                                .when(dn.str.starts_with("uid=svc-")).then(pl.lit("service-accounts"))
                                .when(dn == "").then(pl.lit("anonymous"))
                                .when(dn.str.contains("ou=people,", literal=True))
                                .then(pl.lit("users")).otherwise(pl.lit("other")).alias("want"))
    want = dict(expected.group_by("want").len().iter_rows())
    assert dict(work.group_by("workload").agg(pl.col("count").sum()).iter_rows()) == want
    assert len(want) >= 4, want  # the generator's fleet has several kinds of identity


def _buckets(df: pl.DataFrame, keys: list[str], value: str) -> pl.DataFrame:
    """Histogram rows by the layout's definition (ceil of the log to base GAMMA), computed
    here, not by the core."""
    import math
    bucket = [math.ceil(math.log(v) / math.log(histogram.GAMMA)) if v > histogram.MIN_VALUE
              else histogram.ZERO_BUCKET for v in df[value]]
    return df.select(keys).with_columns(pl.Series("bucket", bucket, pl.Int32)).group_by(
        *keys, "bucket").agg(pl.len().cast(pl.Int64).alias("count"))


def test_clients_carry_what_their_operations_cost(corpus) -> None:
    """Which client IPs cause the unindexed searches and the load (issue 35, part 2, item
    6): per client IP, the etime, unindexed searches and failures of its client operations,
    as the operations table gives them, whatever bucket each connection fell in."""
    _, out = corpus
    ops = _ops(out).filter(~pl.col("internal"))
    failed = pl.col("err").is_not_null() & ~pl.col("err").is_in(list(aggregate.OK_ERRORS))
    expected = ops.group_by("client_ip").agg(
        pl.col("etime").sum().alias("etime_sum"), pl.col("unindexed").fill_null(False).sum()
        .cast(pl.Int64), failed.sum().cast(pl.Int64).alias("errors")).sort("client_ip")
    clients = pl.read_parquet(out / "clients.parquet").group_by("client_ip").agg(
        pl.col("etime_sum", "unindexed", "errors").sum()).sort("client_ip")
    assert clients.height > 3 and clients["unindexed"].sum() > 0
    assert clients.select("client_ip", "unindexed", "errors").equals(
        expected.select("client_ip", "unindexed", "errors"))
    for mine, truth in zip(clients["etime_sum"], expected["etime_sum"], strict=True):
        assert mine == pytest.approx(truth, rel=1e-9)


def test_the_slowest_operations_are_the_longest_etimes_of_client_operations(corpus) -> None:
    """slowest.parquet (issue 35, part 2, item 5): the core's number of client operations
    with the longest etime, slowest first, as a sort of the operations table gives them:
    the same rows from many buckets as a sort of all of them."""
    _, out = corpus
    ops = _ops(out).filter(~pl.col("internal") & pl.col("etime").is_not_null()
                           & (pl.col("verb") != "ABANDON"))
    slowest = pl.read_parquet(out / "slowest.parquet")
    assert slowest.height == aggregate.SLOWEST_ROWS < ops.height
    truth = ops.sort("etime", descending=True).head(aggregate.SLOWEST_ROWS)
    assert slowest["etime"].to_list() == truth["etime"].to_list()
    keys = ["server", "conn", "op", "line"]
    assert slowest.select(keys).sort(keys).equals(
        truth.select(keys).sort(keys).cast(slowest.select(keys).schema))
    assert slowest["etime"].is_sorted(descending=True)


def test_abandoned_requests_are_not_unmatched(sample: Path, tmp_path: Path) -> None:
    """On the sample, 392 searches the client abandoned had no RESULT: they are counted as
    abandoned, not unmatched (issue 35, part 2, item 2); ABANDON's etime is the abandoned
    operation's, so ABANDON's own latency is none."""
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(sample),), out=out, scheduler="synchronous"))
    summary = json.loads((out / "summary.json").read_text())
    ops = _ops(out)
    no_result = ops.filter(pl.col("line").is_not_null() & pl.col("result_line").is_null()
                           & pl.col("verb").is_in(["BIND", "SRCH", "MOD", "ADD", "DEL",
                                                   "MODRDN", "CMP", "EXT"]))
    abandoned = no_result.filter(pl.col("abandoned")).height
    assert summary["abandoned"] == abandoned == 392
    assert summary["unmatched"]["requests"] == no_result.height - abandoned == 105
    assert summary["operations"]["ABANDON"] > 0
    work = pl.read_parquet(out / "workloads.parquet").filter(pl.col("verb") == "ABANDON")
    assert work["count"].sum() == summary["operations"]["ABANDON"]
    assert work["etime_sum"].sum() == 0 and work["etime_p95"].is_null().all()


def test_histogram_merge_is_associative() -> None:
    df = pl.DataFrame({"k": ["a", "b"] * 500, "v": [i / 997 for i in range(1000)]})
    parts = [_buckets(df[i::3], ["k"], "v") for i in range(3)]
    left = histogram.merge([histogram.merge(parts[:2], ["k"]), parts[2]], ["k"])
    right = histogram.merge([parts[0], histogram.merge(parts[1:], ["k"])], ["k"])
    whole = _buckets(df, ["k"], "v")
    key = ["k", "bucket"]
    assert left.sort(key).equals(right.sort(key)) and left.sort(key).equals(whole.sort(key))


def test_merge_of_three_time_slices_equals_one_run(corpus, tmp_path: Path) -> None:
    root, out = corpus
    conns = pl.read_parquet(out / "connections.parquet")
    # the generator's restarts cut every connection: slicing there splits none
    starts = sorted(conns.filter((pl.col("conn") == 1) & (pl.col("server") == "ldap1"))
                    ["opened"].dt.epoch("ns").to_list())
    assert len(starts) == 3
    bounds = [None, starts[1] - 10**9, starts[2] - 10**9, None]
    slices = []
    for i in range(3):
        sliced = tmp_path / f"slice{i}"
        run(RunOptions(inputs=(str(root / "logs"),), out=sliced, scheduler="synchronous",
                       servers=("ldap1",), since_ns=bounds[i], until_ns=bounds[i + 1]))
        slices.append(sliced)
    whole = tmp_path / "ldap1"
    run(RunOptions(inputs=(str(root / "logs"),), out=whole, scheduler="synchronous",
                   servers=("ldap1",)))
    merged = tmp_path / "merged"
    summary, tables = merge_runs(slices, merged)
    expected = json.loads((whole / "summary.json").read_text())
    for key in ("connections", "peak_connections", "restarts", "operations",
                "internal_operations", "results", "searches", "unmatched", "abandoned",
                "time_range"):
        assert summary[key] == expected[key], key
    for name in ("fingerprints", "workloads", "timeseries", "binds", "slowest", "indexes"):
        one = pl.read_parquet(whole / f"{name}.parquet")
        assert pl.read_parquet(merged / f"{name}.parquet").equals(one), name
        assert tables[name].equals(one)
    # load periods with operations agree (a merge adds no empty periods between its runs)
    busy = pl.col("operations") > 0
    one = pl.read_parquet(whole / "load.parquet").filter(busy).select("start", "operations")
    merged_load = tables["load"].filter(busy).select("start", "operations")
    assert tables["load"]["seconds"][0] == 1 and merged_load.equals(one) and one.height


def test_merge_refuses_different_fingerprint_options(corpus, tmp_path: Path) -> None:
    root, out = corpus
    other = tmp_path / "sorted"
    run(RunOptions(inputs=(str(root / "logs"),), out=other, scheduler="synchronous",
                   sort_operands=True))
    with pytest.raises(ConfigError, match="made with fingerprint"):
        merge_runs([out, other], tmp_path / "m")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    with pytest.raises(ConfigError, match="not the output of dsaccess run"):
        merge_runs([out, not_a_run], tmp_path / "m")


def test_tables_round_trip_through_partials(corpus) -> None:
    _, out = corpus
    tables = {n: pl.read_parquet(out / f"{n}.parquet") for n in aggregate.TABLE_KEYS}
    again = aggregate.finalize_tables(aggregate.combine_tables(
        [aggregate.tables_to_partials(tables)]))
    for name, table in tables.items():
        assert again[name].equals(table), name
    # and two copies combined: the same rows, every count doubled (an identity would pass
    # the round trip above)
    twice = aggregate.finalize_tables(aggregate.combine_tables(
        [aggregate.tables_to_partials(tables)] * 2))
    for name, table in tables.items():
        if "count" in table.columns:
            assert twice[name].height == table.height, name
            assert twice[name]["count"].sum() == 2 * table["count"].sum(), name


@pytest.mark.parametrize("partition_mb", [64, 1])
def test_every_output_table_matches_its_golden_digest(tmp_path: Path, partition_mb: int) -> None:
    """Every aggregate table, the connections and summary.json of the sample and of a
    generated fleet, as digests written before the aggregates moved into the compiled
    core (``python -m tests.golden outputs`` rewrites them, for a defect fixed on
    purpose): one bucket or many, the same rows."""
    from .golden import GOLDEN, output_corpora, output_digests

    golden = json.loads((GOLDEN / "outputs.json").read_text())
    for name, logs in output_corpora(tmp_path).items():
        out = tmp_path / f"out-{name}"
        run(RunOptions(inputs=(str(logs),), out=out, scheduler="synchronous",
                       partition_mb=partition_mb))
        assert output_digests(out) == golden[name], name


@pytest.mark.parametrize("partition_mb", [64, 1])
def test_no_combine_holds_the_fleets_rows_of_the_tables_finished_by_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partition_mb: int) -> None:
    """Issue 32, item 9: each group of servers (one server's buckets, or small servers'
    shared ones) leaves its partials of the tables finished by server in the scratch once
    combined, and tasks finish them there: the combine at the root, and the client, hold
    the other tables only (the golden digests above hold the finished rows)."""
    from pipeline.engine import finish

    from .golden import output_corpora

    seen = []

    def spy(opts, staging, chunk_reports, reduced, *args):
        seen.append((sorted(reduced.tables), len(reduced.parked)))
        return finished(opts, staging, chunk_reports, reduced, *args)

    finished = finish.finish
    monkeypatch.setattr(finish, "finish", spy)
    out = tmp_path / "out"
    run(RunOptions(inputs=(str(output_corpora(tmp_path)["synth"]),), out=out,
                   scheduler="synchronous", partition_mb=partition_mb))
    (names, groups), = seen
    assert names and not [n for n in names if n.partition(":")[0] in aggregate.PER_SERVER]
    assert groups == (2 if partition_mb == 1 else 1)  # a server each, or both in one
    for table in aggregate.PER_SERVER:
        servers = pl.read_parquet(out / f"{table}.parquet")["server"]
        assert servers.unique(maintain_order=True).to_list() == ["ldap1", "ldap2"], table


def test_a_merge_of_several_runs_keeps_each_runs_figures_for_its_report(corpus,
                                                                        tmp_path: Path) -> None:
    """A week's report shows its days (issue 34, item 3): runs.parquet holds each merged
    run's fingerprints and bind DNs, adding up to the merged tables; the report has a
    column per run; a merge of merges keeps the runs it was made of."""
    root, _ = corpus
    days = []
    for server in ("ldap1", "ldap2"):  # two "days": here, the fleet's two servers
        day = tmp_path / f"day-{server}"
        run(RunOptions(inputs=(str(root / "logs"),), out=day, scheduler="synchronous",
                       servers=(server,)))
        days.append(day)
    merged = tmp_path / "week"
    _, tables = merge_runs(days, merged)
    runs = pl.read_parquet(merged / "runs.parquet")
    assert sorted(runs["run"].unique()) == ["day-ldap1", "day-ldap2"]
    fps = pl.read_parquet(merged / "fingerprints.parquet")
    per_run = runs.filter(pl.col("kind") == "fingerprint").group_by("key").agg(
        pl.col("count").sum())
    assert dict(per_run.iter_rows()) == dict(fps.select("fingerprint", "count").iter_rows())
    one = pl.read_parquet(days[0] / "fingerprints.parquet")
    mine = runs.filter((pl.col("run") == "day-ldap1") & (pl.col("kind") == "fingerprint"))
    assert dict(mine.select("key", "count").iter_rows()) == dict(
        one.select("fingerprint", "count").iter_rows())
    page = (merged / "report.html").read_text()
    assert '<h2>By run</h2>' in page and page.count(">day-ldap1<") >= 2  # both tables
    assert "<h2>By run</h2>" not in (days[0] / "report.html").read_text()
    again = merge_runs([merged], tmp_path / "month")[1]["runs"]
    assert again.sort(again.columns).equals(runs.sort(runs.columns))
    # the two servers' runs sweep the fleet's connections as one run of both does
    both = json.loads((root / "all" / "summary.json").read_text())
    merged_summary = json.loads((merged / "summary.json").read_text())
    assert merged_summary["peak_connections"] == both["peak_connections"] > max(
        s["peak_connections"] for s in both["servers"].values())


def test_tables_finished_a_server_at_a_time_equal_the_whole_tables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Server b's operations have no etime (their RESULTs were never seen): finished on
    its own, its rows still get null histograms and percentiles, as in one pass."""
    keys = {"workload": ["w"] * 3, "bind_dn": ["x", "y", "x"], "verb": ["SRCH"] * 3}
    work = pl.DataFrame({"server": ["a", "a", "b"], **keys, "count": [2, 1, 1],
                         "etime_sum_ns": [10, 5, 0]})
    hist = pl.DataFrame({"server": ["a", "a"], "workload": ["w"] * 2, "bind_dn": ["x"] * 2,
                         "verb": ["SRCH"] * 2, "bucket": pl.Series([3, 4], dtype=pl.Int32),
                         "count": [1, 1]}).with_columns(pl.col(pl.String).cast(pl.Categorical))
    combined = {"workloads": work, "workloads:etime": hist}
    sliced = aggregate.finalize_tables(combined)["workloads"]
    # released: the same rows, and the partials leave the dict as they are finished
    given = dict(combined)
    released = aggregate.finalize_tables(given, release=True)["workloads"]
    assert not given
    monkeypatch.setattr(aggregate, "BY_SERVER", frozenset())
    whole = aggregate.finalize_tables(combined)["workloads"]
    assert sliced.equals(whole)
    assert released.equals(whole)
    b = sliced.filter(pl.col("server") == "b")
    assert b["etime_hist_bucket"].to_list() == [None] and b["etime_p95"].to_list() == [None]
    assert sliced["server"].to_list() == ["a", "a", "b"]


def test_partials_combined_once_and_as_they_come_from_the_core_combine_together() -> None:
    """A bucket joined in parts returns its partials combined (keys first), its
    neighbours as the core orders their columns (the load table's ``operations`` before
    its key ``seconds``): a later combine of both adds them up, whatever their order."""
    t = datetime(2026, 11, 26, 16, 20, tzinfo=UTC)

    def load(server: str, operations: int) -> pl.DataFrame:  # the core's column order
        return pl.DataFrame({"server": [server], "start": [t], "operations": [operations],
                             "seconds": [60]})
    parted = aggregate.combine_tables([{"load": load("a", 2)}, {"load": load("b", 3)}])
    assert parted["load"].columns[:3] == ["server", "start", "seconds"]
    both = aggregate.combine_tables([parted, {"load": load("a", 5)}])["load"]
    assert both.sort("server").select("server", "operations").rows() == [("a", 7), ("b", 3)]
