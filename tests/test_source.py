"""Finding logs, rotation order, newline-aligned ranges and damaged gzip files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pipeline.engine.logline import tokenize
from pipeline.errors import ConfigError
from pipeline.sources.source import (
    Chunk,
    discover,
    parse_inputs,
    plan_chunks,
    read_chunk,
    rotation_key,
)


def test_rotation_order_by_name_stamp_and_live_file_last(tmp_path: Path) -> None:
    for name in ["access", "access.20261126-162107.gz", "access.20261126-162009",
                 "access.rotationinfo", "errors", "access.20261125-000000"]:
        (tmp_path / name).write_text("x\n")
    names = [f.name for f in discover("ds", str(tmp_path))]
    assert names == ["access.20261125-000000", "access.20261126-162009",
                     "access.20261126-162107.gz", "access"]
    assert sorted(names, key=rotation_key) == names


TITLE = "389-Directory/2.3.1 B2023.123.0000\n\tds.example.com:389 (/etc/dirsrv/slapd-ds)\n\n"


@pytest.mark.parametrize("names", [
    ["access.10", "access.9.gz", "access.2.gz", "access.1", "access"],  # numbered
    ["access-20261124.gz", "access-20261125", "access-2026112609", "access"],  # dateext
    ["access.20261124-000000", "access.2", "access-20261126.gz", "access"],  # mixed
])
def test_logrotate_names_are_read_in_the_order_of_their_first_lines(tmp_path: Path,
                                                                     names: list[str]) -> None:
    """logrotate's names carry no time, or one that does not sort (access.10 before
    access.9): files are ordered by their first event, in UTC (issue 35, part 1, item 2)."""
    for k, name in enumerate(names):  # names oldest first; each file a day after the last
        # a west-coast offset: the later file's local time reads earlier than UTC
        zone = "-0800" if k % 2 else "+0100"
        hour = 8 if k % 2 else 18
        text = TITLE + f"[{23 + k}/Nov/2026:{hour:02d}:00:00 {zone}] conn=1 op=0 UNBIND\n"
        data = text.encode()
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    for name in ["access.rotationinfo", "errors", "errors.1", "audit-20261125"]:
        (tmp_path / name).write_text("x\n")
    notes: list[str] = []
    found = discover("ds", str(tmp_path), notes=notes)
    assert [f.name for f in found] == names and [f.seq for f in found] == list(range(len(names)))
    assert notes == []


def test_a_file_named_like_a_log_but_not_read_is_named(tmp_path: Path) -> None:
    for name in ["access", "access.1.bz2", "access.bak", "access~", "access.rotationinfo"]:
        (tmp_path / name).write_text("x\n")
    notes: list[str] = []
    assert [f.name for f in discover("ds", str(tmp_path), notes=notes)] == ["access"]
    assert sorted(n.split(":")[0].rsplit("/", 1)[-1] for n in notes) == [
        "access.1.bz2", "access.bak", "access~"]
    assert all("named like an access log but not read" in n and "access.N" in n
               for n in notes)


def test_fleet_directory_and_named_inputs(tmp_path: Path, sample: Path) -> None:
    assert parse_inputs([str(sample)]) == [
        ("real389a", f"{sample}/real389a"), ("real389b", f"{sample}/real389b")]
    assert parse_inputs([f"x={sample}/real389a"]) == [("x", f"{sample}/real389a")]
    assert parse_inputs([f"{sample}/real389b"]) == [("real389b", f"{sample}/real389b")]
    with pytest.raises(ConfigError, match="input not found"):
        parse_inputs([str(tmp_path / "nope")])
    with pytest.raises(ConfigError, match="server named twice: a"):
        parse_inputs([f"a={sample}/real389a", f"a={sample}/real389b"])


@pytest.mark.parametrize("chunk_bytes", [1000, 4096, 65_537, 10_000_000])
def test_ranges_cover_every_line_once(tmp_path: Path, sample: Path, chunk_bytes: int) -> None:
    data = (sample / "real389b" / "access").read_bytes()[:300_000]
    data = data + b"[26/Nov/2026:11:22:20.015485921 -0500] conn=9 op=1 UNBIND"  # no newline
    path = tmp_path / "access"
    path.write_bytes(data)
    files = discover("ds", str(tmp_path))
    chunks = plan_chunks(files, chunk_bytes=chunk_bytes)
    assert len(chunks) == max(1, -(-len(data) // chunk_bytes)) if chunk_bytes < len(data) \
        else len(chunks) == 1
    pieces = [read_chunk(c) for c in chunks]
    assert b"".join(p.data for p in pieces) == data
    assert [p.final for p in pieces][-1] is True
    total = sum(tokenize(p.data, final=p.final).counts["total"]
                for p in pieces)
    assert total == data.count(b"\n") + 1


def test_gzip_is_one_chunk_and_reads_whole(tmp_path: Path) -> None:
    (tmp_path / "access.20261126-162009.gz").write_bytes(gzip.compress(b"a\nb\n" * 1000))
    files = discover("ds", str(tmp_path))
    chunks = plan_chunks(files, chunk_bytes=10)
    assert len(chunks) == 1 and chunks[0].whole_file
    assert read_chunk(chunks[0]).data == b"a\nb\n" * 1000


def test_corrupt_gzip_keeps_the_lines_before_the_damage(tmp_path: Path) -> None:
    lines = b"".join(b"line %06d\n" % i for i in range(50_000))
    blob = gzip.compress(lines)
    (tmp_path / "access.20261126-162009.gz").write_bytes(blob[: len(blob) // 2])
    chunk = plan_chunks(discover("ds", str(tmp_path)))[0]
    got = read_chunk(chunk)
    assert got.problem and "corrupt gzip" in got.problem and "access.20261126-162009.gz" \
        in got.problem and "server ds" in got.problem
    assert got.data and lines.startswith(got.data) and got.data.endswith(b"\n")
    kept = got.data.count(b"\n")
    assert 0 < kept < 50_000 and f"kept the {kept} lines" in got.problem


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    (tmp_path / "access.20261126-162009.gz").write_bytes(gzip.compress(b"a\n") +
                                                         gzip.compress(b"b\n"))
    got = read_chunk(Chunk(discover("ds", str(tmp_path))[0], 0, 0, -1))
    assert got.data == b"a\nb\n" and got.problem is None


def test_a_link_that_cannot_be_followed_is_skipped_and_named_not_the_server(
        tmp_path: Path, sample: Path) -> None:
    """Found by fuzzing the whole path: a dangling link or a link loop anywhere in a
    server folder made the folder "not found" and dropped the server (issue 35)."""
    logs = tmp_path / "s"
    logs.mkdir()
    (logs / "access").write_bytes((sample / "real389a" / "access").read_bytes())
    (logs / "access.20261126-000000").symlink_to(tmp_path / "gone")  # dangling, a log's name
    (logs / "loop").symlink_to(logs / "loop")  # a loop, no log's name
    (logs / "access.20261125-000000").symlink_to(logs / "access.20261125-000000")
    notes: list[str] = []
    found = discover("s", str(logs), notes=notes)
    assert [f.name for f in found] == ["access"]
    assert len(notes) == 2 and all("a link that cannot be followed, skipped" in n
                                   for n in notes)
    assert {n.split(":")[0].rsplit("/", 1)[-1] for n in notes} == {
        "access.20261126-000000", "access.20261125-000000"}
