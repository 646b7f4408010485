"""The command line: output, exit codes and error wording."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import build_parser, main

from .conftest import SAMPLE

README = Path(__file__).parent.parent / "README.md"


def test_fingerprint_command_prints_the_canonical_example(capsys: pytest.CaptureFixture) -> None:
    assert main(["fingerprint", "(&(objectClass=inetOrgPerson)(|(cn=ckerr)(uid=ckerr)"
                 "(mail=ckerr)))", "(uid=a"]) == 1  # one filter does not parse
    assert capsys.readouterr().out.splitlines() == [
        "(&(objectClass=inetOrgPerson)(|(cn=...)(uid=...)(mail=...)))",
        "<unparsed:expected ')'>"]


def test_fingerprint_reads_stdin() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "fingerprint", "--id"],
                          input="(uid=a)\n(uid=b)\n", capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["e17f27b49f526474  (uid=...)"] * 2


def test_run_writes_outputs_and_prints_a_summary(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["run", f"b={SAMPLE}/real389b", "-o", str(out), "--scheduler", "synchronous",
                 "--jsonl"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert f"connections {summary['connections']:,}" in printed
    first = json.loads((out / "operations.jsonl").open().readline())
    assert {"verb", "bind_dn", "ts", "file", "line"} <= set(first)
    n = sum(1 for _ in (out / "operations.jsonl").open())
    assert n > 10_000


@pytest.mark.parametrize("args,message", [
    (["run", "nowhere", "-o", "x"], "input not found: nowhere"),
    (["run", str(SAMPLE), "-o", "x", "--since", "yesterday"], "--since: not a time"),
    (["run", str(SAMPLE), "-o", "x", "--until", "31/Feb/2026:00:00:00 +0000"],
     "--until: impossible timestamp: no such day"),
    (["run", str(SAMPLE), "-o", "x", "--workers", "0"], "--workers must be at least 1"),
    (["run", str(SAMPLE), "-o", "x", "--scheduler", "localhost"], "is not an address"),
    (["run", str(SAMPLE), "-o", "x", "--server", "nope"], "--server not among the inputs"),
    (["run", str(SAMPLE), "-o", "x", "--since", "2026-11-27T00:00:00Z", "--until",
      "2026-11-26T00:00:00Z"], "--until must be after --since"),
    (["run", str(SAMPLE), "-o", "nope://bucket/x"], "-o: cannot write to nope:// URLs"),
    (["run", str(SAMPLE), "-o", "x", "--scratch", "sftp://u:pw@h/s"],
     "--scratch URL with a password: sftp://u:***@h/s"),
], ids=["missing input", "bad time", "impossible time", "zero workers", "bad scheduler",
        "unknown server", "reversed window", "unknown protocol", "password in a URL"])
def test_usage_errors_name_the_flag_and_exit_64(args: list[str], message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    args = [a if a != "x" else str(tmp_path / "x") for a in args]
    assert main(args) == 64
    err = capsys.readouterr().err
    assert err.startswith("dsaccess: error: ") and message in err
    assert not (tmp_path / "x").exists()


def test_corrupt_gzip_gives_exit_2_and_keeps_the_rest(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    logs = tmp_path / "logs" / "ds1"
    logs.mkdir(parents=True)
    blob = (SAMPLE / "real389b" / "access.20261126-112018.gz").read_bytes()
    (logs / "access.20261126-112018.gz").write_bytes(blob[: len(blob) // 3])
    (logs / "access").write_bytes((SAMPLE / "real389b" / "access").read_bytes())
    out = tmp_path / "out"
    assert main(["run", str(logs), "-o", str(out), "--scheduler", "synchronous", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "corrupt gzip" in err and "access.20261126-112018.gz" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] and summary["lines"]["total"] > 5360


def readme_sections() -> dict[str, str]:
    """Each command's section of the README: from its heading (### `dsaccess NAME ...`)
    to the next heading of any level."""
    parts = re.split(r"^(#+ .*)$", README.read_text(), flags=re.M)
    return {m.group(1): body for head, body in zip(parts[1::2], parts[2::2], strict=True)
            if (m := re.match(r"### `dsaccess (\w+)", head))}


def test_every_command_has_help_and_is_in_the_readme() -> None:
    sections = readme_sections()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    # what every command takes (-v) is documented once, anywhere
    common = set.intersection(*({a.dest for a in p._actions} for p in sub.choices.values()))
    for name, parser in sub.choices.items():
        assert parser.description, name
        assert name in sections, name
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)
                # each long option named in backquotes in its command's own section, as a
                # whole word: "-s" is inside every "--since", "--out" inside "--outside"
                longs = [o for o in action.option_strings if o.startswith("--")] or \
                    action.option_strings
                text = README.read_text() if action.dest in common else sections[name]
                assert any(re.search(rf"`{re.escape(o)}(?![\w-])", text) for o in longs), \
                    (name, action.option_strings)


def test_fingerprint_of_a_filter_that_does_not_parse_fails_with_the_reason(capsys) -> None:
    assert main(["fingerprint", "(uid=a)", "(&(uid=a)(cn=b)"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "(uid=...)" and out.splitlines()[1].startswith("<unparsed:")
    assert err.startswith("dsaccess: not an LDAP filter (") and "(&(uid=a)(cn=b)" in err
    assert main(["fingerprint", "(uid=a)"]) == 0


def test_a_time_without_a_zone_is_read_as_utc_and_says_so(capsys) -> None:
    """The servers log in their own zones: a bare time is UTC, and the run says it (35)."""
    from pipeline.cli import parse_time
    assert parse_time("2026-11-26T16:21:00", "--since") == 1795710060_000000000
    err = capsys.readouterr().err
    assert "--since 2026-11-26T16:21:00: no UTC offset given, read as UTC" in err
    assert parse_time("2026-11-26T17:21:00+01:00", "--until") == 1795710060_000000000
    assert parse_time("26/Nov/2026:16:21:00 +0000", "--until") == 1795710060_000000000
    assert capsys.readouterr().err == ""
