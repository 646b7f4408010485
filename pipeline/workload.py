"""Workload classes: ordered CEL rules, first match wins (ARCHITECTURE.md §5).

The compiled core checks and evaluates the rules (``rust/core/src/workload.rs``, on the
``cel`` crate's interpreter), for ``dsaccess run`` and the exporter alike. Rules are
checked before any log is read: a syntax error, an unknown variable, a function CEL does
not have or a rule that does not give a boolean is a ``ConfigError`` naming the rule
and its line. A rule runs once per distinct tuple of the variables it uses (most
operations repeat the same few tuples), and the answers are mapped back onto the rows.

Values: a missing string is ``""``, a missing number is ``0`` (``err`` is ``-1`` when
the operation has no RESULT), a missing flag is ``false``; ``bind_dn`` of a connection
opened before the first line read is ``"(unknown)"``.

>>> rules = compile_rules([("svc", 'bind_dn.startsWith("uid=svc-")'), ("other", "true")])
>>> import polars as pl
>>> ops = pl.DataFrame({"bind_dn": ["uid=svc-a,dc=x", "", None]})
>>> classify(ops, rules)["workload"].to_list()
['svc', 'other', 'other']
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from . import _core
from .errors import ConfigError

UNCLASSIFIED = _core.UNCLASSIFIED  # what rows no rule matched are called
# checked rules: (name, CEL expression, line in its file or None), in order
Rules = tuple[tuple[str, str, int | None], ...]


def compile_rules(rules: Sequence[tuple[str, str] | tuple[str, str, int | None]],
                  origin: str = "workloads", live: bool = False) -> Rules:
    """Check ``(name, expression[, line])`` rules as ARCHITECTURE §5 says; ``live``: for
    live connections (cn=monitor), whose variables are fewer.

    Raises:
        ConfigError: naming the rule, its line and the fix.
    """
    checked = tuple((r[0], r[1], r[2] if len(r) > 2 else None) for r in rules)  # type: ignore[misc]
    try:
        _core.check_workloads(list(checked), origin=origin, live=live)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return checked


def classify(rows: pl.DataFrame, rules: Rules, errors: dict[str, int] | None = None,
             evaluations: dict[str, int] | None = None, live: bool = False) -> pl.DataFrame:
    """Add a ``workload`` column: the first rule that holds for each row.

    A rule that fails on a row at run time (``int(base) > 3`` on a base that is no
    number) does not hold for it, and the row is counted in ``errors`` under the rule's
    name, so the run can say so.

    Args:
        rows: operations (the columns of ARCHITECTURE.md §3), or live connections.
        rules: from ``compile_rules``.
        errors: rows each rule failed on, added to.
        evaluations: how often each rule was evaluated, added to (tests count them).
        live: the rules are for live connections.
    """
    classes, failed, evaluated = _core.classify(rows, list(rules), live=live)
    for counts, found in ((errors, failed), (evaluations, evaluated)):
        if counts is not None:
            for name, n in found.items():
                counts[name] = counts.get(name, 0) + n
    return rows.with_columns(pl.DataFrame(classes)["workload"])
