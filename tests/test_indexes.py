"""Index advice (issue 33, item 3): ``indexes.parquet``, the report and ``report --text``,
against a log whose truth is written down here: which index each search lacked and what
its STAT lines say, as a 2.3.1 server with ``nsslapd-statlog-level: 1`` writes them
(result.c:2203 at 70dcccaf: ``STAT read index: attribute=%s key(%s)=%s --> count %d``).

An index read that found no index configured, or a key over nsslapd-idlistscanlimit,
returns ALLIDS, whose count is the backend's next entry id (back-ldbm/index.c:1047-1056,
idl_common.c:68-76); here 5001, then 4990 read earlier in the day (entries were added)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.engine.plan import RunOptions
from pipeline.engine.run import run
from pipeline.outputs.merge import merge_runs

ALLIDS = 5001


def _stamp(sec: float) -> str:
    whole = int(sec)
    return (f"[26/Nov/2026:16:{whole // 60:02d}:{whole % 60:02d}."
            f"{round((sec - whole) * 1e9):09d} +0000]")


class Log:
    """One server's access log, written search by search, with its truth."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.conn = 0
        self.sec = 0.0

    def search(self, filt: str, reads: list[tuple[str, str, int]], notes: str,
               etime: float, scope: int = 2, nentries: int = 1, err: int = 0) -> None:
        self.conn += 1
        self.sec += 0.5
        c, t = self.conn, _stamp(self.sec)
        self.lines += [
            f"{t} conn={c} fd=64 slot=64 connection from 10.0.0.{c % 200 + 1} to 10.0.0.1",
            f'{t} conn={c} op=0 SRCH base="ou=people,dc=example,dc=com" scope={scope} '
            f'filter="{filt}" attrs=ALL',
            *(f"{t} conn={c} op=0 STAT read index: attribute={a} key({k})=v --> count {n}"
              for a, k, n in reads),
            *([f"{t} conn={c} op=0 STAT read index: duration 0.000010000"] if reads else []),
            f"{t} conn={c} op=0 RESULT err={err} tag=101 nentries={nentries} etime={etime}"
            + (f" notes={notes}" if notes else ""),
            f"{t} conn={c} op=1 UNBIND",
            f"{t} conn={c} op=1 fd=64 closed - U1",
        ]

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "access").write_text("\n".join(self.lines) + "\n")


def _fleet(root: Path) -> Path:
    """Server ``stat`` logs its index reads; server ``plain`` runs the same searches
    without them."""
    for name in ("stat", "plain"):
        log = Log()
        reads = name == "stat"
        for i in range(6):  # description has no substring index: ALLIDS, notes=A
            log.search(f"(description=*team{i}*)",
                       [("description", "sub", 4990 if i < 3 else ALLIDS)] * reads, "A", 2.0)
        for _ in range(4):  # l has no equality index: U (read early: 4990); uid's is short
            log.search("(&(uid=u1)(l=Pune))",
                       [("uid", "eq", 1), ("l", "eq", 4990)] * reads, "U", 0.5)
        for _ in range(3):  # cn's substring index exists; a 2-letter key cannot use it
            log.search("(cn=*ab*)", [("cn", "sub", 12)] * reads, "A", 0.25)
        for _ in range(5):  # uid alone, indexed: the server has uid's equality index
            log.search("(uid=u2)", [("uid", "eq", 1)] * reads, "", 0.001)
        log.search("(mail=nobody)", [("mail", "eq", 0)] * reads, "", 0.001, nentries=0)
        log.search("(sn=x)", [], "", 0.001, scope=0)
        log.write(root / "logs" / name)
    return root / "logs"


@pytest.fixture(scope="module")
def advice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    root = tmp_path_factory.mktemp("indexes")
    out = root / "out"
    run(RunOptions(inputs=(str(_fleet(root)),), out=out, scheduler="synchronous"))
    return out, pl.read_parquet(out / "indexes.parquet")


def test_each_row_is_an_attribute_and_index_type_with_its_evidence(advice) -> None:
    _, df = advice
    got = {(r["server"], r["attribute"], r["index"]): r for r in df.to_dicts()}
    # the two filters' candidates, and uid's equality index that the plain server proved
    # by searches of it alone; none for mail (no entry found: no proof) or sn (base)
    assert set(got) == {(s, a, k) for s in ("stat", "plain") for a, k in (
        ("description", "sub"), ("l", "eq"), ("uid", "eq"), ("cn", "sub"))}
    want = {  # (evidence on stat, searches A, searches U, etime)
        ("description", "sub"): ("allids", 6, 0, 12.0),
        ("l", "eq"): ("allids", 0, 4, 2.0),
        ("uid", "eq"): ("indexed", 0, 4, 2.0),
        ("cn", "sub"): ("indexed", 3, 0, 0.75),
    }
    for (attr, kind), (evidence, a, u, etime) in want.items():
        for server in ("stat", "plain"):
            r = got[(server, attr, kind)]
            assert (r["unindexed"], r["partially_unindexed"]) == (a, u), (server, attr)
            assert r["searches"] == a + u and r["etime_sum"] == pytest.approx(etime)
        r = got[("stat", attr, kind)]
        assert r["evidence"] == evidence, attr
        assert r["allids_count"] == ALLIDS
    assert got[("stat", "description", "sub")]["candidates_max"] == ALLIDS
    assert got[("stat", "description", "sub")]["stat_reads"] == 6
    assert got[("stat", "cn", "sub")]["candidates_max"] == 12
    # without STAT lines: the filter's word, except where searches proved the index
    plain = {k: got[("plain", *k)]["evidence"] for k in want}
    assert plain == {("description", "sub"): "filter", ("l", "eq"): "filter",
                     ("uid", "eq"): "indexed", ("cn", "sub"): "filter"}
    assert got[("plain", "uid", "eq")]["indexed_searches"] == 5
    assert got[("plain", "description", "sub")]["allids_count"] is None
    assert got[("stat", "description", "sub")]["fingerprints"] == ["sub (description=*...*)"]


def test_rows_are_ranked_proof_first_then_by_etime(advice) -> None:
    _, df = advice
    order = [(r["server"], r["attribute"], r["evidence"]) for r in df.to_dicts()]
    assert order == [
        ("stat", "description", "allids"), ("stat", "l", "allids"),
        ("plain", "description", "filter"), ("plain", "l", "filter"),
        ("plain", "cn", "filter"),
        ("plain", "uid", "indexed"), ("stat", "uid", "indexed"), ("stat", "cn", "indexed")]


def test_the_report_and_the_text_report_show_the_advice(advice, capsys) -> None:
    out, _ = advice
    html = (out / "report.html").read_text()
    table = html[html.index('<table id="indexes">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + 8
    assert "missing: reads returned all IDs (5,001)" in table
    assert "filter only (the server logs no index reads)" in table
    assert "indexed: reads returned at most 12 of 5,001 IDs" in table
    assert main(["report", str(out), "--text"]) == 0
    text = capsys.readouterr().out
    advice_block = text[text.index("----- Index Advice"):].split("\n\n")[0].splitlines()
    assert advice_block[1].split()[:4] == ["12.000000", "stat", "description", "sub"]
    assert "indexed: 5 searches of it alone ran indexed" in text


def test_a_merge_of_two_halves_gives_the_same_advice(advice, tmp_path: Path) -> None:
    out, whole = advice
    halves = []
    for i, (since, until) in enumerate(((None, "2026-11-26T16:00:10Z"),
                                        ("2026-11-26T16:00:10Z", None))):
        half = tmp_path / f"half{i}"
        args = ["run", str(out.parent / "logs"), "-o", str(half), "--scheduler",
                "synchronous", "--quiet"]
        args += [*(["--since", since] if since else []), *(["--until", until] if until else [])]
        assert main(args) == 0
        halves.append(half)
    _, tables = merge_runs(halves, tmp_path / "merged")
    assert tables["indexes"].equals(whole)
