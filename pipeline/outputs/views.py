"""The figures every view shows (HTML report, terminal summary, text report), computed
once here from summary.json and the aggregate tables, so the views cannot disagree.

Times are seconds here; the views format them (``names.ms``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ..names import err_name, scope_name, when
from ..tables import histogram
from ..tables.aggregate import OK_ERRORS, SUMMARY_VERBS
from ..tables.frames import Table, columns, height

# a load period counts toward the peak rate only when the window covers most of it
PEAK_MIN_COVER = 0.5


def dn_text(value: str | None) -> str:
    """A bind DN as people read it: ``""`` is anonymous, null a connection opened before
    the first line read (its identity is not in the logs)."""
    return "(anonymous)" if value == "" else ("(unknown)" if value is None else value)


def target_text(value: str | None) -> str:
    """A BIND's target DN as people read it: SASL binds name no DN (the identity is in
    the credentials), and neither do anonymous simple binds."""
    return "(no DN: SASL or anonymous)" if value == "" else (
        "(unknown)" if value is None else value)


def verbs(summary: dict[str, Any], tables: dict[str, Table]) -> pl.DataFrame:
    """Per verb: operations (summary.json's count of request lines), failed results and
    the etime p95 (seconds), busiest first."""
    counts = pl.DataFrame({"verb": list(SUMMARY_VERBS),
                           "operations": [summary["operations"][v] for v in SUMMARY_VERBS]})
    work = tables.get("workloads")
    if work is None or not height(work):
        return counts.with_columns(pl.lit(0, pl.Int64).alias("errors"),
                                   pl.lit(None, pl.Float64).alias("etime_p95"))
    errors = work.lazy().group_by("verb").agg(pl.col("errors").sum()).collect()
    hist = histogram.from_lists(work, ["verb"], "etime").group_by("verb", "bucket").agg(
        pl.col("count").sum())
    p95 = histogram.percentiles(hist, ["verb"], (0.95,)).rename({"p95": "etime_p95"})
    return counts.join(errors, on="verb", how="left").join(p95, on="verb", how="left") \
        .with_columns(pl.col("errors").fill_null(0)).filter(pl.col("operations") > 0) \
        .sort("operations", "verb", descending=[True, False])


def failed_binds(tables: dict[str, Table], top: int) -> pl.DataFrame:
    """BINDs that failed, by the DN they tried (the request's target, not the identity in
    force, which a failed BIND resets to anonymous): failed, binds, and the result codes."""
    binds = tables.get("binds")
    if binds is None or not binds.height:
        return pl.DataFrame(schema={"dn": pl.String, "failed": pl.Int64, "binds": pl.Int64,
                                    "codes": pl.String})
    failed = pl.col("err").is_not_null() & ~pl.col("err").is_in(OK_ERRORS)
    by_code = binds.filter(failed).group_by("dn", "err").agg(pl.col("count").sum()).sort(
        "count", "err", descending=[True, False])
    codes = {dn: ", ".join(f"{err_name(e)} ×{n:,}" for e, n in zip(
        part["err"], part["count"], strict=True))
        for (dn,), part in by_code.partition_by("dn", as_dict=True, maintain_order=True).items()}
    per_dn = binds.group_by("dn").agg(pl.col("count").filter(failed).sum().alias("failed"),
                                      pl.col("count").sum().alias("binds"))
    per_dn = per_dn.filter(pl.col("failed") > 0).sort("failed", "dn", descending=[True, False],
                                                      nulls_last=True).head(top)
    return per_dn.with_columns(pl.col("dn").replace_strict(codes, default="",
                                                           return_dtype=pl.String)
                               .alias("codes"))


def exact_seconds(column: str) -> pl.Expr:
    """The sum of a duration column in seconds, from its exact nanosecond twin: a sum of
    the float column depends on the order a group-by adds the rows in, which differs from
    run to run, and so would the report's digits."""
    return (pl.col(f"{column}_ns").sum().cast(pl.Float64) / 1e9).alias(column)


def bind_dns(tables: dict[str, Table], top: int) -> pl.DataFrame:
    """The identities that issue the most operations: operations, errors, total etime (s)."""
    work = tables.get("workloads")
    if work is None or not height(work):
        return pl.DataFrame(schema={"bind_dn": pl.String, "count": pl.Int64,
                                    "etime_sum": pl.Float64, "errors": pl.Int64})
    return work.lazy().group_by("bind_dn").agg(
        pl.col("count").sum(), exact_seconds("etime_sum"), pl.col("errors").sum()).sort(
        "count", "bind_dn", descending=[True, False], nulls_last=True).head(top).collect()


def _mostly_covered(load: pl.DataFrame) -> pl.DataFrame:
    """The load periods the window covers mostly (all of them when none is)."""
    full = load.filter(pl.col("covered_seconds") >= PEAK_MIN_COVER * pl.col("seconds"))
    return full if full.height else load


def server_rates(tables: dict[str, Table]) -> pl.DataFrame:
    """Per server: the peak rate (ops/s) over the load periods the window covers mostly,
    and when it was."""
    load = tables.get("load")
    if load is None or not load.height:
        return pl.DataFrame(schema={"server": pl.String, "peak_rate": pl.Float64,
                                    "peak_at": pl.Datetime("ns", "UTC")})
    return _mostly_covered(load).sort("rate", "start", descending=[True, False],
                                      nulls_last=True).group_by(
        "server", maintain_order=True).first().select(
        "server", pl.col("rate").alias("peak_rate"), pl.col("start").alias("peak_at")) \
        .sort("server")


def fleet_peak_rate(tables: dict[str, Table]) -> tuple[float, Any]:
    """The fleet's peak rate (the servers' rates added per period) and its period start."""
    load = tables.get("load")
    if load is None or not load.height:
        return 0.0, None
    per = _mostly_covered(load).group_by("start").agg(pl.col("rate").sum()).sort("rate", "start",
                                                                descending=[True, False])
    return float(per["rate"][0]), per["start"][0]


def minute_rates_by_verb(summary: dict[str, Any], tables: dict[str, Table]
                         ) -> pl.DataFrame:
    """Per (minute, verb): operations per second over the seconds of the minute each
    server's window covers (the first and last minutes are partial), added over servers."""
    series = tables.get("timeseries")
    if series is None or not series.height:
        return pl.DataFrame(schema={"minute": pl.Datetime("ns", "UTC"), "verb": pl.String,
                                    "rate": pl.Float64})
    ranges = pl.DataFrame({
        "server": list(summary["servers"]),
        "first": [s["time_range"]["first"] for s in summary["servers"].values()],
        "last": [s["time_range"]["last"] for s in summary["servers"].values()],
    }, schema={"server": pl.String, "first": pl.String, "last": pl.String}).with_columns(
        pl.col("first", "last").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns",
                                                time_zone="UTC"))
    minute = pl.col("minute").cast(pl.Datetime("ns", "UTC"))
    covered = (pl.min_horizontal(minute + pl.duration(minutes=1), pl.col("last"))
               - pl.max_horizontal(minute, pl.col("first"))).dt.total_nanoseconds() / 1e9
    rows = series.select("server", minute.alias("minute"), "verb", "count").join(
        ranges, on="server", how="left").with_columns(
        covered.fill_null(60.0).clip(lower_bound=1.0, upper_bound=60.0).alias("covered"))
    return rows.group_by("minute", "verb").agg((pl.col("count") / pl.col("covered")).sum()
                                               .alias("rate")).sort("minute", "verb")


def outcome(code: str) -> bool:
    """A result code of summary.json's ``by_err`` that is no failure (``OK_ERRORS``; a code
    that is no number counts as a failure).

    >>> outcome("0"), outcome("6"), outcome("10"), outcome("49"), outcome("x")
    (True, True, True, False, False)
    """
    return code.lstrip("-").isdigit() and int(code) in OK_ERRORS


REJECTED_WARN_SHARE = 0.01  # more rejected lines than this is a warning: a format we miss


def run_warnings(summary: dict[str, Any], windowed: bool = False,
                 spans: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """What makes a finished run suspect (it exits 2): a server with over 1% of its lines
    rejected, a server with no event in the window (told with ``spans``: the first and
    last time of its logs' events, ISO UTC) or in its files (title blocks, blank lines or
    nothing), workload rules that failed on rows."""
    out = []
    spans = spans or {}
    for name, s in summary["servers"].items():
        lines = s["lines"]
        parsed = lines["parsed"] + lines.get("outside_window", 0)
        read = parsed + lines["rejected"]
        if read and lines["rejected"] / read > REJECTED_WARN_SHARE:
            out.append(f"{name}: {lines['rejected'] / read:.1%} of its lines were rejected "
                       f"({lines['rejected']:,} of {read:,}; see rejects.parquet)")
        if not lines["parsed"] and (parsed or windowed):
            where = "in the --since/--until window" if windowed else "in its logs"
            span = (f", from {when(spans[name][0])} to {when(spans[name][1])} UTC"
                    if name in spans else "")
            out.append(f"{name}: no events {where} ({parsed:,} lines parsed{span})")
        elif not read:  # its files hold title blocks and blank lines, or nothing
            out.append(f"{name}: no events in its logs (" + (
                f"{lines['total']:,} lines: {lines['header']:,} of title blocks, "
                f"{lines['blank']:,} blank)" if lines["total"] else "its files are empty)"))
    for rule, rows in sorted(summary.get("workload_rule_errors", {}).items()):
        out.append(f"workload rule {rule!r} failed on {rows:,} operations (treated as no "
                   "match; fix the rule)")
    return out


CLIENT_COSTS = ("connections", "operations", "etime_sum", "unindexed", "errors")


def client_ips(clients: pl.DataFrame, top: int) -> pl.DataFrame:
    """The ``top`` client IPs by the etime of their client operations (the load they
    put on the servers), with their connections, operations, unindexed searches and
    failures, summed over servers, transports and close codes. Outputs written before
    these costs were counted read them as 0."""
    present = [pl.col(c) if c in clients.columns else pl.lit(0).alias(c) for c in CLIENT_COSTS]
    return clients.select("client_ip", *present).group_by("client_ip").agg(
        pl.col(c).sum() for c in CLIENT_COSTS
    ).sort("etime_sum", "connections", "client_ip", descending=[True, True, False],
           nulls_last=True).head(top)


SLOWEST_SHOWN = 20  # as logconv lists by default (-s 20)


def slowest(tables: dict[str, Table], show_examples: bool = False,
            top: int = SLOWEST_SHOWN) -> list[dict[str, Any]]:
    """The ``top`` slowest client operations (logconv's longest etimes), as rows of
    server, time (``when``), conn, op, verb, bind DN (``dn_text``), client, target, etime,
    wtime (seconds) and result code. A search's target is its base, scope and filter
    fingerprint, or its raw filter with ``show_examples`` (values identify people); other
    operations name their entry DN."""
    df = tables.get("slowest")
    if df is None or not df.height:
        return []
    rows = []
    for r in df.head(top).iter_rows(named=True):
        if r["verb"] == "SRCH":
            # the fingerprint begins with the scope; a raw filter does not
            what = f"({scope_name(r['scope'])}) {r['filter'] or ''}" if show_examples \
                else r["fingerprint"] or ""
            target = f"{r['base']} {what}".strip()
        else:
            target = r["dn"] or ""
        rows.append({"server": r["server"], "time": when_ns(r["ts"] or r["result_ts"]),
                     "conn": r["conn"], "op": r["op"], "verb": r["verb"] or "",
                     "bind_dn": dn_text(r["bind_dn"]), "client": r["client_ip"] or "",
                     "target": target, "etime": r["etime"], "wtime": r["wtime"],
                     "err": r["err"]})
    return rows


def when_ns(value: Any) -> str:
    """A time of a table (a UTC datetime) as ``when`` shows summary times."""
    return "" if value is None else when(value.isoformat().replace("+00:00", "Z"))


def pool_sentence(summary: dict[str, Any], tables: dict[str, Table]) -> str:
    """One sentence: did any server's worker pool saturate, and when (from the servers
    that log their pool: 389 DS 3.2.1+ with nsslapd-statlog-level bit 2); else how long
    operations waited for a worker, which every server logs (wtime)."""
    servers = {name: s.get("saturation", {}) for name, s in summary.get("servers", {}).items()}
    logging = {n: p for n, p in servers.items() if p.get("saturated_seconds") is not None}
    fleet = summary.get("saturation", {})
    waits = ""
    if fleet.get("wtime_p99") is not None:
        waits = (f"{fleet['waited_10ms']:,} operations ({fleet['waited_10ms_share']:.1%}) "
                 f"waited 10 ms or more for a worker; wtime p99 "
                 f"{fleet['wtime_p99'] * 1000:,.1f} ms; at most "
                 f"{fleet.get('peak_in_flight') or 0:,} operations in flight at once.")
    full = {n: p["saturated_seconds"] for n, p in logging.items() if p["saturated_seconds"]}
    if full:
        pool = tables.get("saturation")
        first = ""
        if pool is not None and "saturated_seconds" in pool.columns:
            hit = pool.filter(pl.col("server").is_in(list(full))
                              & (pl.col("saturated_seconds") > 0))
            if hit.height:
                first = f", first in the period from {when_ns(hit['start'].min())}"
        named = ", ".join(f"{n} ({s:,} s)" for n, s in sorted(full.items()))
        return f"The worker pool was full with operations queued on {named}{first}. {waits}"
    if logging:
        return (f"No worker pool was full with operations queued ({len(logging)} of "
                f"{len(servers)} servers log their pool). {waits}")
    return ("Whether the worker pool saturated is unknown: no server logs its pool "
            "(389 DS 3.2.1+, nsslapd-statlog-level bit 2). " + waits).strip()


def pool_servers(summary: dict[str, Any]) -> pl.DataFrame:
    """Per server: its saturation figures (summary.json), busiest wait first."""
    rows = [{"server": name, **s.get("saturation", {})}
            for name, s in summary.get("servers", {}).items()]
    schema = {"server": pl.String, "operations": pl.Int64, "peak_in_flight": pl.Int64,
              "workers": pl.Int64, "wtime_p95": pl.Float64, "wtime_p99": pl.Float64,
              "waited_10ms": pl.Int64, "waited_10ms_share": pl.Float64,
              "saturated_seconds": pl.Int64}
    df = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)
    return df.sort("waited_10ms", "server", descending=[True, False], nulls_last=True)


def who_waited(tables: dict[str, Table], top: int) -> pl.DataFrame:
    """Who waited 10 ms or more for a worker: per workload class, bind DN and search
    fingerprint, the ``top`` of each by the wtime those waits add up to (seconds); none
    for outputs written before the counts were kept."""
    frames = []
    work, fps = tables.get("workloads"), tables.get("fingerprints")
    for by, table, key in (("workload", work, "workload"), ("bind DN", work, "bind_dn"),
                           ("fingerprint", fps, "fingerprint")):
        if table is None or "waited" not in columns(table) or not height(table):
            continue
        rows = table.lazy().group_by(key).agg(
            pl.col("waited").sum(),
            (pl.col("waited_wtime_sum_ns").sum().cast(pl.Float64) / 1e9).alias("wtime"),
        ).collect()
        rows = rows.filter(pl.col("waited") > 0).sort(["wtime", key], descending=[True, False],
                                                      nulls_last=True).head(top)
        name = (pl.col(key).map_elements(dn_text, return_dtype=pl.String, skip_nulls=False)
                if key == "bind_dn" else pl.col(key).cast(pl.String))
        frames.append(rows.select(pl.lit(by).alias("by"), name.alias("who"), "waited", "wtime"))
    schema = {"by": pl.String, "who": pl.String, "waited": pl.Int64, "wtime": pl.Float64}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


ADVICE_SHOWN = 20
FINGERPRINTS_SHOWN = 3


def index_advice(tables: dict[str, Table], top: int = ADVICE_SHOWN
                 ) -> list[dict[str, Any]]:
    """The ``top`` rows of the index advice (``indexes.parquet``, ranked: STAT proof of
    a missing index first, then the filters' candidates, then the indexes that exist; by
    the etime of their searches within each), as rows of server, attribute, index type,
    searches (A and U), etime (seconds), evidence (``evidence_text``) and fingerprints (the
    first few, and how many more)."""
    df = tables.get("indexes")
    if df is None or not df.height:
        return []
    rows = []
    # (rows without searches only say an index exists)
    for r in df.filter(pl.col("searches") > 0).head(top).iter_rows(named=True):
        prints = r["fingerprints"] or []
        shown = ", ".join(prints[:FINGERPRINTS_SHOWN])
        more = len(prints) - FINGERPRINTS_SHOWN
        rows.append({
            "server": r["server"], "attribute": r["attribute"], "index": r["index"],
            "searches": r["searches"], "unindexed": r["unindexed"],
            "partially_unindexed": r["partially_unindexed"], "etime": r["etime_sum"],
            "evidence": evidence_text(r),
            "fingerprints": shown + (f" (+{more:,} more)" if more > 0 else "")})
    return rows


# what the evidence of the index advice means, said once under its table
ADVICE_LEGEND = (
    "Evidence: where the server logs its index reads (nsslapd-statlog-level: 1, 389 DS "
    "2.3.1+), a read that returned all IDs proves the index type missing, or the key over "
    "nsslapd-idlistscanlimit; a read that returned a shorter list, or searches of the "
    "attribute alone that succeeded without notes A or U, show the index exists, so those "
    "searches were unindexed for another term or for a key it cannot serve (a substring "
    "under 3 characters). Otherwise the filter alone names it. Ranked: missing, filter "
    "only, indexed; by etime within each.")


def evidence_text(row: dict[str, Any]) -> str:
    """What the logs say of one row of the index advice, in a few words
    (``ADVICE_LEGEND`` says what they mean)."""
    if row["evidence"] == "allids":
        return f"missing: reads returned all IDs ({row['candidates_max']:,})"
    if row["evidence"] == "indexed" and row["stat_reads"]:
        return (f"indexed: reads returned at most {row['candidates_max']:,} of "
                f"{row['allids_count']:,} IDs")
    if row["evidence"] == "indexed":
        return f"indexed: {row['indexed_searches']:,} searches of it alone ran indexed"
    if row["allids_count"] is None:
        return "filter only (the server logs no index reads)"
    return "filter only (no read of it logged)"
