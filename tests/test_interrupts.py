"""Ctrl-C, SIGTERM and SIGKILL in the middle of a run on a real local Dask cluster: no
staging folder stays behind (the next run removes a killed run's), OUT keeps its previous
output, and the terminal gets one line."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.outputs import files

from . import cluster
from .synth import generate
from .test_safety import tree_digest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fleet")
    generate(root, servers=2, mb_per_server=25.0, seed=3)
    return root


def _start(fleet: Path, out: Path, *more: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(fleet), "-o",
                             str(out), "--workers", "2", "--partition-mb", "4", *more],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own group, as a terminal's job
                            preexec_fn=_default_ctrl_c)


def _default_ctrl_c() -> None:
    """A terminal's job answers Ctrl-C even when these tests run as a background job,
    which starts with it ignored (and a child keeps an ignored signal)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _scratch(out: Path, scratch: Path | None) -> str:
    """Where a run's shuffle files appear: in its staging folder, or under --scratch (the
    files a parse task wrote: the run makes their folders before the cluster starts)."""
    if scratch is None:
        return str(out.parent / f".{out.name}.tmp-*" / "_shuffle" / "*" / "c*.arrow")
    return str(scratch / ".dsaccess-scratch-*" / "*" / "c*.arrow")


def _wait_for_work(out: Path, scratch: Path | None = None) -> None:
    for _ in range(600):
        if glob.glob(_scratch(out, scratch)):
            time.sleep(1.0)
            return
        time.sleep(0.05)
    raise AssertionError("the run never started working")


@pytest.fixture()
def previous(fleet: Path, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", str(fleet), "-o",
                           str(out), "--workers", "2", "--quiet"], capture_output=True)
    assert done.returncode == 0, done.stderr
    return out, tree_digest(out)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
@pytest.mark.parametrize("where", ["staging", "--scratch"])
@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_an_interrupted_run_leaves_nothing_and_says_one_line(fleet: Path, previous, how: str,
                                                              where: str, workers: str) -> None:
    out, before = previous
    scratch = out.parent / "scratch" if where == "--scratch" else None
    proc = _start(fleet, out, *(["--scratch", str(scratch)] if scratch else []),
                  *(["--worker-processes"] if workers == "processes" else []))
    _wait_for_work(out, scratch)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole group
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if how == "ctrl-c" else 143)
    assert err.strip().splitlines() == [
        "dsaccess: interrupted" if how == "ctrl-c" else "dsaccess: terminated"]
    # no staging folder left, nor a scratch folder
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"] + (["scratch"] if scratch
                                                                       else [])
    assert scratch is None or list(scratch.iterdir()) == []
    assert tree_digest(out) == before


@pytest.mark.parametrize("workers", ["threads", "processes"])
@pytest.mark.parametrize("when", ["loading the libraries", "starting the cluster"])
def test_a_ctrl_c_at_start_up_ends_the_run_and_replaces_nothing(fleet: Path, previous,
                                                                 when: str, workers: str
                                                                 ) -> None:
    # a Ctrl-C while the cluster starts (its worker processes appear) is held back until
    # it is up, not dropped, and no worker prints a traceback; before it, while polars
    # and Dask load, it is not a traceback either
    out, before = previous
    proc = _start(fleet, out, *(["--worker-processes"] if workers == "processes" else []))
    if when == "loading the libraries":
        time.sleep(0.2)
    else:
        cluster.wait_until(lambda: glob.glob(str(out.parent / ".out.tmp-*")), every=0.01)
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))  # the cluster's come next
        cluster.wait_until(lambda: _starting(proc.pid, workers, threads), every=0.005)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err.strip().splitlines()) == (130, ["dsaccess: interrupted"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    assert tree_digest(out) == before


def _starting(pid: int, workers: str, threads: int) -> bool:
    """The local cluster is starting: a worker process exists, or (threads) the run
    has more threads than it had before the cluster."""
    if workers == "processes":
        return any(b"spawn_main" in _cmdline(p) for p in _children(pid))
    return len(os.listdir(f"/proc/{pid}/task")) > threads


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(fleet: Path, previous
                                                                 ) -> None:
    out, before = previous
    scratch = out.parent / "scratch"
    proc = _start(fleet, out, "--scratch", str(scratch))
    _wait_for_work(out, scratch)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    left = [p for p in out.parent.iterdir() if p.name.startswith(".out.tmp-")]
    assert left and tree_digest(out) == before  # killed: its folders stay, OUT too
    assert len(list(scratch.iterdir())) == 1
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", str(fleet), "-o",
                           str(out), "--workers", "2", "--quiet", "--scratch", str(scratch)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "scratch"]
    assert list(scratch.iterdir()) == []
    assert done.stderr.count("left by a run that was killed") == 2  # staging and scratch


def test_a_run_killed_while_swapping_gets_its_previous_output_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = tmp_path / ".out.old-0123456789ab"  # the swap's first rename happened, then kill
    old.mkdir()
    (old / "run.json").write_text('{"format": "dsaccess-output/1"}')
    dead = subprocess.Popen(["true"])
    dead.wait()
    (old / files.OWNER).write_text(f"{os.uname().nodename} {dead.pid}\n")
    files.remove_stale(out)
    assert (out / "run.json").exists() and not old.exists()
    assert not (out / files.OWNER).exists()
    # a live owner's folders are left alone
    busy = tmp_path / ".out.tmp-0123456789ab"
    busy.mkdir()
    (busy / files.OWNER).write_text(f"{os.uname().nodename} {os.getpid()}\n")
    assert files.remove_stale(out) == [] and busy.exists()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout.split()
    return [int(p) for p in out] + [g for p in out for g in _children(int(p))]


def _summary(out: Path) -> dict:
    import json
    return json.loads((out / "summary.json").read_text())


def test_a_worker_killed_mid_run_changes_nothing(fleet: Path, previous) -> None:
    out, _ = previous
    clean = _summary(out)
    proc = _start(fleet, out, "--worker-processes")  # (threads, the default, have none)
    _wait_for_work(out)
    workers = [p for p in _children(proc.pid)
               if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert workers
    os.kill(workers[0], signal.SIGKILL)  # the nanny starts another; its tasks run again
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _summary(out) == clean


def test_no_worker_left_fails_clearly_and_keeps_the_output(fleet: Path, previous) -> None:
    out, before = previous
    dask = cluster.Cluster().start()
    try:
        worker = dask.worker()
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(fleet), "-o",
                                 str(out), "--scheduler", dask.address,
                                 "--worker-timeout", "3", "--partition-mb", "4", "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_work(out)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its nanny: none is left
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert err.strip().splitlines() == [err.strip().splitlines()[-1]]
        assert "no Dask worker for 3 s (--worker-timeout)" in err
        assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
        assert tree_digest(out) == before
    finally:
        dask.stop()


def test_a_dask_worker_killed_a_third_in_and_replaced_changes_nothing(fleet: Path,
                                                                       tmp_path: Path) -> None:
    # real `dask scheduler` and `dask worker` processes (no nanny: nothing restarts the
    # killed one); a replacement joins, the lost tasks run again, and every table and
    # summary.json equal a clean run's
    dask = cluster.Cluster().start()
    try:
        workers = [dask.worker(nanny=False) for _ in range(2)]
        dask.wait_for_workers(2)
        args = [sys.executable, "-m", "pipeline", "run", str(fleet), "--scheduler",
                dask.address, "--partition-mb", "2", "--quiet"]
        clean = tmp_path / "clean"
        done = subprocess.run([*args, "-o", str(clean)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        out = tmp_path / "out"
        proc = subprocess.Popen([*args, "-o", str(out)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        tasks = cluster.parse_tasks(fleet, 2)
        written = str(tmp_path / ".out.tmp-*" / "_shuffle" / "request" / "c*.arrow")
        cluster.wait_until(lambda: len(glob.glob(written)) >= tasks // 3)
        assert proc.poll() is None and len(glob.glob(written)) < tasks  # mid-run
        os.killpg(workers[0].pid, signal.SIGKILL)
        dask.worker(nanny=False)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        cluster.assert_same_output(out, clean)
    finally:
        dask.stop()
