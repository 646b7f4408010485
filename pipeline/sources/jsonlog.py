"""389 DS 3.x JSON access log (``json`` and ``json-pretty``) → the same events.

JSON logs carry named fields, so there is no grammar to apply: each object is
mapped onto the text parser's columns (389ds-access-log.md §11), by the compiled
core (``rust/core/src/json.rs``), into the same classes, rejects and line accounting
as a text block.

>>> from pipeline.engine.logline import tokenize_json
>>> t = tokenize_json(b'{"local_time":"2025-07-28T23:41:31.354305288 +0000",'
...     b'"operation":"SEARCH","key":"1753746090-1","conn_id":1,"op_id":7,'
...     b'"base_dn":"dc=example,dc=com","scope":2,"filter":"(idontexist=*)"}\\n')
>>> import polars as pl
>>> pl.DataFrame(t.classes["request"]).select("kind", "conn", "op", "base", "scope",
...                                           "filter").row(0)
('SRCH', 1, 7, 'dc=example,dc=com', 2, '(idontexist=*)')
"""

from __future__ import annotations


def is_json_log(head: bytes) -> bool:
    """Whether a file's first non-blank bytes open a JSON object.

    >>> is_json_log(b'\\n{"header": {}}'), is_json_log(b'[26/Nov/2026:16:20:10 +0000] conn=1')
    (True, False)
    """
    return head.lstrip()[:1] == b"{"
