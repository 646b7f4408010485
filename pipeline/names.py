"""Names for the codes in the logs, and the number formats every view shares.

Result codes are RFC 4511's names (and the 389 DS extension codes); close codes are
389 DS's (``disconnect_error_strings.h``, 389ds-access-log.md §8.3).

>>> err_name(49), err_name("32"), err_name(-1), scope_name(2)
('49 invalidCredentials', '32 noSuchObject', '-1', 'sub')
>>> close_name("B1"), close_name(None)
('B1 client closed without UNBIND', 'open at the end')
>>> ms(0.0276443), ms(1.5), ms(12.3456), ms(123.456), ms(None)
('27.6', '1,500', '12,346', '123,456', '')
>>> ms(0.0000004), ms(0.000123456), ms(0.00123456)
('0.000', '0.123', '1.23')
>>> when("2026-11-26T16:20:10.475026726Z")
'2026-11-26 16:20:10.475'
"""

from __future__ import annotations

from typing import Any

RESULT_CODES = {
    0: "success", 1: "operationsError", 2: "protocolError", 3: "timeLimitExceeded",
    4: "sizeLimitExceeded", 5: "compareFalse", 6: "compareTrue",
    7: "authMethodNotSupported", 8: "strongerAuthRequired", 10: "referral",
    11: "adminLimitExceeded", 12: "unavailableCriticalExtension",
    13: "confidentialityRequired", 14: "saslBindInProgress", 16: "noSuchAttribute",
    17: "undefinedAttributeType", 18: "inappropriateMatching", 19: "constraintViolation",
    20: "attributeOrValueExists", 21: "invalidAttributeSyntax", 32: "noSuchObject",
    33: "aliasProblem", 34: "invalidDNSyntax", 36: "aliasDereferencingProblem",
    48: "inappropriateAuthentication", 49: "invalidCredentials",
    50: "insufficientAccessRights", 51: "busy", 52: "unavailable", 53: "unwillingToPerform",
    54: "loopDetect", 60: "sortControlMissing", 61: "offsetRangeError", 64: "namingViolation",
    65: "objectClassViolation", 66: "notAllowedOnNonLeaf", 67: "notAllowedOnRDN",
    68: "entryAlreadyExists", 69: "objectClassModsProhibited", 71: "affectsMultipleDSAs",
    76: "virtualListViewError", 80: "other", 118: "canceled", 119: "noSuchOperation",
    120: "tooLate", 121: "cannotCancel", 122: "assertionFailed",
}
SCOPES = {0: "base", 1: "one", 2: "sub"}
CLOSE_CODES = {
    "A1": "client aborted", "B1": "client closed without UNBIND",
    "B2": "request over nsslapd-maxbersize", "B3": "failed to peek the BER tag",
    "B4": "server failed to send the response", "T1": "idle timeout",
    "T2": "I/O block timeout", "T3": "paged search time limit", "R1": "socket error events",
    "P1": "closed by a plugin", "P2": "poll error", "P3": "invalid PROXY header",
    "P4": "unknown PROXY", "S1": "SASL failure", "U1": "clean close after UNBIND",
}


def err_name(code: Any) -> str:
    """``49`` → ``49 invalidCredentials`` (an unknown code stays a number)."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return str(code)
    name = RESULT_CODES.get(number)
    return f"{number} {name}" if name else str(number)


def scope_name(scope: Any) -> str:
    return SCOPES.get(scope, "" if scope is None else str(scope))


def close_name(code: str | None) -> str:
    if code is None:
        return "open at the end"
    meaning = CLOSE_CODES.get(code)
    return f"{code} {meaning}" if meaning else code


def ms(seconds: float | None) -> str:
    """Seconds → milliseconds for a table: at most 3 decimals, fewer as values grow."""
    if seconds is None:
        return ""
    value = seconds * 1000
    for limit, digits in ((1, 3), (10, 2), (100, 1)):
        if value < limit:
            return f"{value:,.{digits}f}"
    return f"{value:,.0f}"


def printable(text: Any) -> str:
    """Text from a log or a remote server, safe on a terminal: control characters (a
    newline, an escape sequence) shown as escapes, so a name cannot fake or hide lines.

    >>> printable("access\\nldap02  ok"), printable("a\\x1b[2Jb")
    ('access\\\\nldap02  ok', 'a\\\\x1b[2Jb')
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def problem_text(p: Any) -> str:
    """One problem of summary.json (``{"server", "file", "problem"}``) as a line."""
    if isinstance(p, dict):
        return printable(f"{p.get('server', '')}: {p.get('problem', '')}")
    return printable(p)


def when(iso: str | None) -> str:
    """An ISO 8601 UTC stamp to the millisecond, for reading (the JSON keeps nanoseconds)."""
    if not iso:
        return ""
    head, _, frac = iso.rstrip("Z").partition(".")
    return head.replace("T", " ") + (f".{frac[:3]}" if frac else "")
