"""Search-filter fingerprints: the shape of a filter with its values taken out.

The rules are compiled (``rust/core/src/filter.rs``: the one RFC 4515 parser, which the
report's index advice uses too, its limits and error phrases). In the order they apply
(ARCHITECTURE.md §4):

1. Guard: text that cannot be a filter (too long, cut by the server at 512
   characters, malformed) gets ``<unparsed:REASON>`` and is still counted; REASON is
   a fixed phrase that never quotes the filter (its values identify people).
2. Every assertion value becomes ``...``, except ``objectClass`` equality
   values, which are structural (``(objectClass=person)`` says what is sought).
3. Presence stays ``(attr=*)``; substrings keep every ``*`` and each
   non-empty piece becomes ``...``.
4. Extensible matches keep attribute, ``:dn`` and the rule.
5. With ``sort_operands``, the children of ``&``/``|`` are ordered and
   attribute names folded to lower case, so clients that vary the order group.
6. Two or more consecutive siblings with the same fingerprint collapse into
   one followed by ``+``, so membership lists of any length are one class.
7. A search's fingerprint begins with its scope: ``base (objectClass=*)`` (an
   entry read) and ``sub (objectClass=*)`` (a scan) are different workloads.
8. Fingerprints compare without case (attribute names, ``objectClass`` values and
   matching rules are case-insensitive in LDAP): ``objectClass`` and ``objectclass``
   are one row of a run's tables, shown in its most frequent spelling, with one id.

Rejected rules, and why:

- Lower-casing attribute names in the text shown: operators read the fingerprint
  next to their client code, which names attributes as it does; so the tables
  group without case and show the spelling clients use most.
- Keeping short numeric values (like pt-query-digest's optional embedded
  numbers): LDAP values are identities; keeping any leaks them into reports.

>>> fingerprint("(&(objectClass=inetOrgPerson)(|(cn=ckerr)(uid=ckerr)(mail=ckerr)))")
'(&(objectClass=inetOrgPerson)(|(cn=...)(uid=...)(mail=...)))'
>>> fingerprint("(|(uid=a)(uid=b)(uid=c))")
'(|(uid=...)+)'
>>> fingerprint("(objectClass=*)", scope=0)
'base (objectClass=*)'
>>> fingerprint_id("(uid=...)"), fingerprint_id("(UID=...)")
('e17f27b49f526474', 'e17f27b49f526474')
"""

from __future__ import annotations

from collections.abc import Sequence

from . import _core

VALUE = "..."
SERVER_CUT = 512  # 389 DS cuts logged filters at 512 characters and appends "..."


def fingerprint(text: str | None, sort_operands: bool = False, scope: int | None = None) -> str:
    """The fingerprint of one logged filter string.

    Args:
        text: the filter as logged (``None`` gives ``<unparsed:missing>``).
        sort_operands: order ``&``/``|`` children and fold attribute case.
        scope: the search's (0, 1, 2): its name (``base``, ``one``, ``sub``) comes first,
            as in a run's fingerprints.
    """
    return _core.fingerprints([text], sort_operands, scope)[0]


def fingerprints(texts: Sequence[str | None], sort_operands: bool = False) -> list[str]:
    """``fingerprint`` of many filters at once (one call into the compiled core)."""
    return _core.fingerprints(list(texts), sort_operands)


def fingerprint_id(fp: str) -> str:
    """A short id, stable across runs and machines (never Python's salted ``hash``): the
    hex of BLAKE2b with an 8-byte digest of the fingerprint in lower case (its comparison
    form: every spelling of it has the one id), as the operations table's
    ``fingerprint_id``."""
    return _core.fingerprint_id(fp)
