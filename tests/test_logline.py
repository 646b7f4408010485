"""The text parser: one named row per line kind, real lines where we have them."""

from __future__ import annotations

import gzip
import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import SAMPLE
from .events import parse_lines

T = "[26/Nov/2026:16:22:20.116136841 +0000] "

# (description, line, expected fields)
CASES = [
    ("ldap connect", T + "conn=1180 fd=71 slot=71 connection from 127.0.0.1 to 127.0.0.1",
     {"kind": "CONNECT", "conn": 1180, "fd": 71, "client_ip": "127.0.0.1",
      "server_ip": "127.0.0.1", "ssl": False, "op": None}),
    ("ldaps connect", T + "conn=1180 fd=71 slot=71 SSL connection from 127.0.0.1 to 10.0.0.1",
     {"kind": "CONNECT", "ssl": True, "server_ip": "10.0.0.1"}),
    ("ldapi connect", T + "conn=1 fd=64 slot=64 connection from local to "
     "/run/slapd-real389a.socket",
     {"kind": "CONNECT", "client_ip": "local", "server_ip": "/run/slapd-real389a.socket"}),
    ("ipv6 connect", T + "conn=1 fd=64 slot=64 connection from ::1 to ::1",
     {"kind": "CONNECT", "client_ip": "::1", "server_ip": "::1"}),
    ("haproxy", T + "conn=7 fd=64 HAProxy new_address_from=198.51.100.7 to "
     "new_address_dest=192.0.2.1",
     {"kind": "HAPROXY", "client_ip": "198.51.100.7", "server_ip": "192.0.2.1", "fd": 64}),
    ("tls cipher", T + "conn=1179 TLS1.3 128-bit AES-GCM",
     {"kind": "TLS", "tls_version": "TLS1.3", "text": "TLS1.3 128-bit AES-GCM", "op": None}),
    ("tls client bound", T + "conn=5 TLS1.2 client bound as uid=app,dc=example,dc=com",
     {"kind": "TLS", "tls_version": "TLS1.2", "dn": "uid=app,dc=example,dc=com"}),
    ("tls nspr error", T + "conn=5 Netscape Portable Runtime error -12285 (Unable to find "
     "the certificate); unauthenticated client CN=x; issuer CN=y",
     {"kind": "TLS", "tls_version": None}),
    ("autobind", T + 'conn=1 AUTOBIND dn="cn=Directory Manager"',
     {"kind": "AUTOBIND", "dn": "cn=Directory Manager"}),
    ("simple bind", T + 'conn=5 op=0 BIND dn="uid=user0017,ou=people,dc=example,dc=com" '
     "method=128 version=3",
     {"kind": "BIND", "op": 0, "dn": "uid=user0017,ou=people,dc=example,dc=com",
      "method": "128", "version": 3, "mech": None}),
    ("sasl bind", T + 'conn=1216 op=0 BIND dn="cn=Directory Manager" method=sasl version=3 '
     "mech=EXTERNAL",
     {"kind": "BIND", "method": "sasl", "mech": "EXTERNAL"}),
    ("bind with message", T + 'conn=9 op=0 BIND dn="" method=sasl version=3 mech=GSSAPI, '
     "SASL credentials only in LDAPv3",
     {"kind": "BIND", "mech": "GSSAPI", "text": "SASL credentials only in LDAPv3"}),
    ("search", T + 'conn=1 op=93 SRCH base="ou=People,dc=example,dc=com" scope=2 '
     'filter="(&(objectClass=account)(objectClass=posixaccount))" attrs="distinguishedName"',
     {"kind": "SRCH", "op": 93, "base": "ou=People,dc=example,dc=com", "scope": 2,
      "filter": "(&(objectClass=account)(objectClass=posixaccount))",
      "attrs": "distinguishedName"}),
    ("search attrs ALL", T + 'conn=1 op=7 SRCH base="dc=example,dc=com" scope=2 '
     'filter="(idontexist=*)" attrs=ALL',
     {"kind": "SRCH", "attrs": "ALL", "filter": "(idontexist=*)"}),
    ("persistent search", T + 'conn=1181 op=1 SRCH base="ou=people,dc=example,dc=com" '
     'scope=2 filter="(objectClass=inetOrgPerson)" attrs="uid modifyTimestamp" '
     "options=persistent",
     {"kind": "SRCH", "options": "persistent", "attrs": "uid modifyTimestamp"}),
    ("proxied search", T + 'conn=1263 op=1 SRCH base="ou=people,dc=example,dc=com" scope=2 '
     'filter="(uid=user0216)" attrs="cn" authzid="uid=user0099,ou=people,dc=example,dc=com"',
     {"kind": "SRCH", "authzid": "uid=user0099,ou=people,dc=example,dc=com"}),
    ("search invalid dn", T + 'conn=3 op=1 SRCH dn="not a dn", invalid dn',
     {"kind": "SRCH", "base": "not a dn", "text": "invalid dn", "scope": None}),
    ("internal search", "[26/Nov/2026:11:21:06.111353601 -0500] conn=829 (Internal) "
     'op=3(1)(1) SRCH base="cn=config" scope=1 filter="objectclass=vlvsearch" attrs=ALL',
     {"kind": "SRCH", "conn": 829, "internal": True, "op": 3, "op_internal": 1,
      "op_nested": 1, "filter": "objectclass=vlvsearch", "tz": "-0500"}),
    ("internal(0) modify", T + 'conn=Internal(0) op=0(2)(0) MOD dn="cn=config"',
     {"kind": "MOD", "conn": None, "internal": True, "op": 0, "op_internal": 2,
      "op_nested": 0}),
    ("old internal", T + 'conn=Internal op=-1 MOD dn="uid=u,dc=x", within password minimum '
     "age",
     {"kind": "MOD", "conn": None, "internal": True, "op": -1,
      "text": "within password minimum age"}),
    ("add", T + 'conn=2 op=4 ADD dn="cn=entryUUID,cn=config"',
     {"kind": "ADD", "dn": "cn=entryUUID,cn=config"}),
    ("add with escapes", T + r'conn=2 op=8 ADD dn="cn=dc\3Dexample\2Cdc\3Dcom,cn=mapping tree"',
     {"kind": "ADD", "dn": r"cn=dc\3Dexample\2Cdc\3Dcom,cn=mapping tree"}),
    ("delete", T + 'conn=2 op=9 DEL dn="uid=tmp,dc=example,dc=com"', {"kind": "DEL"}),
    ("modify utf8 dn", T + 'conn=2 op=9 MOD dn="cn=Zoë Ünïcode,dc=example,dc=com"',
     {"kind": "MOD", "dn": "cn=Zoë Ünïcode,dc=example,dc=com"}),
    ("modrdn", T + 'conn=1188 op=5 MODRDN dn="uid=tmpa00301,ou=people,dc=example,dc=com" '
     'newrdn="uid=tmpa00301" newsuperior="ou=contractors,dc=example,dc=com"',
     {"kind": "MODRDN", "newrdn": "uid=tmpa00301",
      "newsuperior": "ou=contractors,dc=example,dc=com"}),
    ("modrdn null superior", T + 'conn=1178 op=7 MODRDN dn="uid=a,dc=x" newrdn="uid=b" '
     'newsuperior="(null)"',
     {"kind": "MODRDN", "newsuperior": "(null)"}),
    ("compare", T + 'conn=1175 op=5 CMP dn="uid=tmpa00299,ou=people,dc=example,dc=com" '
     'attr="title"',
     {"kind": "CMP", "attr": "title"}),
    ("extended", T + 'conn=1179 op=0 EXT oid="1.3.6.1.4.1.1466.20037" name="start_tls_plugin"',
     {"kind": "EXT", "oid": "1.3.6.1.4.1.1466.20037", "name": "start_tls_plugin"}),
    ("extended no name", T + 'conn=1179 op=3 EXT oid="1.2.3.4"', {"kind": "EXT", "name": None}),
    ("ext info", T + 'conn=9 op=3 EXT_INFO name="passwd_modify_plugin" bind_dn="uid=a" '
     'target_dn="uid=a" msg="success" rc=0',
     {"kind": "EXT_INFO", "name": "passwd_modify_plugin"}),
    ("abandon", T + "conn=620 op=2 ABANDON targetop=1 msgid=2 nentries=0 etime=15.0631525424",
     {"kind": "ABANDON", "targetop": "1", "msgid": 2, "nentries": 0, "etime": 15.631525424}),
    ("abandon notfound", T + "conn=34 op=3 ABANDON targetop=NOTFOUND msgid=3",
     {"kind": "ABANDON", "targetop": "NOTFOUND", "msgid": 3}),
    ("abandon paged", T + "conn=34 op=3 ABANDON targetop=Simple Paged Results msgid=3",
     {"kind": "ABANDON", "targetop": "Simple Paged Results"}),
    ("abandon suppressed", T + "conn=34 op=3 ABANDON targetop=SUPPRESSED-BY-PLUGIN msgid=3",
     {"kind": "ABANDON", "targetop": "SUPPRESSED-BY-PLUGIN"}),
    ("unbind", T + "conn=1169 op=7 UNBIND", {"kind": "UNBIND", "op": 7}),
    ("unbind decoding error", T + "conn=1 op=7 UNBIND, decoding error: UnBindRequest not null",
     {"kind": "UNBIND", "text": "decoding error: UnBindRequest not null"}),
    ("unprocessed", T + "conn=1 op=2 UNPROCESSED OPERATION - Anonymous access not allowed",
     {"kind": "UNPROCESSED", "text": "Anonymous access not allowed"}),
    ("entry", "[26/Nov/2026:11:21:06.048289351 -0500] conn=830 op=0 ENTRY "
     'dn="cn=team-finance,ou=groups,dc=example,dc=com"',
     {"kind": "ENTRY", "dn": "cn=team-finance,ou=groups,dc=example,dc=com"}),
    ("referral", T + "conn=1 op=2 REFERRAL", {"kind": "REFERRAL"}),
    ("vlv", T + "conn=1426 op=1 VLV 0:9:6:0 7:335 (0)",
     {"kind": "VLV", "text": "0:9:6:0 7:335 (0)"}),
    ("sort", T + "conn=1 op=1 SORT -sn;2.5.13.3 (42)",
     {"kind": "SORT", "text": "-sn;2.5.13.3 (42)"}),
    ("stat", T + "conn=1 op=1 STAT read index: attribute=objectclass key(eq)=person --> "
     "count 12 (duration 0.000012)", {"kind": "STAT"}),
    ("result plain", T + "conn=1 op=96 RESULT err=0 tag=101 nentries=30 wtime=0.000412584 "
     "optime=0.005428971 etime=0.005836077",
     {"kind": "RESULT", "err": 0, "tag": 101, "nentries": 30, "wtime": 0.000412584,
      "optime": 0.005428971, "etime": 0.005836077, "notes": None, "text": None}),
    ("result etime only", T + "conn=1 op=93 RESULT err=0 tag=101 nentries=30 etime=0.005723017",
     {"kind": "RESULT", "etime": 0.005723017, "wtime": None}),
    ("result 10-digit etime", T + "conn=1 op=93 RESULT err=0 tag=101 nentries=30 "
     "etime=0.0005723017",
     {"kind": "RESULT", "etime": 0.005723017}),
    ("result whole-second etime", "[21/Apr/2009:11:39:52 -0700] conn=12 op=2 RESULT err=0 "
     "tag=101 nentries=1 etime=0",
     {"kind": "RESULT", "etime": 0.0, "tz": "-0700"}),
    ("result bind dn", T + "conn=1175 op=0 RESULT err=0 tag=97 nentries=0 wtime=0.000022884 "
     'optime=0.016230518 etime=0.016252180 dn="cn=directory manager"',
     {"kind": "RESULT", "tag": 97, "dn": "cn=directory manager"}),
    ("result notes paged", T + "conn=1172 op=5 RESULT err=0 tag=101 nentries=50 "
     "wtime=0.000038888 optime=0.025493573 etime=0.025531059 notes=U,P "
     'details="Partially Unindexed Filter,Paged Search" pr_idx=0 pr_cookie=0',
     {"kind": "RESULT", "notes": "U,P", "details": "Partially Unindexed Filter,Paged Search",
      "pr_idx": 0, "pr_cookie": 0}),
    ("result text", T + "conn=2 op=5 RESULT err=0 tag=101 nentries=0 wtime=0.000086884 "
     "optime=0.000029715 etime=0.000115797 - Invalid attribute in filter - results may not "
     "be complete.",
     {"kind": "RESULT", "text": "Invalid attribute in filter - results may not be complete."}),
    ("result notes F details text", "[28/Jul/2025:23:35:34.188751644 +0000] conn=1 op=7 RESULT "
     "err=0 tag=101 nentries=0 wtime=0.000131574 optime=0.065835295 etime=0.065964499 "
     'notes=F details="Filter Element Missing From Schema" - Invalid attribute in filter - '
     "results may not be complete.",
     {"kind": "RESULT", "notes": "F", "details": "Filter Element Missing From Schema",
      "text": "Invalid attribute in filter - results may not be complete."}),
    ("result csn", T + "conn=1 op=1 RESULT err=0 tag=105 nentries=0 wtime=0.000119067 "
     "optime=0.005867171 etime=0.005983985 csn=6b085c7e000c00020000",
     {"kind": "RESULT", "csn": "6b085c7e000c00020000"}),
    ("result 3.2.1 timings pool", "[17/Apr/2026:00:00:00.200000000 +0000] conn=1 op=1 RESULT "
     "err=0 tag=101 nentries=0 wqtime=0.00001 wtime=0.0001 optime=0.001 writetime=0.00002 "
     "etime=0.0011 wbusy=8/16 wqdepth=3 notes=A",
     {"kind": "RESULT", "wqtime": 0.00001, "writetime": 0.00002, "etime": 0.0011,
      "notes": "A", "wbusy": 8, "wmax": 16, "wqdepth": 3}),
    ("result sasl in progress", T + "conn=3 op=0 RESULT err=14 tag=97 nentries=0 "
     "wtime=0.0001 optime=0.0002 etime=0.0003, SASL bind in progress",
     {"kind": "RESULT", "err": 14, "text": "SASL bind in progress"}),
    ("result sid", T + "conn=3 op=4 RESULT err=0 tag=101 nentries=1 wtime=0.0001 "
     'optime=0.0002 etime=0.0003 sid="abc"', {"kind": "RESULT", "sid": "abc"}),
    ("close 2.1+", T + "conn=1169 op=7 fd=69 Disconnect - Cleanly Closed Connection - U1",
     {"kind": "CLOSE", "op": 7, "fd": 69, "close_code": "U1",
      "close_reason": "Cleanly Closed Connection"}),
    ("close 2.1+ with error", T + "conn=9 op=-1 fd=70 Disconnect - Connection reset by peer - "
     "Bad Ber Tag or uncleanly closed connection - B1",
     {"kind": "CLOSE", "op": -1, "close_code": "B1"}),
    ("close old", "[21/Apr/2009:11:39:51 -0700] conn=11 op=2 fd=608 closed - U1",
     {"kind": "CLOSE", "close_code": "U1", "fd": 608}),
    ("close 1.4.4", T + "conn=11 op=2 fd=608 closed error - U1",
     {"kind": "CLOSE", "close_code": "U1", "close_reason": "error"}),
    ("close idle", T + "conn=11 op=2 fd=608 closed Idle timeout (nsslapd-idletimeout) - T1",
     {"kind": "CLOSE", "close_code": "T1"}),
]


def _one(line: str) -> dict:
    result = parse_lines((line + "\n").encode(), server="s", file="access")
    assert result.rejects.height == 0, result.rejects.to_dicts()
    assert result.events.height == 1
    return result.events.row(0, named=True)


@pytest.mark.parametrize("description,line,expected", CASES, ids=[c[0] for c in CASES])
def test_line_kinds(description: str, line: str, expected: dict) -> None:
    row = _one(line)
    for key, value in expected.items():
        if isinstance(value, float):
            assert row[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert row[key] == value, key


@pytest.mark.parametrize("stamp,utc_ns", [
    ("[26/Nov/2026:16:20:10.475026726 +0000]", 1795710010475026726),
    ("[26/Nov/2026:11:20:10.475026726 -0500]", 1795710010475026726),
    ("[27/Nov/2026:04:50:10.475026726 +1230]", 1795710010475026726),
    ("[26/Nov/2026:16:20:10 +0000]", 1795710010000000000),
], ids=["utc", "negative offset", "half-hour offset", "seconds only"])
def test_timestamps_are_utc_nanoseconds(stamp: str, utc_ns: int) -> None:
    row = _one(stamp + " conn=1 op=1 UNBIND")
    assert row["ts"] == utc_ns


def test_header_blank_and_junk_lines_are_counted() -> None:
    data = (b"\t389-Directory/2.3.1 B2025.016.1616\n\tlocalhost:3636 (/etc/dirsrv/x)\n\n"
            + (T + "conn=1 op=1 UNBIND\n").encode() + b"garbage here\n   \n")
    r = parse_lines(data, server="s", file="access")
    assert r.counts == {"total": 6, "parsed": 1, "rejected": 1, "header": 2, "blank": 2}
    reject = r.rejects.row(0, named=True)
    assert (reject["line"], reject["text"], reject["file"]) == (5, "garbage here", "access")


def test_unknown_keyword_and_malformed_fields_are_rejects_with_reasons() -> None:
    data = (T + "conn=1 op=1 FROBNICATE x\n" + T + "conn=1 op=2 RESULT err=x\n").encode()
    r = parse_lines(data, server="s", file="access")
    assert r.counts["rejected"] == 2
    assert r.rejects["reason"].to_list() == ["unknown event keyword: FROBNICATE",
                                             "malformed RESULT line: RESULT"]


def test_truncated_last_line_is_a_reject_only_when_final() -> None:
    data = (T + "conn=1 op=1 UNBIND\n" + T + "conn=1 op=2 SRCH base=\"dc").encode()
    final = parse_lines(data, server="s", file="access", final=True)
    assert final.counts == {"total": 2, "parsed": 1, "rejected": 1, "header": 0, "blank": 0}
    assert final.rejects["reason"][0].startswith("truncated last line")
    partial = parse_lines(data, server="s", file="access", final=False)
    assert partial.counts["total"] == 1 and partial.carry.endswith(b'base="dc')


def test_lines_cut_by_the_server_are_flagged() -> None:
    attrs = " ".join(f"attribute{i:04d}" for i in range(300))
    line = T + f'conn=1 op=1 SRCH base="dc=x" scope=2 filter="(uid=a)" attrs="{attrs}"'
    line = line[:2045] + "..."
    row = _one(line)
    assert row["truncated"] is True and row["kind"] == "SRCH" and row["filter"] == "(uid=a)"
    assert _one(T + "conn=1 op=1 UNBIND")["truncated"] is False


def test_invalid_utf8_is_kept_lossily() -> None:
    # bytes that are no UTF-8 in a DN, a base and a filter: each becomes U+FFFD, the line
    # still parses, and the fields after them are read right
    raw = b"".join([
        (T + 'conn=1 op=1 MOD dn="cn=').encode() + b"\xff\xfe" + b'"\n',
        (T + 'conn=1 op=2 SRCH base="ou=').encode() + b"\xc3" + b'x" scope=2 filter="(cn=' +
        b"\xe2\x82" + b')" attrs=ALL\n',
        (T + "conn=1 op=2 RESULT err=0 tag=101 nentries=3 etime=0.5").encode() + b"\n"])
    r = parse_lines(raw, server="s", file="access")
    assert r.counts["rejected"] == 0 and r.counts["parsed"] == 3
    mod, srch, result = r.events.sort("line").iter_rows(named=True)
    assert mod["dn"] == "cn=\ufffd\ufffd"
    assert (srch["base"], srch["scope"], srch["filter"], srch["attrs"]) == \
        ("ou=\ufffdx", 2, "(cn=\ufffd)", "ALL")
    assert result["nentries"] == 3


def _sample_files():
    for path in sorted(SAMPLE.glob("real389*/access*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        yield path, data


def test_whole_real_sample_parses_with_no_rejects_and_exact_kind_counts() -> None:
    for path, data in _sample_files():
        r = parse_lines(data, server=path.parent.name, file=path.name)
        text = data.decode()
        lines = text.splitlines()
        assert r.counts["rejected"] == 0, path
        assert r.counts["total"] == len(lines)
        assert sum(r.counts[k] for k in ("parsed", "rejected", "header", "blank")) == len(lines)
        kinds = dict(r.events.group_by("kind").len().iter_rows())
        # independent counts, by plain string matching on the raw text
        for verb in ("SRCH", "BIND", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT", "ABANDON",
                     "RESULT", "ENTRY", "VLV", "SORT", "AUTOBIND"):
            expected = sum(1 for ln in lines if f" {verb} " in ln + " " and
                           ln.split("] ", 1)[1].split(f" {verb}")[0].count(" ") <= 3)
            assert kinds.get(verb, 0) == expected, (path.name, verb)
        assert kinds.get("UNBIND", 0) == sum(ln.endswith(" UNBIND") for ln in lines)
        assert kinds.get("CONNECT", 0) == sum(" connection from " in ln for ln in lines)
        assert kinds.get("CLOSE", 0) == sum(" Disconnect - " in ln for ln in lines)
        internal = r.events.filter(pl.col("internal")).height
        assert internal == sum("(Internal)" in ln for ln in lines)


def test_line_numbers_point_at_the_source_line() -> None:
    path, data = next(iter(_sample_files()))
    data += (b'[26/Nov/2026:16:22:39.000000000 +0000] conn=Internal(0) op=0(1)(0) SRCH '
             b'base="cn=config" scope=0 filter="(objectclass=*)" attrs=ALL\n')
    r = parse_lines(data, server="s", file=path.name)
    lines = data.decode().splitlines()
    internal = r.events.filter(pl.col("conn").is_null()).head(10)
    assert internal.height  # conn=Internal lines, which have no connection number
    for row in pl.concat([r.events.sample(50, seed=1), internal]).iter_rows(named=True):
        line = lines[row["line"] - 1]
        # conn=1 must not be found in conn=1180: the number ends at a space or "("
        conn = r"Internal\b" if row["conn"] is None else rf"{row['conn']}[ (]"
        assert re.search(rf"\bconn={conn}", line), (row, line)
        assert row["op"] is None or re.search(rf"\bop={row['op']}\b", line), (row, line)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes_never_crash_and_balance(data: bytes) -> None:
    r = parse_lines(data, server="s", file="f")
    c = r.counts
    assert c["total"] == c["parsed"] + c["rejected"] + c["header"] + c["blank"]
    assert c["total"] == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([c[1] for c in CASES]), min_size=1, max_size=20),
       st.integers(min_value=0, max_value=400), st.binary(max_size=50))
def test_fuzz_cut_and_corrupted_real_lines_balance(lines: list[str], cut: int,
                                                   junk: bytes) -> None:
    data = "\n".join(lines).encode()
    data = data[: max(0, len(data) - cut)] + junk + b"\n" + b"x" * 100_000
    r = parse_lines(data, server="s", file="f")
    c = r.counts
    assert c["total"] == c["parsed"] + c["rejected"] + c["header"] + c["blank"]


def test_a_100kb_line_is_one_reject_or_event() -> None:
    big = T + 'conn=1 op=1 MOD dn="' + "a" * 100_000 + '"'
    r = parse_lines((big + "\n").encode(), server="s", file="f")
    assert r.counts["total"] == 1 and r.counts["parsed"] + r.counts["rejected"] == 1


# Lines where a strict pattern could go wrong: quotes inside values, keys and " - " inside
# quoted RESULT values, the 10-digit etime, CRLF, a missing field.
AWKWARD = [
    'RESULT err=0 tag=97 nentries=0 wtime=0.1 optime=0.1 etime=0.1 dn="cn=a - b,dc=x"',
    'RESULT err=0 tag=97 nentries=0 wtime=0.1 optime=0.1 etime=0.1 dn="cn=x notes=U,dc=x"',
    'RESULT err=0 tag=101 nentries=0 wtime=0.1 optime=0.1 etime=0.1 notes=U details="a csn=1"',
    'RESULT err=14 tag=97 nentries=0 wtime=0.1 optime=0.1 etime=0.1 notes=U '
    'details="x, SASL bind in progress"',
    'RESULT err=0 tag=101 nentries=0 wtime=0.1 optime=0.1 etime=0.1234567891',
    'RESULT err=0 tag=101 nentries=0 wtime=0.1 optime=0.1 etime=0.1 csn=5f0 - x',
    'RESULT err=0 tag=101 nentries=0 wtime=0.1 optime=0.1 etime=0.1 notes=U extra=1',
    'RESULT err=0 tag=101 nentries=0 wtime=0.1 optime=0.1 etime=0.1 pr_idx=1 pr_cookie=-1',
    'RESULT err=0 tag=101 nentries=0 wqtime=0.2 wtime=0.1 optime=0.1 etime=0.1',
    'RESULT err=0 tag=101 nentries=0 wtime=0.1 optime=0.1 etime=0.1 dn="x" sid="a"',
    'SRCH base="o=a"b" scope=2 filter="(cn=x)" attrs=ALL',
    'SRCH base="o=a" scope=2 filter="(cn="q")" attrs="cn sn"',
    'SRCH base="o=a" scope=2 filter="(cn=x)" attrs="cn sn" options=persistent',
    'SRCH base="o=a" scope=2 filter="(cn=x)" attrs=ALL authzid="dn:cn=y"',
    'BIND dn="cn="q"" method=128 version=3',
    'BIND dn="" method=sasl version=3 mech=GSSAPI',
    'BIND dn="cn=x" method=128 version=3, foo',
    'ADD dn="cn=a"b"',
    'UNBIND\r',
    'fd=64 closed - U1\r',
    'fd=64 closed error - B1',
    'fd=64 Disconnect - A - B - T2',
    'fd=64 Disconnect - - U1',
    'fd=64 Disconnect - Cleanly Closed Connection - U1 ',
]


def test_strict_patterns_agree_with_the_general_ones(tmp_path) -> None:
    from pipeline import _core

    from .synth import generate
    generate(tmp_path, servers=1, mb_per_server=1.0, seed=3)
    blocks = [data for _, data in _sample_files()]
    blocks += [p.read_bytes() for p in sorted(tmp_path.rglob("access*")) if p.suffix != ".gz"]
    blocks.append("".join(c[1] + "\n" for c in CASES).encode())
    blocks.append("".join(f"{T}conn=5 op=1 {body}\n" for body in AWKWARD).encode())
    fast = [parse_lines(b, server="s", file="f") for b in blocks]
    # the strict paths do handle most lines of the real sample and of the generator
    seen: dict[str, list[int]] = {}
    for block in blocks:
        for kind, (events, strict) in _core.tokenize_text(block)[4].items():
            seen.setdefault(kind, [0, 0])
            seen[kind][0] += events
            seen[kind][1] += strict
    for kind in ("RESULT", "SRCH", "BIND", "CONNECT", "CLOSE", "UNBIND", "ADD", "MOD", "DEL"):
        events, strict = seen[kind]
        share = strict / events
        assert share > (0.9 if kind in ("RESULT", "SRCH", "BIND") else 0.3), (kind, share)
    for block, expected in zip(blocks, fast, strict=True):
        general = parse_lines(block, server="s", file="f", strict=False)
        assert general.counts == expected.counts
        assert general.rejects.equals(expected.rejects)
        assert general.events.equals(expected.events)


def test_events_match_the_golden_tables_of_the_polars_parser(tmp_path) -> None:
    # digests written by the polars parser before the compiled core replaced it
    import json

    from .golden import GOLDEN, corpus, digest
    golden = json.loads((GOLDEN / "events.json").read_text())
    seen = set()
    for name, data in corpus(tmp_path):
        r = parse_lines(data, server="s", file="f")
        assert r.counts == golden[name]["counts"], name
        assert digest(r.events, ["line"]) == golden[name]["events"], name
        assert digest(r.rejects, ["line"]) == golden[name]["rejects"], name
        seen.add(name)
    assert seen == set(golden)
