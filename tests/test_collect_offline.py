"""collect's parts that need no SSH server: the servers file, remote names, the closing
table of servers that cannot be reached (test_collect.py runs against real sshd)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_servers
from pipeline.errors import ConfigError
from pipeline.sources import collect as collect_mod


@pytest.mark.parametrize("entry,message", [
    ({"name": "a", "host": "h", "logs": "/x", "colour": 1}, "unknown key colour"),
    ({"name": "a", "host": "h", "logs": "/x", "password": "s"}, "passwords are never read"),
    ({"name": "a/b", "host": "h", "logs": "/x"}, "name 'a/b' must be"),
    ({"name": "a", "host": "h", "logs": "/x", "key_file": "/nope"}, "key_file not found"),
    ({"name": "a", "logs": "/x"}, "missing key 'host'"),
], ids=["unknown key", "password", "unsafe name", "missing key file", "missing host"])
def test_config_errors_name_the_key(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump({"servers": [entry]}))
    with pytest.raises(ConfigError, match=message):
        load_servers(path)


def test_duplicate_server_names(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(yaml.safe_dump({"servers": [{"name": "a", "host": "h", "logs": "/x"}] * 2}))
    with pytest.raises(ConfigError, match="server named twice: a"):
        load_servers(path)


@pytest.mark.parametrize("name,ok", [
    ("access", True), ("access.20261126-162009.gz", True), ("..", False), ("a/b", False),
    ("access..x", False), ("acc\x1bess", False), ("access\n", False), ("", False),
])
def test_remote_names_that_could_escape_stage_are_refused(name: str, ok: bool) -> None:
    assert collect_mod._safe_name(name) is ok


@pytest.mark.parametrize("verbose", [False, True])
def test_a_server_that_does_not_speak_ssh_is_one_line_and_a_traceback_only_with_v(
        tmp_path: Path, verbose: bool) -> None:
    """paramiko logged 30 lines of traceback for each such server (issue 35, part 1,
    item 4): an HTTP server on the port, a closed port, a name that does not resolve."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_like_http() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
    threading.Thread(target=answer_like_http, daemon=True).start()
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    config = tmp_path / "servers.yaml"
    config.write_text(yaml.safe_dump({"servers": [
        {"name": "web", "host": "127.0.0.1", "port": port, "user": "x", "logs": "/l"},
        {"name": "closed", "host": "127.0.0.1", "port": closed_port, "user": "x", "logs": "/l"},
        {"name": "nowhere", "host": "nosuchhost.invalid", "user": "x", "logs": "/l"}]}))
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", *(["-v"] if verbose else []),
                               "collect", "-c", str(config), "-s", str(tmp_path / "stage")],
                              capture_output=True, text=True, timeout=300)
    finally:
        listener.close()
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    assert ("Traceback (most recent call last):" in done.stderr) is verbose
    if not verbose:
        assert sorted(line.split()[0] for line in lines) == ["closed", "nowhere", "web"]
        assert all(line.split()[1] == "FAILED" for line in lines)
        assert "SSH failed" in next(line for line in lines if line.startswith("web"))
