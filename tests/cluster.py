"""Real Dask processes for tests: a `dask scheduler` and `dask worker`s on 127.0.0.1, each
stopped by its own process group; a worker may start in a private mount namespace, where a
tmpfs hides folders the client sees."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .sshd import free_port

BIN = Path(sys.executable).parent


def can_hide() -> bool:
    """Whether workers can start in their own mount namespace (root, util-linux)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@dataclass
class Cluster:
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> Cluster:
        self.procs.append(subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        return self

    def worker(self, hide: tuple[Path, ...] = (), nanny: bool = True,
               env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a worker (one thread); ``hide``: folders it sees as empty tmpfs."""
        command = [str(BIN / "dask"), "worker", self.address, "--nthreads", "1",
                   "--no-dashboard", "--host", "127.0.0.1"] + ([] if nanny else ["--no-nanny"])
        if hide:
            mounts = " && ".join(f"mount -t tmpfs tmpfs '{p}'" for p in hide)
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       f"{mounts} && exec \"$@\"", "sh", *command]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd="/",
                                env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client
        with Client(self.address, timeout="20s") as client:
            client.wait_for_workers(n, timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        self.procs.clear()


def output_tables(out: Path) -> dict[str, object]:
    """summary.json and every table of an output, operations in a fixed order: what two
    runs over the same logs must agree on."""
    got: dict[str, object] = {"summary": json.loads((out / "summary.json").read_text())}
    for path in sorted(out.glob("*.parquet")):
        got[path.stem] = pl.read_parquet(path)
    # its rows come bucket by bucket: in the order of the layout, which may differ
    got["connections"] = got["connections"].sort(got["connections"].columns, nulls_last=True)
    got["operations"] = sorted_operations(out)
    return got


def sorted_operations(out: Path) -> pl.DataFrame:
    """An output's operations dataset in a fixed order (by the lines they come from)."""
    return pl.read_parquet(out / "operations", hive_partitioning=True).sort(
        "server", "file", "line", "result_file", "result_line", nulls_last=True)


def assert_same_output(a: Path, b: Path) -> None:
    left, right = output_tables(a), output_tables(b)
    assert left.keys() == right.keys()
    for name in left:
        if isinstance(left[name], pl.DataFrame):
            assert left[name].equals(right[name]), name
        else:
            assert left[name] == right[name], name


def wait_until(check, timeout: float = 120, every: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError("timed out waiting")


def parse_tasks(fleet: Path, partition_mb: int) -> int:
    """How many parse tasks a run of a fleet folder plans at this --partition-mb."""
    from pipeline.sources.source import discover, plan_chunks
    files = [f for d in sorted(fleet.iterdir()) for f in discover(d.name, str(d))]
    return len(plan_chunks(files, chunk_bytes=partition_mb << 20))


@contextmanager
def counting_scratch() -> Iterator[list[int]]:
    """While in this block, a run in this process counts the files of its shuffle folder
    just before removing it (one number per run)."""
    from pipeline.outputs import files
    counted: list[int] = []
    discard = files.discard

    def count_then_discard(folder) -> None:  # type: ignore[no-untyped-def]
        if str(folder).endswith("_shuffle"):
            counted.append(sum(1 for p in Path(str(folder)).rglob("*") if p.is_file()))
        discard(folder)
    files.discard = count_then_discard
    try:
        yield counted
    finally:
        files.discard = discard
