"""The 3.x JSON access log maps onto the same events as the text format."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sources.jsonlog import is_json_log

from .events import parse_json_lines

# Verbatim and constructed examples of 389ds-access-log.md §11.4.
EXAMPLES = [
    '{"header":{"version":"389-Directory/3.3.0 B2026.150.0000","instance":"ldap1:636 (/etc/dirsrv/slapd-ldap1)"}}',
    '{"local_time":"2026-05-30T10:00:00.000000001 +0000","operation":"CONNECTION","key":"1780135200-1","conn_id":1,"fd":64,"slot":64,"tls":false,"client_ip":"192.0.2.10","server_ip":"192.0.2.1"}',
    '{"local_time":"2026-05-30T10:00:00.000000002 +0000","operation":"HAPROXY","key":"1780135200-1","conn_id":1,"fd":64,"haproxy_ip":"198.51.100.7","haproxy_destip":"192.0.2.1"}',
    '{"local_time":"2026-05-30T10:00:00.000000003 +0000","operation":"TLS_INFO","key":"1780135200-1","conn_id":1,"tls_version":"TLS1.3","cipher":"AES-GCM","keysize":256}',
    '{"local_time":"2026-05-30T10:00:00.000000004 +0000","operation":"BIND","key":"1780135200-1","conn_id":1,"op_id":0,"bind_dn":"uid=app,ou=People,dc=example,dc=com","version":3,"method":"128"}',
    '{"local_time":"2026-05-30T10:00:00.000000005 +0000","operation":"RESULT","key":"1780135200-1","conn_id":1,"op_id":0,"msg":"SASL bind in progress","tag":97,"err":0,"nentries":0,"client_ip":"192.0.2.10","bind_dn":"uid=app,ou=people,dc=example,dc=com","wqtime":"0.000010000","wtime":"0.000020000","optime":"0.000900000","etime":"0.000930000"}',
    '{"local_time":"2026-05-30T10:00:00.000000006 +0000","operation":"MODIFY","key":"1780135200-1","conn_id":1,"op_id":1,"target_dn":"uid=u1,ou=People,dc=example,dc=com"}',
    '{"local_time":"2026-05-30T10:00:00.000000007 +0000","operation":"COMPARE","key":"1780135200-1","conn_id":1,"op_id":2,"target_dn":"cn=g,dc=example,dc=com","cmp_attr":"member"}',
    '{"local_time":"2026-05-30T10:00:00.000000008 +0000","operation":"EXTENDED_OP","key":"1780135200-1","conn_id":1,"op_id":3,"oid":"1.3.6.1.4.1.4203.1.11.1","oid_name":"...","name":"passwd_modify_plugin"}',
    '{"local_time":"2026-05-30T10:00:00.000000009 +0000","operation":"ABANDON","key":"1780135200-1","conn_id":1,"op_id":5,"etime":"0.0001234567","nentries":3,"msgid":5,"target_op":"4"}',
    '{"local_time":"2026-05-30T10:00:00.000000010 +0000","operation":"UNBIND","key":"1780135200-1","conn_id":1,"op_id":6}',
    '{"local_time":"2026-05-30T10:00:00.000000011 +0000","operation":"DISCONNECT","key":"1780135200-1","conn_id":1,"op_id":6,"fd":64,"close_reason":"Cleanly Closed Connection - U1"}',
    '{"local_time":"2026-05-30T10:00:00.000000012 +0000","operation":"SEARCH","key":"0-0","conn_id":0,"op_id":0,"internal_op":true,"op_internal_id":1,"op_internal_nested_count":0,"base_dn":"cn=config","scope":0,"filter":"(objectClass=*)"}',
    '{"local_time":"2025-07-28T23:41:31.435371287 +0000","operation":"RESULT","key":"1753746090-1","conn_id":1,"op_id":7,"msg":" - Invalid attribute in filter - results may not be complete.","tag":101,"err":0,"nentries":0,"wtime":"0.000200687","optime":"0.081066609","etime":"0.081264698","client_ip":"127.0.0.1","notes":[{"note":"F","description":"Filter Element Missing From Schema","filter":"(idontexist=*)"}]}',
]


def _parse(lines: list[str]):
    return parse_json_lines(("\n".join(lines) + "\n").encode(), server="ds3", file="access")


def test_every_documented_event_kind() -> None:
    r = _parse(EXAMPLES)
    assert r.counts == {"total": 14, "parsed": 13, "rejected": 0, "header": 1, "blank": 0}
    rows = r.events.to_dicts()
    kinds = [row["kind"] for row in rows]
    assert kinds == ["CONNECT", "HAPROXY", "TLS", "BIND", "RESULT", "MOD", "CMP", "EXT",
                     "ABANDON", "UNBIND", "CLOSE", "SRCH", "RESULT"]
    connect, haproxy, tls, bind, result, mod, cmp_, ext, abandon, unbind, close, srch, res2 = rows
    assert (connect["client_ip"], connect["server_ip"], connect["ssl"]) == \
        ("192.0.2.10", "192.0.2.1", False)
    assert haproxy["client_ip"] == "198.51.100.7"
    assert tls["tls_version"] == "TLS1.3"
    assert (bind["dn"], bind["method"], bind["version"]) == \
        ("uid=app,ou=People,dc=example,dc=com", "128", 3)
    assert result["dn"] == "uid=app,ou=people,dc=example,dc=com"
    assert result["text"] is None  # "SASL bind in progress" on a success is the server's quirk
    assert result["wqtime"] == pytest.approx(1e-5) and result["etime"] == pytest.approx(0.00093)
    assert mod["dn"] == "uid=u1,ou=People,dc=example,dc=com"
    assert cmp_["attr"] == "member"
    assert (ext["oid"], ext["name"]) == ("1.3.6.1.4.1.4203.1.11.1", "passwd_modify_plugin")
    assert (abandon["targetop"], abandon["msgid"]) == ("4", 5)
    assert abandon["etime"] == pytest.approx(0.001234567)  # 10-digit form: last nine are ns
    assert unbind["op"] == 6
    assert (close["close_code"], close["close_reason"]) == ("U1", "Cleanly Closed Connection")
    assert (srch["internal"], srch["conn"], srch["op_internal"], srch["attrs"]) == \
        (True, None, 1, "ALL")
    assert (res2["notes"], res2["text"]) == \
        ("F", "Invalid attribute in filter - results may not be complete.")
    assert connect["ts"] == 1780135200_000000001 and connect["tz"] == "+0000"


def test_json_pretty_objects_span_lines() -> None:
    pretty = [json.dumps(json.loads(e), indent=2) for e in EXAMPLES[1:4]]
    text = "\n".join(pretty)
    r = parse_json_lines((text + "\n").encode(), server="ds3", file="access")
    n_lines = text.count("\n") + 1
    assert r.counts == {"total": n_lines, "parsed": n_lines, "rejected": 0, "header": 0,
                        "blank": 0}
    assert r.events["kind"].to_list() == ["CONNECT", "HAPROXY", "TLS"]
    assert r.events["line"].to_list()[0] == 1


def _cuts() -> list[int]:
    """Cut points in every kind of place: inside a key, inside a string value, between
    tokens, inside a number (the server cuts where the 2048 bytes end, anywhere)."""
    e = EXAMPLES[12]
    key = e.index('"operation"') + 4
    value = e.index('"', e.index(":", key) + 2) - 3
    between = e.index(",") + 1
    number = re.search(r'"op_internal_id":\d', e).end()  # after a number's first digit
    return [key, value, between, number, 120, len(e) - 5]


@pytest.mark.parametrize("at", _cuts(), ids=["in a key", "in a value", "between", "in a number",
                                              "at 120", "near the end"])
def test_event_cut_at_2048_bytes_is_a_reject(at: int) -> None:
    cut = EXAMPLES[12][:at] + "...}"
    r = _parse([EXAMPLES[1], cut, EXAMPLES[10]])
    assert r.counts == {"total": 3, "parsed": 2, "rejected": 1, "header": 0, "blank": 0}
    assert r.rejects.row(0, named=True)["reason"] == \
        "JSON event cut at the server's 2048-byte limit"
    assert r.rejects.row(0, named=True)["line"] == 2


def test_unknown_operation_and_bad_time_are_rejects() -> None:
    r = _parse(['{"local_time":"x","operation":"BIND"}', '{"operation":"NOPE","local_time":'
                '"2026-05-30T10:00:00.000000001 +0000"}', "[not json"])
    assert r.counts["rejected"] == 3
    assert r.rejects["reason"].to_list()[:2] == ["bad local_time: 'x'",
                                                 "unknown JSON operation: 'NOPE'"]


def test_detection_by_first_bytes() -> None:
    assert is_json_log(b'  \n{"header":1}') and not is_json_log(b"\t389-Directory/2.3.1")


def test_an_event_cut_inside_a_string_is_one_reject_and_the_next_events_parse() -> None:
    # the server cuts events over 2048 bytes and ends them with "...}" (§9): invalid JSON
    cut = EXAMPLES[12][:-40].replace('"filter":"(objectClass=*)"', '"filter":"(cn=' + "a" * 2000)
    cut = cut[:2040] + "...}"
    r = _parse([EXAMPLES[1], cut, *EXAMPLES[2:9]])
    assert r.counts["rejected"] == 1 and r.counts["parsed"] == 8
    assert r.rejects["reason"][0] == "JSON event cut at the server's 2048-byte limit"
    assert r.events["kind"].to_list() == ["CONNECT", "HAPROXY", "TLS", "BIND", "RESULT", "MOD",
                                          "CMP", "EXT"]


def test_a_wrongly_typed_value_is_a_reject_not_a_crash() -> None:
    bad = EXAMPLES[4].replace('"conn_id":1', '"conn_id":"x"')
    worse = EXAMPLES[6].replace('"op_id":1', '"op_id":[1]').replace('"conn_id":1', '"conn_id":true')
    r = _parse([EXAMPLES[1], bad, worse, EXAMPLES[10]])
    assert r.counts == {"total": 4, "parsed": 2, "rejected": 2, "header": 0, "blank": 0}
    assert all(reason.startswith("wrong type") for reason in r.rejects["reason"])
    assert r.events["kind"].to_list() == ["CONNECT", "UNBIND"]


def test_timings_that_are_not_seconds_and_impossible_times_are_rejects() -> None:
    huge = EXAMPLES[5].replace('"etime":"0.000930000"', '"etime":"10000000000.0"')
    garbled = EXAMPLES[5].replace('"wtime":"0.000020000"', '"wtime":"0.0[0020000"')
    negative = EXAMPLES[5].replace('"etime":"0.000930000"', '"etime":-1')
    offset = EXAMPLES[6].replace("+0000", "+0070")
    mangled = EXAMPLES[6].replace("00.000000006", "00\u00e9000000006")
    r = _parse([EXAMPLES[1], huge, garbled, negative, offset, mangled, EXAMPLES[10]])
    assert r.counts == {"total": 7, "parsed": 2, "rejected": 5, "header": 0, "blank": 0}
    reasons = r.rejects["reason"].to_list()
    assert [x.split(":")[0] for x in reasons] == ["timing value not seconds from 0 to 1e9"] * 3 \
        + ["bad local_time"] * 2
    assert "etime=10000000000.0" in reasons[0] and "wtime=0.0[0020000" in reasons[1]
    assert r.events["kind"].to_list() == ["CONNECT", "UNBIND"]


def test_a_log_of_no_event_has_an_empty_events_table() -> None:
    r = _parse([EXAMPLES[0], "", '{"operation": 5}'])
    assert r.events.height == 0 and r.counts["rejected"] == 1


JSON_NOISE = list(b' "{}[],:0123456789aZ\\.-+\n') + [0xC3, 0xA9, 0xFF]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4000), st.sampled_from(JSON_NOISE)),
                max_size=6), st.booleans())
def test_damaged_json_logs_balance_and_never_raise(edits, pretty) -> None:
    text = "\n".join(json.dumps(json.loads(e), indent=2) for e in EXAMPLES) if pretty \
        else "\n".join(EXAMPLES)
    data = bytearray((text + "\n").encode())
    for kind, at, byte in edits:
        at = min(at, len(data) - 1)
        if kind == 0:
            data[at:at] = bytes([byte])
        elif kind == 1:
            del data[at:at + 3]
        else:
            data[at] = byte
    r = parse_json_lines(bytes(data), server="ds3", file="access")
    c = r.counts
    assert c["total"] == c["parsed"] + c["rejected"] + c["header"] + c["blank"]
    assert r.rejects.height == c["rejected"]
    assert r.events.height <= len(EXAMPLES)
