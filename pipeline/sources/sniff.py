"""What a file that yields no access-log event looks like, for the message that says so.

A file saved as ``access`` may be another log: each rule below names one from the shape
of its first lines (the server's own format strings cited), so the user is told "looks
like a 389 DS errors log" instead of "100% of its lines rejected".

>>> looks_like(b"[26/Nov/2026:16:20:09.123456789 +0000] - NOTICE - main - starting up\\n")
'a 389 DS errors log'
>>> looks_like(b"[26/Nov/2026:16:20:09 +0000] conn=1 op=0 UNBIND\\n") is None
True
"""

from __future__ import annotations

import re

RULES = (
    # log.c, vslapd_log_error: "[time] - SEVERITY - subsystem - message" (the severities
    # are syslog's priority names, upper-cased: get_log_sev_name)
    ("a 389 DS errors log", re.compile(
        rb"^\[[^\]\n]{20,40}\] - (?:EMERG|ALERT|CRIT|ERR|WARN|NOTICE|INFO|DEBUG) - ", re.M)),
    # log.c, the same in JSON (3.x): "severity", "subsystem", "msg"
    ("a 389 DS errors log (JSON)", re.compile(rb'^\s*\{.*"severity"\s*:.*"msg"\s*:', re.M)),
    # auditlog.c, write_audit_file: "time: YYYYMMDDHHMMSS" then "dn: ", LDIF records
    ("a 389 DS audit log", re.compile(rb"^time: \d{14}\r?\ndn: ", re.M)),
    # OpenLDAP's slapd through syslog ("slapd[123]: conn=1000 fd=12 ACCEPT"), or its own
    # logfile (2.6: "6565f6c2.1a2b3c4d 0x7f2b5c0006c0 conn=1000 ...")
    ("an OpenLDAP slapd log", re.compile(
        rb"^(?:\S.{0,80} slapd\[\d+\]: |[0-9a-f]{8}\.[0-9a-f]{8} 0x[0-9a-f]+ )", re.M)),
)


def looks_like(head: bytes) -> str | None:
    """What the first bytes of a file look like, when a known log that is not a 389 DS
    access log; None when none of the rules knows it."""
    for name, rule in RULES:
        if rule.search(head):
            return name
    return None
