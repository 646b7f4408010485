"""Sessions, joins and bind identity on small logs whose truth is known by construction."""

from __future__ import annotations

import json

import polars as pl

from pipeline.engine.logline import tokenize, tokenize_json

from .golden import join_files


def _ts(sec: int, ns: int = 0) -> str:
    return f"[26/Nov/2026:16:{sec // 60:02d}:{sec % 60:02d}.{ns:09d} +0000]"


def _ops(*files: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The operations and connections of files of one server, as a run joins them."""
    e = join_files("ds", [(f"f{i}", ("\n".join(lines) + "\n").encode())
                          for i, lines in enumerate(files)])
    return e.operations, e.connections


def _op(ops: pl.DataFrame, conn: int, op: int, session_nth: int = 0) -> dict:
    rows = ops.filter((pl.col("conn") == conn) & (pl.col("op") == op)).sort("ts").to_dicts()
    return rows[session_nth]


RES = "RESULT err={err} tag={tag} nentries=0 wtime=0.0001 optime=0.001 etime=0.0011"


def test_bind_identity_timeline() -> None:
    lines = [
        f"{_ts(0)} conn=5 fd=64 slot=64 connection from 10.0.0.9 to 10.0.0.1",
        f'{_ts(1)} conn=5 op=0 SRCH base="" scope=0 filter="(objectClass=*)" attrs=ALL',
        f"{_ts(1, 5)} conn=5 op=0 " + RES.format(err=0, tag=101),
        f'{_ts(2)} conn=5 op=1 BIND dn="uid=App,dc=x" method=128 version=3',
        f'{_ts(2, 5)} conn=5 op=1 ' + RES.format(err=0, tag=97) + ' dn="uid=app,dc=x"',
        f'{_ts(3)} conn=5 op=2 MOD dn="uid=u1,dc=x"',
        f"{_ts(3, 5)} conn=5 op=2 " + RES.format(err=0, tag=103),
        f'{_ts(4)} conn=5 op=3 BIND dn="uid=bad,dc=x" method=128 version=3',
        f"{_ts(4, 5)} conn=5 op=3 " + RES.format(err=49, tag=97),
        f'{_ts(5)} conn=5 op=4 SRCH base="dc=x" scope=2 filter="(uid=a)" attrs=ALL',
        f"{_ts(5, 5)} conn=5 op=4 " + RES.format(err=0, tag=101),
        f'{_ts(6)} conn=5 op=5 BIND dn="uid=other,dc=x" method=128 version=3',
        f"{_ts(6, 5)} conn=5 op=5 " + RES.format(err=0, tag=97),  # no dn=: request's DN
        f'{_ts(7)} conn=5 op=6 DEL dn="uid=u2,dc=x"',
        f"{_ts(7, 5)} conn=5 op=6 " + RES.format(err=0, tag=107),
        f"{_ts(8)} conn=5 op=7 UNBIND",
        f"{_ts(8, 5)} conn=5 op=7 fd=64 Disconnect - Cleanly Closed Connection - U1",
    ]
    ops, conns = _ops(lines)
    expected = {0: "", 1: "uid=app,dc=x", 2: "uid=app,dc=x", 3: "", 4: "",
                5: "uid=other,dc=x", 6: "uid=other,dc=x", 7: "uid=other,dc=x"}
    assert {r["op"]: r["bind_dn"] for r in ops.iter_rows(named=True)} == expected
    c = conns.row(0, named=True)
    assert (c["client_ip"], c["close_code"], c["binds"], c["operations"]) == \
        ("10.0.0.9", "U1", 3, 8)


def test_autobind_and_certificate_identity() -> None:
    ops, conns = _ops([
        f"{_ts(0)} conn=1 fd=64 slot=64 connection from local to /run/slapd.socket",
        f'{_ts(0, 1)} conn=1 AUTOBIND dn="cn=Directory Manager"',
        f'{_ts(0, 2)} conn=1 op=0 MOD dn="cn=config"',
        f"{_ts(0, 3)} conn=1 op=0 " + RES.format(err=0, tag=103),
        f"{_ts(1)} conn=2 fd=65 slot=65 SSL connection from 10.0.0.2 to 10.0.0.1",
        f"{_ts(1, 1)} conn=2 TLS1.3 client bound as uid=cert,dc=x",
        f'{_ts(1, 2)} conn=2 op=0 SRCH base="dc=x" scope=2 filter="(uid=a)" attrs=ALL',
        f"{_ts(1, 3)} conn=2 op=0 " + RES.format(err=0, tag=101),
    ])
    assert _op(ops, 1, 0)["bind_dn"] == "cn=Directory Manager"
    assert _op(ops, 2, 0)["bind_dn"] == "uid=cert,dc=x"
    by_conn = {r["conn"]: r for r in conns.iter_rows(named=True)}
    assert by_conn[1]["ldapi"] is True and by_conn[2]["ssl"] is True
    assert by_conn[2]["tls"] == "TLS1.3"


def test_restart_reuses_conn_ids_across_rotated_files() -> None:
    first = [
        f"{_ts(0)} conn=1 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.9",
        f'{_ts(1)} conn=1 op=0 BIND dn="uid=a,dc=x" method=128 version=3',
        f"{_ts(1, 1)} conn=1 op=0 " + RES.format(err=0, tag=97),
        f'{_ts(2)} conn=1 op=1 SRCH base="dc=x" scope=2 filter="(uid=a)" attrs=ALL',
    ]
    second = [  # the next rotated file: op=1's RESULT, then a restart reuses conn=1
        f"{_ts(3)} conn=1 op=1 " + RES.format(err=0, tag=101),
        f"{_ts(10)} conn=1 fd=64 slot=64 connection from 10.0.0.2 to 10.0.0.9",
        f'{_ts(11)} conn=1 op=0 SRCH base="dc=x" scope=2 filter="(uid=b)" attrs=ALL',
        f"{_ts(11, 1)} conn=1 op=0 " + RES.format(err=0, tag=101),
    ]
    ops, conns = _ops(first, second)
    assert conns.height == 2
    old = _op(ops, 1, 1)
    assert (old["bind_dn"], old["file"], old["result_file"], old["line"], old["result_line"]) \
        == ("uid=a,dc=x", "f0", "f1", 4, 1)
    new = ops.filter((pl.col("conn") == 1) & (pl.col("op") == 0)).sort("ts").to_dicts()
    assert [r["verb"] for r in new] == ["BIND", "SRCH"]
    assert new[1]["bind_dn"] == "" and new[1]["client_ip"] == "10.0.0.2"
    assert new[0]["session"] != new[1]["session"]


def test_outstanding_operations_and_out_of_order_lines_pair_by_op() -> None:
    ops, _ = _ops([
        f"{_ts(0)} conn=3 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.9",
        f'{_ts(1)} conn=3 op=0 SRCH base="dc=x" scope=2 filter="(cn=slow)" attrs=ALL',
        f'{_ts(1, 2)} conn=3 op=1 SRCH base="dc=x" scope=2 filter="(cn=fast)" attrs=ALL',
        f"{_ts(1, 1)} conn=3 op=1 RESULT err=0 tag=101 nentries=1 etime=0.000100000",
        f"{_ts(9)} conn=3 op=0 RESULT err=0 tag=101 nentries=7 etime=8.000000000",
    ])
    assert (_op(ops, 3, 0)["nentries"], _op(ops, 3, 0)["filter"]) == (7, "(cn=slow)")
    assert (_op(ops, 3, 1)["nentries"], _op(ops, 3, 1)["filter"]) == (1, "(cn=fast)")


def test_before_window_abandon_persistent_internal_and_unmatched() -> None:
    ops, conns = _ops([
        # conn=8 opened before the window: its identity is unknown
        f'{_ts(0)} conn=8 op=4 SRCH base="dc=x" scope=2 filter="(uid=x)" attrs=ALL',
        f"{_ts(0, 1)} conn=8 op=4 " + RES.format(err=0, tag=101),
        f"{_ts(0, 2)} conn=8 op=9 " + RES.format(err=0, tag=103),  # a RESULT with no request
        f"{_ts(1)} conn=9 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.9",
        f'{_ts(1, 1)} conn=9 op=0 SRCH base="dc=x" scope=2 filter="(objectClass=person)" '
        'attrs="uid" options=persistent',
        f'{_ts(1, 2)} conn=9 op=1 SRCH base="dc=x" scope=2 filter="(cn=*)" attrs=ALL',
        f"{_ts(1, 3)} conn=9 op=2 ABANDON targetop=1 msgid=2 nentries=0 etime=0.0001000000",
        f'{_ts(2)} conn=9 (Internal) op=3(1)(1) SRCH base="cn=config" scope=0 '
        'filter="(objectClass=*)" attrs=ALL',
        f"{_ts(2, 1)} conn=9 (Internal) op=3(1)(1) RESULT err=0 tag=48 nentries=1 etime=0.1",
        f'{_ts(2, 2)} conn=9 (Internal) op=3(1)(1) SRCH base="cn=y" scope=0 '
        'filter="(objectClass=*)" attrs=ALL',
        f"{_ts(2, 3)} conn=9 (Internal) op=3(1)(1) RESULT err=32 tag=48 nentries=0 etime=0.2",
    ])
    before = _op(ops, 8, 4)
    assert before["bind_dn"] is None and before["session"] is None
    orphan = _op(ops, 8, 9)
    assert (orphan["verb"], orphan["line"], orphan["result_line"]) == ("MOD", None, 3)
    persistent = _op(ops, 9, 0)
    assert persistent["options"] == "persistent" and persistent["result_line"] is None
    assert _op(ops, 9, 1)["abandoned"] is True
    assert _op(ops, 9, 2)["verb"] == "ABANDON"
    internal = ops.filter(pl.col("internal")).sort("line")
    assert internal.select("base", "err").rows() == [("cn=config", 0), ("cn=y", 32)]
    assert _op(ops, 9, 1)["fingerprint"] == "sub (cn=*)" and \
        _op(ops, 9, 0)["fingerprint"] == "sub (objectClass=person)"


def test_next_request_logged_before_the_bind_result_still_runs_as_the_new_identity() -> None:
    # Seen on real 389 DS 2.3.1: the worker thread of op=2 logs its SRCH before the
    # thread that sent op=1's BIND response logs that RESULT.
    ops, _ = _ops([
        f"{_ts(0)} conn=4 fd=64 slot=64 connection from 10.0.0.1 to 10.0.0.9",
        f'{_ts(1)} conn=4 op=0 BIND dn="uid=a,dc=x" method=128 version=3',
        f'{_ts(1, 2)} conn=4 op=1 SRCH base="dc=x" scope=2 filter="(uid=b)" attrs=ALL',
        f'{_ts(1, 1)} conn=4 op=0 ' + RES.format(err=0, tag=97) + ' dn="uid=a,dc=x"',
        f"{_ts(1, 3)} conn=4 op=1 " + RES.format(err=0, tag=101),
    ])
    assert _op(ops, 4, 1)["bind_dn"] == "uid=a,dc=x"


def test_operations_match_the_golden_tables_of_the_polars_join(tmp_path) -> None:
    # digests written by the polars join before the compiled core replaced it; checked on
    # the production path (shuffle files, then the bucket's task)
    import json

    from .golden import GOLDEN, operation_digests
    golden = json.loads((GOLDEN / "operations.json").read_text())
    found = operation_digests(tmp_path)
    for server, want in golden.items():
        assert found[server] == want, server
    assert set(found) == set(golden)


T = "[26/Nov/2026:16:22:20.116136841 +0000] "


def test_repeated_internal_ids_pair_with_the_result_that_follows_them() -> None:
    # conn=Internal(0) op=0(0)(0) repeats; each request takes the next RESULT of its ids
    lines = []
    for i, err in enumerate([0, 32, 0, 32, 0]):
        lines.append(f'{T}conn=Internal(0) op=0(0)(0) SRCH base="cn=b{i}" scope=0 '
                     f'filter="(objectClass=*)" attrs=ALL')
        lines.append(f"{T}conn=Internal(0) op=0(0)(0) RESULT err={err} tag=48 nentries={i} "
                     "wtime=0.1 optime=0.1 etime=0.1")
    ops = _ops(lines)[0].sort("line")
    assert ops["base"].to_list() == [f"cn=b{i}" for i in range(5)]
    assert ops["err"].to_list() == [0, 32, 0, 32, 0]
    assert ops["nentries"].to_list() == list(range(5))
    assert (ops["result_line"] - ops["line"]).to_list() == [1] * 5


def test_each_search_gets_the_fingerprint_of_its_own_filter() -> None:
    # one malformed filter must not turn the other (uid=...) searches into <unparsed:...>;
    # a search without a filter is <unparsed:missing>; no reason quotes filter text
    filters = [f"(uid=user{i:04d})" for i in range(50)] + [r"(uid=!\)", "(cn=john)(uid=jsmith)"]
    lines = [f'{T}conn=1 op={i} SRCH base="dc=x" scope=2 filter="{f}" attrs=ALL'
             for i, f in enumerate(filters)]
    lines.append(f'{T}conn=1 op=99 SRCH dn="not a dn", invalid dn')
    ops = _ops(lines)[0].sort("line")
    prints = ops["fingerprint"].to_list()
    assert prints[:50] == ["sub (uid=...)"] * 50  # (scope=2: sub)
    assert prints[50] == "sub <unparsed:expected ')'>"
    assert prints[51] == "sub <unparsed:unexpected text after the filter>"
    assert prints[52] == "<unparsed:missing>"  # (no scope logged either)
    assert not any("jsmith" in p or "john" in p for p in prints)
    assert ops["fingerprint_id"].null_count() == 0


def test_the_worker_pool_fields_of_a_result_are_its_operations() -> None:
    """389 DS 3.2.1 with nsslapd-statlog-level bit 2 writes the pool at queueing time on
    client RESULTs (result.c:2357-2362 at 70dcccaf: " wbusy=%d/%d wqdepth=%d", after
    the timings), in any subset of the five timings (issue 33, item 1)."""
    ops, _ = _ops([
        f"{_ts(0)} conn=5 fd=64 slot=64 connection from 10.0.0.9 to 10.0.0.1",
        f'{_ts(1)} conn=5 op=0 SRCH base="dc=x" scope=2 filter="(uid=a)" attrs=ALL',
        f"{_ts(1, 5)} conn=5 op=0 RESULT err=0 tag=101 nentries=1 wqtime=0.002 wtime=0.0021 "
        "optime=0.01 writetime=0.0001 etime=0.0122 wbusy=16/16 wqdepth=9 notes=A",
        f'{_ts(2)} conn=5 op=1 SRCH base="dc=x" scope=2 filter="(uid=b)" attrs=ALL',
        f"{_ts(2, 5)} conn=5 op=1 RESULT err=0 tag=101 nentries=1 etime=0.0003 "
        "wbusy=2/16 wqdepth=0",
        f'{_ts(3)} conn=5 op=2 SRCH base="dc=x" scope=2 filter="(uid=c)" attrs=ALL',
        f"{_ts(3, 5)} conn=5 op=2 RESULT err=0 tag=101 nentries=1",
    ])
    got = ops.sort("op").select("wbusy", "wmax", "wqdepth", "wqtime", "etime", "unindexed").rows()
    assert got == [(16, 16, 9, 0.002, 0.0122, True), (2, 16, 0, None, 0.0003, False),
                   (None, None, None, None, None, False)]


def test_stat_lines_are_their_searchs_index_reads_text_and_json() -> None:
    """``nsslapd-statlog-level`` bit 1 (2.3.1+) writes, before a search's RESULT, a line per
    index key read and a summary line (result.c:2203, :2221, :2241, :2254 at 70dcccaf);
    internal operations' have no space before STAT (:2142-2143). The JSON log has
    ``stat_attr``/``stat_key``/``stat_key_value``/``stat_count``, or ``stat_etime`` for the
    summary (accesslog.c:865-872). Each becomes the search's ``index_reads`` list:
    null where nothing was logged, empty where only the summary was."""
    text = [
        f"{_ts(0)} conn=5 fd=64 slot=64 connection from 10.0.0.9 to 10.0.0.1",
        f'{_ts(1)} conn=5 op=0 SRCH base="dc=x" scope=2 filter="(&(uid=a)(cn=*b*))" attrs=ALL',
        f"{_ts(1, 1)} conn=5 op=0 STAT read index: attribute=uid key(eq)=a --> count 1 "
        "(duration 0.000012000)",
        f"{_ts(1, 2)} conn=5 op=0 STAT read index: attribute=cn key(sub)=a --> b --> count 7 "
        "(duration 0.000003000)",
        f"{_ts(1, 3)} conn=5 op=0 STAT read index: duration 0.000020000",
        f"{_ts(1, 5)} conn=5 op=0 RESULT err=0 tag=101 nentries=1 wtime=0.0001 optime=0.001 "
        "etime=0.0011",
        f'{_ts(2)} conn=5 op=1 SRCH base="dc=x" scope=2 filter="(description=z)" attrs=ALL',
        f"{_ts(2, 3)} conn=5 op=1 STAT read index: duration 0.000001000",
        f"{_ts(2, 5)} conn=5 op=1 RESULT err=0 tag=101 nentries=0 wtime=0.0001 optime=0.001 "
        "etime=0.0011 notes=A",
        f'{_ts(3)} conn=5 op=2 SRCH base="dc=x" scope=0 filter="(objectClass=*)" attrs=ALL',
        f"{_ts(3, 5)} conn=5 op=2 RESULT err=0 tag=101 nentries=1 wtime=0.0001 optime=0.001 "
        "etime=0.0011",
        f'{_ts(4)} conn=Internal(0) op=0(1)(0) SRCH base="cn=config" scope=0 '
        'filter="(objectClass=*)" attrs=ALL',
        f"{_ts(4, 1)} conn=Internal(0) op=0(1)(0)STAT read index: attribute=objectclass "
        "key(eq)=nstask --> count 0 (duration 0.000001000)",
        f"{_ts(4, 2)} conn=Internal(0) op=0(1)(0) RESULT err=0 tag=48 nentries=0 "
        "wtime=0.0001 optime=0.001 etime=0.0011",
    ]
    reads_of = lambda ops: {(r["conn"], r["op"]): r["index_reads"]  # noqa: E731
                            for r in ops.filter(pl.col("verb") == "SRCH").to_dicts()}
    want = {
        (5, 0): [{"attribute": "uid", "index": "eq", "key": "a", "count": 1},
                 {"attribute": "cn", "index": "sub", "key": "a --> b", "count": 7}],
        (5, 1): [],
        (5, 2): None,
        (None, 0): [{"attribute": "objectclass", "index": "eq", "key": "nstask", "count": 0}],
    }
    assert reads_of(_ops(text)[0]) == want

    def obj(sec: int, ns: int, operation: str, op: int, **fields: object) -> str:
        return json.dumps({"local_time": f"2026-11-26T16:00:{sec:02d}.{ns:09d} +0000",
                           "operation": operation, "key": "1764172800-5", "conn_id": 5,
                           "op_id": op, **fields})

    def result(sec: int, op: int) -> str:
        return obj(sec, 5, "RESULT", op, tag=101, err=0, nentries=1, wtime="0.0001",
                   optime="0.001", etime="0.0011")

    jlog = [
        json.dumps({"local_time": "2026-11-26T16:00:00.000000000 +0000",
                    "operation": "CONNECTION", "key": "1764172800-5", "conn_id": 5, "fd": 64,
                    "slot": 64, "client_ip": "10.0.0.9", "server_ip": "10.0.0.1"}),
        obj(1, 0, "SEARCH", 0, base_dn="dc=x", scope=2, filter="(&(uid=a)(cn=*b*))"),
        obj(1, 1, "STAT", 0, stat_attr="uid", stat_key="eq", stat_key_value="a", stat_count=1),
        obj(1, 2, "STAT", 0, stat_attr="cn", stat_key="sub", stat_key_value="a --> b",
            stat_count=7),
        obj(1, 3, "STAT", 0, stat_etime="0.000020000"),
        result(1, 0),
        obj(2, 0, "SEARCH", 1, base_dn="dc=x", scope=2, filter="(description=z)"),
        obj(2, 3, "STAT", 1, stat_etime="0.000001000"),
        result(2, 1),
        obj(3, 0, "SEARCH", 2, base_dn="dc=x", scope=0, filter="(objectClass=*)"),
        result(3, 2),
    ]
    del want[(None, 0)]
    assert reads_of(_ops(jlog)[0]) == want


def test_unknown_result_fields_are_events_and_counted_by_name() -> None:
    """A RESULT field of a newer server is tolerated (the line is an event) and counted
    under its name, text and JSON; a key inside a quoted value or the free text is not a
    field."""
    text = "\n".join([
        f'{_ts(1)} conn=5 op=0 SRCH base="dc=x" scope=2 filter="(uid=a)" attrs=ALL',
        f"{_ts(1, 5)} conn=5 op=0 RESULT err=0 tag=101 nentries=1 wtime=0.0001 optime=0.001 "
        "etime=0.0011 newfield=7 notes=A",
        f"{_ts(2, 5)} conn=5 op=1 RESULT err=0 tag=101 nentries=1 etime=0.0011 newfield=8 "
        'other_one="a b" details="x=y" - no such=thing',
        f"{_ts(3, 5)} conn=5 op=2 RESULT err=0 tag=97 nentries=0 wtime=0.0001 optime=0.001 "
        'etime=0.0011 dn="cn=a newfield=9"',
    ]) + "\n"
    tokens = tokenize(text.encode())
    assert tokens.counts["rejected"] == 0 and tokens.counts["parsed"] == 4
    assert tokens.unknown_fields == {"newfield": 2, "other_one": 1}
    jlog = json.dumps({"local_time": "2026-11-26T16:00:01.000000000 +0000",
                       "operation": "RESULT", "key": "1764172800-5", "conn_id": 5, "op_id": 0,
                       "tag": 101, "err": 0, "nentries": 1, "etime": "0.0011",
                       "newfield": 3}) + "\n"
    tokens = tokenize_json(jlog.encode())
    assert tokens.counts["rejected"] == 0 and tokens.unknown_fields == {"newfield": 1}
