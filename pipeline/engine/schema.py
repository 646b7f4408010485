"""Column names and types: the contract between the stages.

Every stage imports its column names from here, so a rename happens once.
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl
import pyarrow as pa

from .. import _core

# Events by what the join does with them. Most fields are null for most kinds, so the
# shuffle stores each class with only the columns the join reads from it: the compiled
# core owns that layout (``shuffle::class_schemas``), in the order it takes the classes.
EVENT_CLASSES = MappingProxyType({name: tuple(pa.schema(schema).names)
                                  for name, schema in _core.event_classes().items()})


def empty_class(name: str) -> pl.DataFrame:
    """A table of one event class with no rows, in the core's layout."""
    return pl.from_arrow(pa.schema(_core.event_classes()[name]).empty_table())


REJECT_SCHEMA = MappingProxyType({
    "server": pl.String,
    "file": pl.String,
    "line": pl.Int64,
    "text": pl.String,
    "reason": pl.String,
})
