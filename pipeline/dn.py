"""Distinguished names as LDAP compares them (RFC 4514/4517), for grouping identities.

389 DS logs a DN as the client spelled it, so ``cn=Directory Manager`` and
``cn=directory manager`` are one identity written twice. Aggregates group by the
comparison form below and show the most frequent spelling. Attribute types are
case-insensitive; the values of the naming attributes in use (cn, uid, ou, dc, o...)
match with caseIgnoreMatch, so folding the whole DN is what the server does for them.

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

SEPARATORS = ",+="


def canonical(dn: str) -> str:
    """The comparison form: case folded, no insignificant spaces around ``,`` ``+`` ``=``."""
    parts: list[str] = []
    token: list[str] = []
    escaped = False
    for ch in dn:
        if escaped:
            token.append(ch)
            escaped = False
        elif ch == "\\":
            token.append(ch)
            escaped = True
        elif ch in SEPARATORS:
            parts.append(_strip("".join(token)))
            parts.append(ch)
            token = []
        else:
            token.append(ch)
    parts.append(_strip("".join(token)))
    return "".join(parts).lower()


def _strip(token: str) -> str:
    kept = token.strip(" ")
    # ``\ `` at the end is an escaped space: part of the value
    if kept.endswith("\\") and (len(kept) - len(kept.rstrip("\\"))) % 2 == 1:
        kept += " "
    return kept


def canonical_column(values: pl.Series) -> pl.Series:
    """``canonical`` of every value (null stays null), computed once per distinct DN."""
    distinct = values.drop_nulls().unique()
    if not distinct.len():
        return values.cast(pl.String)
    mapping = {dn: canonical(dn) for dn in distinct.to_list()}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)


def spelled(values: pl.Series) -> tuple[pl.Series, pl.DataFrame]:
    """``canonical_column(values)``, and how often each spelling occurs: rows ``(dn,
    spelling, count)``. One count of the distinct spellings gives both (a second pass
    grouping by the two strings cost as much as the canonical column itself)."""
    counts = values.drop_nulls().value_counts(name="count")
    written = counts[values.name]
    forms = [canonical(dn) for dn in written.to_list()]
    column = values.replace_strict(written, forms, default=None, return_dtype=pl.String) \
        if forms else values.cast(pl.String)
    return column, pl.DataFrame({"dn": pl.Series(forms, dtype=pl.String),
                                 "spelling": written.cast(pl.String),
                                 "count": counts["count"].cast(pl.Int64)})


def most_frequent(spellings: pl.DataFrame) -> dict[str, str]:
    """Rows ``(dn, spelling, count)`` → each comparison form's most used spelling
    (ties: the first in code-point order, so every run picks the same)."""
    if not spellings.height:
        return {}
    best = spellings.group_by("dn", "spelling").agg(pl.col("count").sum()).sort(
        ["dn", "count", "spelling"], descending=[False, True, False]).unique(
        "dn", keep="first", maintain_order=True)
    return dict(zip(best["dn"].to_list(), best["spelling"].to_list(), strict=True))
