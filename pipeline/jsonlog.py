"""389 DS 3.x JSON access log (``json`` and ``json-pretty``) → the same events table.

JSON logs carry named fields, so there is no grammar to apply: each object is
mapped onto the text parser's columns (389ds-access-log.md §11), by the compiled
core (``rust/core/src/json.rs``), into the same classes, rejects and line accounting
as a text block.

>>> r = parse_json_lines(b'{"local_time":"2025-07-28T23:41:31.354305288 +0000",'
...     b'"operation":"SEARCH","key":"1753746090-1","conn_id":1,"op_id":7,'
...     b'"base_dn":"dc=example,dc=com","scope":2,"filter":"(idontexist=*)"}\\n',
...     server="ds3", file="access")
>>> r.events.select("kind", "conn", "op", "base", "scope", "filter").row(0)
('SRCH', 1, 7, 'dc=example,dc=com', 2, '(idontexist=*)')
"""

from __future__ import annotations

from .logline import Errors, ParseResult, tokenize_json, tokens_result


def is_json_log(head: bytes) -> bool:
    """Whether a file's first non-blank bytes open a JSON object.

    >>> is_json_log(b'\\n{"header": {}}'), is_json_log(b'[26/Nov/2026:16:20:10 +0000] conn=1')
    (True, False)
    """
    return head.lstrip()[:1] == b"{"


def parse_json_lines(
    data: bytes, *, server: str, file: str, file_seq: int = 0, first_line: int = 1,
    errors: Errors = "collect",
) -> ParseResult:
    """Parse a whole JSON access log (one object per line, or pretty-printed).

    Args:
        data: the file's bytes.
        server, file, file_seq, first_line: provenance, as for ``parse_lines``.
        errors: as for ``parse_lines``.

    Returns:
        A ``ParseResult``; each line of an object that is not a valid event (for
        example cut at 2048 bytes, ending in ``...}``, or with a value of the wrong
        type) is a reject.
    """
    return tokens_result(tokenize_json(data, first_line=first_line), data, server=server,
                         file=file, file_seq=file_seq, final=True, errors=errors)
