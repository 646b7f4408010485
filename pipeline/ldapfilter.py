"""RFC 4515 LDAP search filters: tokenize → parse → frozen nodes → render.

The grammar is small enough for a hand-written recursive-descent parser over
the string (the "tokens" are single characters and assertion values). Values
keep their escapes exactly as logged, so ``render(parse(f)) == f`` for every
well-formed filter.

>>> render(parse_filter("(&(objectClass=person)(|(cn=jo*)(!(uid=x))))"))
'(&(objectClass=person)(|(cn=jo*)(!(uid=x))))'
>>> parse_filter("(cn=a*b*)").pieces
('a', 'b', '')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FilterParseError

MAX_FILTER_LENGTH = 16_384   # longer text is refused before parsing (a cheap guard)
MAX_DEPTH = 200              # deeper nesting is refused (recursion guard)
_ATTR = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-;_]*")   # descr / numericoid, with options
_EXT = re.compile(r"(?P<attr>[A-Za-z0-9][A-Za-z0-9.\-;_]*)?(?P<dn>:dn)?"
                  r"(?::(?P<rule>[A-Za-z0-9.\-_]+))?:=")
_VALUE_STOP = "()"


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Compare:
    """``attr op value`` for op in ``=``, ``~=``, ``>=``, ``<=``."""

    attr: str
    op: str
    value: str


@dataclass(frozen=True)
class Present:
    attr: str


@dataclass(frozen=True)
class Substring:
    """``attr=initial*any*...*final``; ``pieces`` are the texts between the stars."""

    attr: str
    pieces: tuple[str, ...]


@dataclass(frozen=True)
class Extensible:
    attr: str
    dn: bool
    rule: str
    value: str


Node = And | Or | Not | Compare | Present | Substring | Extensible


def parse_filter(text: str) -> Node:
    """Parse one filter; a missing outer pair of parentheses is tolerated.

    389 DS logs some internal searches without them (``filter="objectclass=x"``).

    Raises:
        FilterParseError: with the offset of the first fault.
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterParseError(f"filter longer than {MAX_FILTER_LENGTH} characters", 0)
    text = text.strip()
    if text and not text.startswith("("):
        text = f"({text})"
    node, pos = _Parser(text).filter(0, 0)
    if pos != len(text):
        raise FilterParseError(f"unexpected text after the filter: {text[pos:pos + 20]!r}", pos)
    return node


def render(node: Node) -> str:
    """The RFC 4515 string of a node."""
    match node:
        case And(children):
            return "(&" + "".join(render(c) for c in children) + ")"
        case Or(children):
            return "(|" + "".join(render(c) for c in children) + ")"
        case Not(child):
            return "(!" + render(child) + ")"
        case Compare(attr, op, value):
            return f"({attr}{op}{value})"
        case Present(attr):
            return f"({attr}=*)"
        case Substring(attr, pieces):
            return f"({attr}=" + "*".join(pieces) + ")"
        case Extensible(attr, dn, rule, value):
            return f"({attr}{':dn' if dn else ''}{':' + rule if rule else ''}:={value})"
    raise ValueError(f"Unsupported node type: {type(node).__name__}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def filter(self, pos: int, depth: int) -> tuple[Node, int]:
        t = self.text
        if depth > MAX_DEPTH:
            raise FilterParseError(f"filter nested deeper than {MAX_DEPTH}", pos)
        if pos >= len(t) or t[pos] != "(":
            raise FilterParseError("expected '('", pos)
        pos += 1
        if pos >= len(t):
            raise FilterParseError("filter ends after '('", pos)
        ch = t[pos]
        if ch in "&|":
            children: list[Node] = []
            pos += 1
            while pos < len(t) and t[pos] == "(":
                child, pos = self.filter(pos, depth + 1)
                children.append(child)
            node: Node = And(tuple(children)) if ch == "&" else Or(tuple(children))
            if ch == "|" and not children:
                raise FilterParseError("'|' needs at least one filter", pos)
        elif ch == "!":
            child, pos = self.filter(pos + 1, depth + 1)
            node = Not(child)
        else:
            node, pos = self.item(pos)
        if pos >= len(t) or t[pos] != ")":
            raise FilterParseError("expected ')'", pos)
        return node, pos + 1

    def item(self, pos: int) -> tuple[Node, int]:
        t = self.text
        ext = _EXT.match(t, pos)
        if ext and (ext["attr"] or ext["rule"]):
            value, end = self.value(ext.end())
            return Extensible(ext["attr"] or "", bool(ext["dn"]), ext["rule"] or "", value), end
        attr = _ATTR.match(t, pos)
        if not attr:
            raise FilterParseError("expected an attribute description", pos)
        pos = attr.end()
        for op in ("~=", ">=", "<="):
            if t.startswith(op, pos):
                value, end = self.value(pos + 2)
                return Compare(attr.group(), op, value), end
        if not t.startswith("=", pos):
            raise FilterParseError("expected '=', '~=', '>=' or '<='", pos)
        value, end = self.value(pos + 1)
        if value == "*":
            return Present(attr.group()), end
        if "*" in value:
            return Substring(attr.group(), tuple(value.split("*"))), end
        return Compare(attr.group(), "=", value), end

    def value(self, pos: int) -> tuple[str, int]:
        t = self.text
        end = pos
        while end < len(t) and t[end] not in _VALUE_STOP:
            if t[end] == "\\":
                # RFC 4515 escapes are \XX; older clients write \c, which servers accept
                if end + 1 >= len(t):
                    raise FilterParseError("escape at the end of the filter", end)
                end += 3 if re.match(r"[0-9A-Fa-f]{2}", t[end + 1:end + 3]) else 2
                continue
            end += 1
        return t[pos:end], min(end, len(t))
