"""``dsaccess merge``: combine the aggregates of several runs without reading logs.

Counts add; histograms add bucket by bucket, so percentiles of the merged
groups are exact to the histogram's 1%, as if one run had read every log.
Runs that read the same file for overlapping windows would count its lines twice,
so they are refused; the same file read for disjoint windows (time slices) counts
each of its lines once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..tables import aggregate, offsets
from . import files, report, views

MUST_AGREE = ("histogram", "fingerprint", "workloads")
FOREVER = (float("-inf"), float("inf"))


def merge_runs(runs: list[Path], out: Path, histocrutch: bool = False,
               ) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """Merge run outputs into ``out`` (replaced atomically).

    Raises:
        ConfigError: a folder is not a run's output; runs disagree on the histogram
            layout, the fingerprint options or the workload rules; two runs read the
            same file for overlapping windows (or one run is given twice).
    """
    files.check_target(out, runs)
    infos = [_read_json(run, "run.json") for run in runs]
    for key in MUST_AGREE:
        first = infos[0].get(key)
        for run, info in zip(runs[1:], infos[1:], strict=True):
            if info.get(key) != first:
                raise ConfigError(
                    f"cannot merge: {run} was made with {key} {info.get(key)} but {runs[0]} "
                    f"with {first}; re-run one of them with the same options")
    _refuse_overlaps(runs, infos)
    partials: dict[str, Any] = {}
    restarts: dict[str, int] = {}
    problems: list[Any] = []
    rule_errors: dict[str, int] = {}
    parts = []
    by_run = []
    summaries = [_read_json(run, "summary.json") for run in runs]
    for run, summary in zip(runs, summaries, strict=True):
        for server, section in summary["servers"].items():
            partials = aggregate.combine(partials, {server: _as_partial(section)})
            restarts[server] = restarts.get(server, 0) + int(section.get("restarts", 0))
        problems += summary.get("problems", [])
        rule_errors = aggregate.combine(rule_errors, summary.get("workload_rule_errors", {}))
        tables = {name: pl.read_parquet(run / f"{name}.parquet")
                  for name in aggregate.TABLE_KEYS if (run / f"{name}.parquet").exists()}
        parts.append(aggregate.tables_to_partials(tables))
        by_run.append(_by_run(run, summary, tables))
    for server, lines in _line_accounting(infos).items():  # each line once
        partials.setdefault(server, {})["lines"] = lines
    summary = aggregate.finalize(partials, restarts, _fleet_peak(runs, summaries))
    summary["workload_rule_errors"] = dict(sorted(rule_errors.items()))
    summary["problems"] = [p for i, p in enumerate(problems) if p not in problems[:i]]
    summary["warnings"] = views.run_warnings(summary)
    tables = aggregate.finalize_tables(aggregate.combine_tables(parts))
    tables[aggregate.RUNS] = pl.concat(by_run, how="vertical_relaxed").sort(
        "first", "run", "kind", "key")
    info = {**infos[0], "merged_from": [str(r) for r in runs],
            "inputs": [i for info in infos for i in info.get("inputs", [])]}
    info.pop("window", None)  # each input keeps its own
    runs_of = [(server, rows) for i in infos
               for server, rows in i.get(aggregate.UTC_OFFSETS, {}).items()]
    info[aggregate.UTC_OFFSETS] = {
        server: offsets.merge(*(r for s, r in runs_of if s == server))
        for server in sorted({s for s, _ in runs_of})}
    staging = files.staging_dir(out)
    try:
        report.write_aggregates(staging, summary, tables, info, histocrutch)
        files.publish(staging, out)
    except BaseException:
        files.discard(staging)
        raise
    return summary, tables


def _fleet_peak(runs: list[Path], summaries: list[dict[str, Any]]) -> int:
    """The merged fleet's peak concurrent connections: one sweep over the runs'
    connections, each still open at the end of its run closed there (the next time slice
    does not count it either: it opened before that slice's window). A merged output has
    no connections of its own: with one among the runs, the largest of the runs' peaks."""
    frames = []
    for run, summary in zip(runs, summaries, strict=True):
        path, last = run / "connections.parquet", summary["time_range"]["last"]
        if not path.exists():
            return max(int(s.get("peak_connections", 0)) for s in summaries)
        if last is None:
            continue
        end = pl.lit(aggregate.iso_ns(last) + 1).cast(pl.Datetime("ns", "UTC"))
        frames.append(pl.scan_parquet(path).select("server", "conn", "opened", "closed",
                                                   end.alias("end")))
    return aggregate.fleet_peak_connections(pl.concat(frames)) if frames else 0


def _by_run(run: Path, summary: dict[str, Any], tables: dict[str, pl.DataFrame]
            ) -> pl.DataFrame:
    """One merged run's rows of ``runs.parquet``: per fingerprint and per bind DN, its
    operations and total etime, labelled with the run's folder name and first event. A
    merge of merges keeps the runs it was made of."""
    if (run / f"{aggregate.RUNS}.parquet").exists():
        return pl.read_parquet(run / f"{aggregate.RUNS}.parquet")
    label, first = run.name, summary["time_range"]["first"] or ""
    parts = []
    for kind, table, key in (("fingerprint", "fingerprints", "fingerprint"),
                             ("bind_dn", "workloads", "bind_dn")):
        if table in tables and tables[table].height:
            parts.append(tables[table].group_by(pl.col(key).cast(pl.String).fill_null("")
                                                .alias("key")).agg(
                pl.col("count").sum(), pl.col("etime_sum").sum()).with_columns(
                pl.lit(kind).alias("kind")))
    rows = pl.concat(parts) if parts else pl.DataFrame(
        schema={"key": pl.String, "count": pl.Int64, "etime_sum": pl.Float64,
                "kind": pl.String})
    return rows.select(pl.lit(label).alias("run"), pl.lit(first).alias("first"), "kind",
                       "key", pl.col("count").cast(pl.Int64), pl.col("etime_sum"))


def _window(entry: dict[str, Any], info: dict[str, Any]) -> tuple[float, float]:
    window = info.get("window") or {}
    since = entry.get("since", window.get("since"))
    until = entry.get("until", window.get("until"))
    return (FOREVER[0] if since is None else since, FOREVER[1] if until is None else until)


def _refuse_overlaps(runs: list[Path], infos: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], list[tuple[tuple[float, float], Path]]] = {}
    for run, info in zip(runs, infos, strict=True):
        for entry in info.get("inputs", []):
            key = (entry["server"], entry.get("url") or entry["file"])
            window = _window(entry, info)
            for other_window, other in seen.get(key, []):
                if window[0] < other_window[1] and other_window[0] < window[1]:
                    same = " (the same run, twice?)" if other.resolve() == run.resolve() else ""
                    raise ConfigError(
                        f"cannot merge: {other} and {run} both read {key[1]} of server "
                        f"{entry['server']} for overlapping times{same}: its lines would count "
                        "twice; merge runs of other files, or of disjoint --since/--until "
                        "windows")
            seen.setdefault(key, []).append((window, run))


def _line_accounting(infos: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per server, each line of each file counted once: a file read by several time
    slices has the same total, rejected, header and blank lines in each, and its parsed
    lines split between them (the rest were outside every window)."""
    per_file: dict[tuple[str, str], list[dict[str, int]]] = {}
    for info in infos:
        for entry in info.get("inputs", []):
            if isinstance(entry.get("lines"), dict):
                key = (entry["server"], entry.get("url") or entry["file"])
                per_file.setdefault(key, []).append(entry["lines"])
    out: dict[str, dict[str, int]] = {}
    for (server, _), reads in per_file.items():
        once = {k: max(r.get(k, 0) for r in reads) for k in ("total", "rejected", "header",
                                                              "blank")}
        once["parsed"] = sum(r.get("parsed", 0) for r in reads)
        once["outside_window"] = (once["total"] - once["parsed"] - once["rejected"]
                                  - once["header"] - once["blank"])
        out[server] = aggregate.combine(out.get(server, {}), once)
    return out


def _read_json(run: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((run / name).read_text())
    except FileNotFoundError:
        raise ConfigError(f"not the output of dsaccess run: {run} (no {name})") from None
    except ValueError as e:
        raise ConfigError(f"{run / name}: not valid JSON ({e})") from None


def _as_partial(section: dict[str, Any]) -> dict[str, Any]:
    # saturation's quantiles and in-flight levels are not sums of the runs' (a merge has
    # none: its runs' logs in one run have them)
    part = {k: v for k, v in section.items()
            if k not in ("restarts", "time_range", "saturation")}
    first, last = section["time_range"]["first"], section["time_range"]["last"]
    if first and last:
        part["time_range"] = {"first": aggregate.iso_ns(first), "last": aggregate.iso_ns(last)}
    return part


