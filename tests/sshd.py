"""Real OpenSSH servers on 127.0.0.1 for tests: one per simulated LDAP server.

Every key (host keys, the client key) is generated at test time in a temporary
folder. Each server is stopped by its own pid.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshServer:
    """One sshd serving SFTP on 127.0.0.1, with its own host key and log folder."""

    root: Path
    client_key: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def host_key(self) -> Path:
        return self.root / "host_ed25519"

    def start(self) -> SshServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        if not self.host_key.exists():
            keygen(self.host_key)
        (self.root / "authorized_keys").write_text(
            Path(str(self.client_key) + ".pub").read_text())
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "StrictModes no",
            "UsePAM no", "Subsystem sftp internal-sftp", "LogLevel ERROR", "MaxStartups 50",
        ]) + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the listener and its per-connection children (live sessions die too)."""
        if self.proc and self.proc.poll() is None:
            for pid in [*_descendants(self.proc.pid), self.proc.pid]:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        self.proc = None

    def known_hosts_line(self) -> str:
        key = Path(str(self.host_key) + ".pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n"

    def server_entry(self, name: str, known_hosts: Path) -> dict:
        return {"name": name, "host": "127.0.0.1", "port": self.port,
                "user": getpass.getuser(), "key_file": str(self.client_key),
                "known_hosts": str(known_hosts), "logs": f"{self.logs}/access*"}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
