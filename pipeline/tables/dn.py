"""Distinguished names as LDAP compares them (RFC 4514/4517), for grouping identities.

389 DS logs a DN as the client spelled it, so ``cn=Directory Manager`` and
``cn=directory manager`` are one identity written twice. Aggregates group by the
comparison form below and show the most frequent spelling. Attribute types are
case-insensitive; the values of the naming attributes in use (cn, uid, ou, dc, o...)
match with caseIgnoreMatch, so folding the whole DN is what the server does for them.
The rule is the compiled core's (``rust/core/src/dn.rs``): the aggregates group by it.

>>> canonical("CN=Directory Manager")
'cn=directory manager'
>>> canonical(" uid = Alice , ou=People,dc=Example ")
'uid=alice,ou=people,dc=example'
>>> canonical(r"cn=a\\, b ,dc=x")      # an escaped comma is part of the value
'cn=a\\\\, b,dc=x'
>>> canonical("")
''
"""

from __future__ import annotations

import polars as pl

from .. import _core


def canonical(dn: str) -> str:
    """The comparison form: case folded, no insignificant spaces around ``,`` ``+`` ``=``
    (the compiled core's ``dn::canonical``, which the aggregates group by)."""
    return _core.canonical_dns([dn])[0]


def canonical_column(values: pl.Series) -> pl.Series:
    """``canonical`` of every value (null stays null), computed once per distinct DN."""
    distinct = values.drop_nulls().unique()
    if not distinct.len():
        return values.cast(pl.String)
    mapping = dict(zip(distinct.to_list(), _core.canonical_dns(distinct.to_list()),
                       strict=True))
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)


def most_frequent(spellings: pl.DataFrame, key: str = "dn") -> dict[str, str]:
    """Rows ``(key, spelling, count)`` → each comparison form's most used spelling
    (ties: the first in code-point order, so every run picks the same)."""
    if not spellings.height:
        return {}
    best = spellings.group_by(key, "spelling").agg(pl.col("count").sum()).sort(
        [key, "count", "spelling"], descending=[False, True, False]).unique(
        key, keep="first", maintain_order=True)
    return dict(zip(best[key].to_list(), best["spelling"].to_list(), strict=True))
