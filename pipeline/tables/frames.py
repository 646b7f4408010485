"""A finished table as its readers take it: in memory (``pl.DataFrame``) or read lazily
from its file (``pl.LazyFrame``: ``aggregate.SCANNED``). Both group and select through
``.lazy()``; these give what only a frame in memory has."""

from __future__ import annotations

import polars as pl

Table = pl.DataFrame | pl.LazyFrame


def height(table: Table) -> int:
    """Its rows (a lazy table's counted from its file's metadata)."""
    if isinstance(table, pl.DataFrame):
        return table.height
    return int(table.select(pl.len()).collect().item())


def columns(table: Table) -> list[str]:
    """Its columns' names."""
    return table.columns if isinstance(table, pl.DataFrame) else table.collect_schema().names()
