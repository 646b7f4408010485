"""Search-filter fingerprints: the shape of a filter with its values taken out.

Rules, in the order they apply (ARCHITECTURE.md §4):

1. Guard: text that cannot be a filter (too long, cut by the server at 512
   characters, malformed) gets ``<unparsed:REASON>`` and is still counted.
2. Every assertion value becomes ``...``, except ``objectClass`` equality
   values, which are structural (``(objectClass=person)`` says what is sought).
3. Presence stays ``(attr=*)``; substrings keep every ``*`` and each
   non-empty piece becomes ``...``.
4. Extensible matches keep attribute, ``:dn`` and the rule.
5. With ``sort_operands``, the children of ``&``/``|`` are ordered and
   attribute names folded to lower case, so clients that vary the order group.
6. Two or more consecutive siblings with the same fingerprint collapse into
   one followed by ``+``, so membership lists of any length are one class.

Rejected rules, and why:

- Lower-casing attribute names by default: operators read the fingerprint
  next to their client code, which names attributes as it does; only
  ``sort_operands`` folds case, because ordering needs a canonical name.
- Keeping short numeric values (like pt-query-digest's optional embedded
  numbers): LDAP values are identities; keeping any leaks them into reports.

>>> fingerprint("(&(objectClass=inetOrgPerson)(|(cn=ckerr)(uid=ckerr)(mail=ckerr)))")
'(&(objectClass=inetOrgPerson)(|(cn=...)(uid=...)(mail=...)))'
>>> fingerprint("(|(uid=a)(uid=b)(uid=c))")
'(|(uid=...)+)'
>>> fingerprint_id("(uid=...)")
'e17f27b49f526474'
"""

from __future__ import annotations

import hashlib

from .errors import FilterParseError
from .ldapfilter import (
    And,
    Compare,
    Extensible,
    Node,
    Not,
    Or,
    Present,
    Substring,
    parse_filter,
)

VALUE = "..."
SERVER_CUT = 512  # 389 DS cuts logged filters at 512 characters and appends "..."


def fingerprint(text: str | None, sort_operands: bool = False) -> str:
    """The fingerprint of one logged filter string.

    Args:
        text: the filter as logged (``None`` gives ``<unparsed:missing>``).
        sort_operands: order ``&``/``|`` children and fold attribute case.
    """
    if text is None:
        return "<unparsed:missing>"
    try:
        node = parse_filter(text)
    except FilterParseError as e:
        if text.endswith("...") and len(text) >= SERVER_CUT:
            return "<unparsed:truncated>"          # cut by the server, not the client's fault
        return f"<unparsed:{e.args[0].split(' at offset')[0]}>"
    return _shape(node, sort_operands)


def fingerprint_id(fp: str) -> str:
    """A short id, stable across runs and machines (never Python's salted ``hash``)."""
    return hashlib.blake2b(fp.encode(), digest_size=8).hexdigest()


def _shape(node: Node, sort_operands: bool) -> str:
    match node:
        case And(children) | Or(children):
            op = "&" if isinstance(node, And) else "|"
            parts = [_shape(c, sort_operands) for c in children]
            if sort_operands:
                parts.sort()
            return f"({op}{''.join(_collapse(parts))})"
        case Not(child):
            return f"(!{_shape(child, sort_operands)})"
        case Compare(attr, op, value):
            keep = op == "=" and attr.lower() == "objectclass"
            return f"({_attr(attr, sort_operands)}{op}{value if keep else VALUE})"
        case Present(attr):
            return f"({_attr(attr, sort_operands)}=*)"
        case Substring(attr, pieces):
            body = "*".join(VALUE if p else "" for p in pieces)
            return f"({_attr(attr, sort_operands)}={body})"
        case Extensible(attr, dn, rule, _):
            return f"({_attr(attr, sort_operands)}{':dn' if dn else ''}" \
                   f"{':' + rule if rule else ''}:={VALUE})"
    raise ValueError(f"Unsupported node type: {type(node).__name__}")


def _attr(name: str, fold: bool) -> str:
    return name.lower() if fold else name


def _collapse(parts: list[str]) -> list[str]:
    out: list[str] = []
    run = 0
    for i, part in enumerate(parts):
        run += 1
        if i + 1 < len(parts) and parts[i + 1] == part:
            continue
        out.append(part + "+" if run > 1 else part)
        run = 0
    return out
