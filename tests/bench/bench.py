"""`make bench`: throughput, peak memory and scaling, each against a baseline of the same run.

The machine is noisy, so every figure comes with a ratio to a baseline measured
in the same invocation: a naive single-process, per-line Python parser that
does the same join and bind tracking with dicts.

    python tests/bench/bench.py [--gb 2] [--base-mb 128] [--data bench-data]

Data are generated once (tests/synth.py, four distinct servers) and then
hard-linked under more server names until the input reaches --gb.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.synth import generate  # noqa: E402

PY = sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=float(os.environ.get("BENCH_GB", 2)))
    parser.add_argument("--base-mb", type=float, default=128, help="MB generated per server")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()

    fleet = prepare(args.data, args.gb, args.base_mb)
    one_server = sorted(fleet.iterdir())[0]
    sample_bytes = dir_bytes(one_server)
    results: dict[str, dict] = {}

    print(f"input: {human(dir_bytes(fleet))} in {len(list(fleet.iterdir()))} servers; "
          f"single-process figures on {one_server.name} ({human(sample_bytes)})")
    results["naive_python"] = timed_subprocess([PY, __file__, "--naive", str(one_server)])
    results["parse_1_thread"] = timed_subprocess(
        [PY, __file__, "--parse", str(one_server)], env={"POLARS_MAX_THREADS": "1"})
    results["parse_2_processes"] = parse_in_parallel(sorted(fleet.iterdir())[:2])
    half = make_half(fleet)
    for name, inputs, workers in [("run_2_workers_full", fleet, 2),
                                  ("run_2_workers_half", half, 2),
                                  ("run_1_worker_half", half, 1)]:
        out = args.data / f"out-{name}"
        results[name] = timed_subprocess(
            [PY, __file__, "--run", str(inputs), str(out), str(workers)])
        summary = json.loads((out / "summary.json").read_text())
        results[name]["bytes"] = dir_bytes(inputs)
        results[name]["lines"] = summary["lines"]["total"]
    for name in ("naive_python", "parse_1_thread"):
        results[name]["bytes"] = sample_bytes
    report(results)
    (args.data / "results.json").write_text(json.dumps(results, indent=2))


def prepare(data: Path, gb: float, base_mb: float) -> Path:
    base = data / f"base-{base_mb:g}mb"
    if not (base / "done").exists():
        print(f"generating 4 servers x {base_mb:g} MB of synthetic logs into {base} ...")
        generate(base / "logs", servers=4, mb_per_server=base_mb, rotate_mb=64,
                 gzip_rotated=False, restarts=2, keep_requests=False)
        (base / "done").write_text("ok")
    fleet = data / f"fleet-{gb:g}gb"
    if not fleet.exists():
        servers = sorted((base / "logs").iterdir())
        per = sum(dir_bytes(s) for s in servers) / len(servers)
        copies = max(1, round(gb * 2**30 / per))
        for i in range(copies):
            src = servers[i % len(servers)]
            dst = fleet / f"ldap{i + 1:03d}"
            dst.mkdir(parents=True)
            for f in src.iterdir():
                os.link(f, dst / f.name)  # same bytes under another server name
    return fleet


def parse_in_parallel(servers: list[Path]) -> dict:
    """The parse stage on every core: one process per server, started together."""
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    procs = [subprocess.Popen([PY, __file__, "--parse", str(s)], env=env, text=True,
                              stdout=subprocess.PIPE) for s in servers]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"seconds": max(o["inner_seconds"] for o in outs), "peak_rss_main": 0,
            "peak_rss_worker_max": 0, "workers": len(procs),
            "lines": sum(o["lines"] for o in outs), "bytes": sum(dir_bytes(s) for s in servers)}


def make_half(fleet: Path) -> Path:
    half = fleet.parent / (fleet.name + "-half")
    if not half.exists():
        for d in sorted(fleet.iterdir())[: max(1, len(list(fleet.iterdir())) // 2)]:
            (half / d.name).mkdir(parents=True)
            for f in d.iterdir():
                os.link(f, half / d.name / f.name)
    return half


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).resolve().rglob("access*") if f.is_file())


def timed_subprocess(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Wall time of a command and the peak RSS (VmHWM) of each process it starts."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peaks: dict[int, tuple[str, int]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in tree(proc.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                m = re.search(r"VmHWM:\s+(\d+) kB", status)
                if m:
                    role = "worker" if b"spawn_main" in cmdline or b"multiprocessing" in \
                        cmdline else "main"
                    peaks[pid] = (role, max(peaks.get(pid, ("", 0))[1], int(m.group(1)) * 1024))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    seconds = time.perf_counter() - start
    workers = [p for role, p in peaks.values() if role == "worker"]
    main_ = [p for role, p in peaks.values() if role == "main"]
    extra = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else {}
    return {"seconds": seconds, "peak_rss_main": max(main_, default=0),
            "peak_rss_worker_max": max(workers, default=0), "workers": len(workers), **extra}


def tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def report(results: dict[str, dict]) -> None:
    # the single-process measures time their own work (no interpreter start-up);
    # the runs are timed from outside, start-up and all
    base = results["naive_python"]
    base_rate = base["bytes"] / base.get("inner_seconds", base["seconds"])
    print()
    print(f"{'measure':24s} {'MB/s':>8s} {'lines/s':>12s} {'x naive':>8s} {'peak RSS':>10s} "
          f"{'worker RSS':>10s}")
    for name, r in results.items():
        seconds = r.get("inner_seconds", r["seconds"])
        rate = r["bytes"] / seconds
        lines = r.get("lines", 0) / seconds
        print(f"{name:24s} {rate / 2**20:8.1f} {lines:12,.0f} {rate / base_rate:8.2f} "
              f"{human(r['peak_rss_main']):>10s} {human(r['peak_rss_worker_max']):>10s}")
    full, half = results["run_2_workers_full"], results["run_2_workers_half"]
    one = results["run_1_worker_half"]
    print()
    rss_ratio = full["peak_rss_worker_max"] / max(1, half["peak_rss_worker_max"])
    print(f"input x{full['bytes'] / half['bytes']:.2f}: time "
          f"x{full['seconds'] / half['seconds']:.2f}, peak worker RSS x{rss_ratio:.2f}")
    print(f"2 workers vs 1 on the same input: speed-up x{one['seconds'] / half['seconds']:.2f}")
    stages = full.get("stages", {})
    if stages:
        print("stages of the full run (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.1f}TB"


# ---- the measured programs (run as subprocesses so their memory is their own) ----

NAIVE = re.compile(r"^\[([^\]]+)\] conn=(\d+|Internal\(\d+\))(?: \(Internal\))? "
                   r"(?:op=(-?\d+)\S* )?(\S+)(.*)$")


def naive(folder: str) -> None:
    """What a careful script does: one regex per line, dicts for the join and bind DN."""
    start = time.perf_counter()
    lines = 0
    pending: dict[tuple[str, str], tuple[str, str]] = {}
    identity: dict[str, str] = {}
    verbs: dict[str, int] = {}
    joined = 0
    for path in sorted(Path(folder).iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                lines += 1
                m = NAIVE.match(line)
                if not m:
                    continue
                _, conn, op, verb, rest = m.groups()
                if verb == "RESULT":
                    req = pending.pop((conn, op), None)
                    if req:
                        joined += 1
                        if req[0] == "BIND":
                            identity[conn] = req[1] if " err=0 " in rest else ""
                elif verb in ("BIND", "SRCH", "MOD", "ADD", "DEL", "MODRDN", "CMP", "EXT"):
                    verbs[verb] = verbs.get(verb, 0) + 1
                    dn = rest.split('dn="', 1)[1].split('"', 1)[0] if 'dn="' in rest else ""
                    pending[(conn, op)] = (verb, dn)
                    _ = identity.get(conn, "")
    print(json.dumps({"lines": lines, "joined": joined,
                      "inner_seconds": time.perf_counter() - start}))


def parse_only(folder: str) -> None:
    from pipeline.logline import parse_lines
    began = time.perf_counter()  # after the imports: interpreter and polars start-up is not parsing
    lines = 0
    for path in sorted(Path(folder).iterdir()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for start in range(0, len(data), 64 << 20):  # the run's chunk size
            chunk = data[start:start + (64 << 20)]
            lines += parse_lines(chunk, server="s", file=path.name, final=False).counts["total"]
    print(json.dumps({"lines": lines, "inner_seconds": time.perf_counter() - began}))


def run_job(inputs: str, out: str, workers: int) -> None:
    """`dsaccess run` in this process, printing the stage timings as JSON."""
    from pipeline.run import RunOptions, run
    result = run(RunOptions(inputs=(inputs,), out=Path(out), workers=workers))
    print(json.dumps({"stages": result.stage_seconds}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        run_job(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--naive":
        naive(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--parse":
        parse_only(sys.argv[2])
    else:
        main()
