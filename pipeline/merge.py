"""``dsaccess merge``: combine the aggregates of several runs without reading logs.

Counts add; histograms add bucket by bucket, so percentiles of the merged
groups are exact to the histogram's 1%, as if one run had read every log.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from . import aggregate, outputs, views
from .errors import ConfigError
from .run import write_aggregates

MUST_AGREE = ("histogram", "fingerprint")


def merge_runs(runs: list[Path], out: Path, histocrutch: bool = False,
               ) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """Merge run outputs into ``out`` (replaced atomically).

    Raises:
        ConfigError: a folder is not a run's output, or runs disagree on the
            histogram layout or the fingerprint options.
    """
    infos = [_read_json(run, "run.json") for run in runs]
    for key in MUST_AGREE:
        first = infos[0].get(key)
        for run, info in zip(runs[1:], infos[1:], strict=True):
            if info.get(key) != first:
                raise ConfigError(
                    f"cannot merge: {run} was made with {key} {info.get(key)} but {runs[0]} "
                    f"with {first}; re-run one of them with the same options")
    partials: dict[str, Any] = {}
    restarts: dict[str, int] = {}
    problems: list[str] = []
    rule_errors: dict[str, int] = {}
    parts = []
    for run in runs:
        summary = _read_json(run, "summary.json")
        for server, section in summary["servers"].items():
            partials = aggregate.combine(partials, {server: _as_partial(section)})
            restarts[server] = restarts.get(server, 0) + int(section.get("restarts", 0))
        problems += summary.get("problems", [])
        rule_errors = aggregate.combine(rule_errors, summary.get("workload_rule_errors", {}))
        tables = {name: pl.read_parquet(run / f"{name}.parquet")
                  for name in aggregate.TABLE_KEYS if (run / f"{name}.parquet").exists()}
        parts.append(aggregate.tables_to_partials(tables))
    summary = aggregate.finalize(partials, restarts)
    summary["workload_rule_errors"] = dict(sorted(rule_errors.items()))
    summary["problems"] = sorted(set(problems))
    summary["warnings"] = views.run_warnings(summary)
    tables = aggregate.finalize_tables(aggregate.combine_tables(parts))
    info = {**infos[0], "merged_from": [str(r) for r in runs],
            "inputs": [i for info in infos for i in info.get("inputs", [])]}
    staging = outputs.staging_dir(out)
    try:
        write_aggregates(staging, summary, tables, info, histocrutch)
        outputs.publish(staging, out)
    except BaseException:
        outputs.discard(staging)
        raise
    return summary, tables


def _read_json(run: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((run / name).read_text())
    except FileNotFoundError:
        raise ConfigError(f"not the output of dsaccess run: {run} (no {name})") from None
    except ValueError as e:
        raise ConfigError(f"{run / name}: not valid JSON ({e})") from None


def _as_partial(section: dict[str, Any]) -> dict[str, Any]:
    part = {k: v for k, v in section.items() if k not in ("restarts", "time_range")}
    first, last = section["time_range"]["first"], section["time_range"]["last"]
    if first and last:
        part["time_range"] = {"first": _ns(first), "last": _ns(last)}
    return part


def _ns(iso: str) -> int:
    """``2026-11-26T16:20:10.475026726Z`` → UTC nanoseconds.

    >>> _ns("2026-11-26T16:20:10.475026726Z")
    1795710010475026726
    """
    whole, _, frac = iso.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0")[:9] or 0)
