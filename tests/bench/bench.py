"""`make bench`: throughput, peak memory and scaling, each against baselines of the same run.

The machine is noisy, so every figure comes with a ratio to baselines measured in
the same invocation: a naive single-process, per-line Python parser that does the
same join and bind tracking with dicts, and Debian's ``logconv -V`` on the same
single-server log as a ``dsaccess run``. The compiled tokenizer and join are also
measured alone on one core, and in instructions per line (callgrind), which are
repeatable where seconds are not; so are the two shapes the shuffle can carry (raw
lines, or the tokenized columns of today), on every file of the fleet. ``dsaccess
trace`` is timed from the logs and from the full run's output, against that run. The
report ends with the targets (``targets``), each computed from the same run and marked
met or not.

    python tests/bench/bench.py [--gb 2] [--scale-gb 20] [--base-mb 128] [--single-mb 400]
                                [--data bench-data]

Data are generated once (tests/synth.py, four distinct servers, and one single
server of --single-mb) and then hard-linked under more server names until the input
reaches --gb. A second fleet of the same size has many identities (issue 32, item 9):
about 20,000 people bind, and application pools hold connections open for thousands of
operations, so the partial aggregates are large; its largest process is the memory
target. With --scale-gb (or BENCH_SCALE_GB), that fleet's servers get that much input
between them (each server's files hard-linked again under more rotation stamps), and the
run there is compared with the --gb run: peak memory of the client and of each worker,
throughput, and the number of scratch files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
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
    parser.add_argument("--scale-gb", type=float,
                        default=float(os.environ.get("BENCH_SCALE_GB", 0)),
                        help="also run on this much input over the same servers (0: not)")
    parser.add_argument("--base-mb", type=float, default=128, help="MB generated per server")
    parser.add_argument("--data", type=Path, default=ROOT / "bench-data")
    parser.add_argument("--single-mb", type=float, default=400,
                        help="size of the single-server log for the logconv comparison")
    args = parser.parse_args()

    fleet = prepare(args.data, args.gb, args.base_mb)
    many = prepare(args.data, args.gb, args.base_mb, **MANY_IDENTITIES)
    single = prepare_single(args.data, args.single_mb)
    one_server = sorted(fleet.iterdir())[0]
    sample_bytes = dir_bytes(one_server)
    results: dict[str, dict] = {}

    print(f"input: {human(dir_bytes(fleet))} in {len(list(fleet.iterdir()))} servers; "
          f"single-process figures on {one_server.name} ({human(sample_bytes)})")
    results["naive_python"] = timed_subprocess([PY, __file__, "--naive", str(one_server)])
    results["parse_1_thread"] = timed_subprocess(
        [PY, __file__, "--parse", str(one_server)], env={"POLARS_MAX_THREADS": "1"})
    results["parse_2_processes"] = parse_in_parallel(sorted(fleet.iterdir())[:2])
    results["tokenizer_1_core"] = timed_subprocess([PY, __file__, "--tokenize", str(one_server)])
    results["join_1_core"] = timed_subprocess([PY, __file__, "--join", str(one_server)])
    for name in ("tokenizer_1_core", "join_1_core"):
        results[name]["bytes"] = sample_bytes
    results.update(shuffle_shapes(fleet))
    results["logconv_single_server"] = timed_subprocess(
        ["logconv", "-V", *map(str, log_files(single / "ldap1"))], quiet=True)
    results["run_single_server_2_workers"] = timed_subprocess(
        [PY, __file__, "--run", str(single), str(args.data / "out-single"), "2",
         "parquet"])
    results["run_single_no_operations"] = timed_subprocess(
        [PY, __file__, "--run", str(single), str(args.data / "out-single-none"), "2", "none"])
    for name in ("logconv_single_server", "run_single_server_2_workers",
                 "run_single_no_operations"):
        results[name]["bytes"] = dir_bytes(single)
        results[name]["lines"] = sum(1 for f in log_files(single / "ldap1")
                                     for _ in f.open("rb"))
    half = make_half(fleet)
    for name, inputs, workers, operations in [("run_2_workers_full", fleet, 2, "parquet"),
                                              ("run_full_no_operations", fleet, 2, "none"),
                                              ("run_2_workers_half", half, 2, "parquet"),
                                              ("run_1_worker_half", half, 1, "parquet")]:
        out = args.data / f"out-{name}"
        results[name] = timed_subprocess(
            [PY, __file__, "--run", str(inputs), str(out), str(workers), operations])
        summary = json.loads((out / "summary.json").read_text())
        results[name]["bytes"] = dir_bytes(inputs)
        results[name]["lines"] = summary["lines"]["total"]
    # dsaccess trace: one user among 300 (selective), the service account that carries half
    # the load, from the logs, and the user from the full run's output
    for name, source, dn in (("trace_logs_one_user", fleet, TRACED_USER),
                             ("trace_logs_half_the_load", fleet, TRACED_SERVICE),
                             ("trace_out_one_user", args.data / "out-run_2_workers_full",
                              TRACED_USER)):
        results[name] = timed_subprocess(
            [PY, "-m", "pipeline", "trace", str(source), "--bind-dn", dn, "--format",
             "parquet", "-o", str(args.data / f"{name}.parquet"),
             *(["--workers", "2"] if source == fleet else [])])
        results[name]["bytes"] = dir_bytes(fleet)
        results[name]["lines"] = results["run_2_workers_full"]["lines"]
    out = args.data / "out-run_many_identities"
    results["run_many_identities"] = timed_subprocess(
        [PY, __file__, "--run", str(many), str(out), "2", "parquet"])
    results["run_many_identities"].update(
        bytes=dir_bytes(many), lines=json.loads((out / "summary.json").read_text())
        ["lines"]["total"], identities=identities(out))
    if args.scale_gb:
        big = prepare_deeper(many, args.scale_gb)
        out = args.data / "out-run_2_workers_scale"
        results["run_2_workers_scale"] = timed_subprocess(
            [PY, __file__, "--run", str(big), str(out), "2", "parquet"])
        summary = json.loads((out / "summary.json").read_text())
        results["run_2_workers_scale"]["bytes"] = dir_bytes(big)
        results["run_2_workers_scale"]["lines"] = summary["lines"]["total"]
        shutil.rmtree(out)  # its operations take gigabytes
    for name in ("naive_python", "parse_1_thread"):
        results[name]["bytes"] = sample_bytes
    report(results)
    (args.data / "results.json").write_text(json.dumps(results, indent=2))


TRACED_USER = "uid=user0042,ou=people,dc=example,dc=com"
TRACED_SERVICE = "uid=svc-sync,dc=example,dc=com"


# the many-identity fleet (issue 32, item 9): people who bind, and the share of
# connections that are pools
MANY_IDENTITIES = {"identities": 20_000, "pooled": 0.05}


def prepare(data: Path, gb: float, base_mb: float, **shape: float) -> Path:
    kind = "-ids" if shape else ""
    base = data / f"base{kind}-{base_mb:g}mb"
    if not (base / "done").exists():
        print(f"generating 4 servers x {base_mb:g} MB of synthetic logs into {base} ...")
        generate(base / "logs", servers=4, mb_per_server=base_mb, rotate_mb=64,
                 gzip_rotated=False, restarts=2, keep_requests=False, **shape)
        (base / "done").write_text("ok")
    fleet = data / f"fleet{kind}-{gb:g}gb"
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


def identities(out: Path) -> int:
    """The distinct identities that bound in a run's output (any server)."""
    import polars as pl
    binds = pl.read_parquet(out / "binds.parquet")
    return binds.filter(pl.col("err") == 0)["dn"].str.to_lowercase().n_unique()


def prepare_deeper(fleet: Path, gb: float) -> Path:
    """The fleet's servers with ``gb`` of input between them: each server's files again
    under later rotation stamps (the same servers, so the aggregates stay the same size
    and only the input grows)."""
    deep = fleet.parent / f"{fleet.name}-deep-{gb:g}gb"
    if not deep.exists():
        rounds = max(1, round(gb * 2**30 / dir_bytes(fleet)))
        for server in sorted(fleet.iterdir()):
            files = log_files(server)
            for k in range(rounds):
                for i, f in enumerate(files):
                    last = k == rounds - 1 and f.name == "access"
                    name = "access" if last else f"access.{20260101 + k:08d}-{i:06d}"
                    (deep / server.name).mkdir(parents=True, exist_ok=True)
                    os.link(f, deep / server.name / name)
    return deep


def prepare_single(data: Path, mb: float) -> Path:
    """One server of ``mb`` MB (for logconv, which reads one server's files)."""
    root = data / f"single-{mb:g}mb"
    if not (root / "done").exists():
        print(f"generating one server of {mb:g} MB into {root} ...")
        generate(root / "logs", servers=1, mb_per_server=mb, rotate_mb=64, gzip_rotated=False,
                 restarts=2, keep_requests=False)
        (root / "done").write_text("ok")
    return root / "logs"


def log_files(server: Path) -> list[Path]:
    """A server's files in rotation order, the live access last (as logconv wants them)."""
    return sorted(server.glob("access*"), key=lambda p: (p.name == "access", p.name))


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


def timed_subprocess(cmd: list[str], env: dict[str, str] | None = None,
                     quiet: bool = False) -> dict:
    """Wall time of a command and the peak RSS (VmHWM) of each process it starts."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
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
    out = out or ""
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
    base_rate = bytes_per_second(base)
    print()
    print(f"{'measure':28s} {'MB/s':>8s} {'lines/s':>12s} {'x naive':>8s} {'peak RSS':>10s} "
          f"{'worker RSS':>10s}")
    for name, r in results.items():
        seconds = r.get("inner_seconds", r["seconds"])
        rate = bytes_per_second(r)
        lines = r.get("lines", 0) / seconds
        print(f"{name:28s} {rate / 2**20:8.1f} {lines:12,.0f} {rate / base_rate:8.2f} "
              f"{human(r['peak_rss_main']):>10s} "
              f"{human(r['peak_rss_worker_max']) if r['peak_rss_worker_max'] else '-':>10s}")
    full, half = results["run_2_workers_full"], results["run_2_workers_half"]
    one = results["run_1_worker_half"]
    print()
    # the largest process: the client, or a worker process (none with the default threads)
    def largest(r: dict) -> int:
        return max(r["peak_rss_main"], r["peak_rss_worker_max"])
    print(f"input x{full['bytes'] / half['bytes']:.2f}: time "
          f"x{full['seconds'] / half['seconds']:.2f}, largest process "
          f"x{largest(full) / max(1, largest(half)):.2f} ({human(largest(half))} -> "
          f"{human(largest(full))})")
    print(f"2 workers vs 1 on the same input: speed-up x{one['seconds'] / half['seconds']:.2f}")
    logconv, ours = results["logconv_single_server"], results["run_single_server_2_workers"]
    print(f"dsaccess run vs logconv -V on the same {human(ours['bytes'])} single-server log: "
          f"x{logconv['seconds'] / ours['seconds']:.1f}")
    for name, what in (("tokenizer_1_core", "tokenizer"), ("join_1_core", "join")):
        if results[name].get("instructions_per_line"):
            print(f"{what}: {results[name]['instructions_per_line']:.0f} instructions per line "
                  f"(callgrind, {results[name]['callgrind_lines']:,} lines)")
    if results["join_1_core"].get("pairing_instructions_per_line"):
        print(f"of which pairing (sessions, request-RESULT pairs, identity): "
              f"{results['join_1_core']['pairing_instructions_per_line']:.0f}; the rest is the "
              "operations table's columns and the fingerprints")
    if results["join_1_core"].get("aggregate_instructions_per_line"):
        print(f"partial aggregates (after the join, same call): "
              f"{results['join_1_core']['aggregate_instructions_per_line']:.0f} instructions "
              "per line")
    if results["join_1_core"].get("shuffle_encode_instructions_per_line"):
        print(f"shuffle: {results['join_1_core']['shuffle_encode_instructions_per_line']:.0f} "
              f"instructions per line to encode (parse task), "
              f"{results['join_1_core']['shuffle_decode_instructions_per_line']:.0f} to decode "
              "(join task)")
    join = results["join_1_core"]
    if join.get("route_instructions_per_line"):
        today = (results["tokenizer_1_core"].get("instructions_per_line", 0)
                 + join["shuffle_encode_instructions_per_line"])
        size = join["route_sample_bytes"]
        print(f"stage A as raw lines routed by their frame (issue 32's other shape): "
              f"{join['route_instructions_per_line']:.0f} instructions per line to route "
              f"(frames, window, times judged, LZ4, the file), "
              f"{join['unroute_instructions_per_line']:.0f} to decompress and tokenize in "
              f"the join task, against tokenize + encode {today:.0f} and decode "
              f"{join['shuffle_decode_instructions_per_line']:.0f} today; scratch bytes per "
              f"log byte {join['routed_compressed'] / size:.2f} routed, "
              f"{join['columns_shuffle_bytes'] / size:.2f} as columns")
    for name, what, sides in (("shuffle_raw_lines_1_core", "raw lines",
                               ("route and compress", "decompress and tokenize")),
                              ("shuffle_columns_1_core", "tokenized columns",
                               ("tokenize and encode", "decode"))):
        if name in results:
            r = results[name]
            mb = r["bytes"] / 2**20
            print(f"the shuffle as {what}, on the whole fleet, one core: {mb / r['seconds']:.0f} "
                  f"MB/s; parse task ({sides[0]}) {mb / r['parse_side']:.0f} MB/s, join task "
                  f"({sides[1]}) {mb / r['join_side']:.0f} MB/s; "
                  f"{r['scratch_bytes'] / 2**20:,.0f} MB of scratch")
    stages = full.get("stages", {})
    if stages:
        workers = {k.removeprefix("worker_"): v for k, v in stages.items()
                   if k.startswith("worker_") and "peak_mb" not in k}
        peaks = {k.removeprefix("worker_peak_mb_"): v for k, v in stages.items()
                 if k.startswith("worker_peak_mb_")}
        print("worker seconds by step, full run: " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(workers.items(), key=lambda kv: -kv[1])))
        print("worker peak memory as each task type raised it (MB): " + ", ".join(
            f"{k} {v:.0f}" for k, v in peaks.items()))
        print("wall seconds, full run: " + ", ".join(
            f"{k} {v:.1f}" for k, v in stages.items() if not k.startswith("worker_")))
    many = results["run_many_identities"]
    print(f"many identities ({many['identities']:,} bound, pooled connections), "
          f"{human(many['bytes'])}: {bytes_per_second(many) / 2**20:.1f} MB/s, largest "
          f"process {human(largest(many))}")
    scale = results.get("run_2_workers_scale")
    if scale:
        rate = (scale["bytes"] / scale["seconds"]) / (many["bytes"] / many["seconds"])
        print(f"input x{scale['bytes'] / many['bytes']:.1f} ({human(scale['bytes'])} vs "
              f"{human(many['bytes'])}, the same many-identity servers): throughput "
              f"x{rate:.2f}, largest process x{largest(scale) / max(1, largest(many)):.2f} "
              f"({human(largest(scale))})")
    for name in ("run_2_workers_half", "run_2_workers_full", "run_2_workers_scale"):
        if name in results and results[name].get("scratch_files"):
            r = results[name]
            print(f"scratch files, {name}: {r['scratch_files']:,} for {r['parse_tasks']:,} "
                  f"parse tasks ({r['scratch_files'] / r['parse_tasks']:.1f} per task)")
    print()
    print(f"{'target':44s} {'measured':>14s} {'needs':>12s}  met")
    for what, measured, target, unit, met in targets(results):
        print(f"{what:44s} {f'{measured:,.2f} {unit}':>14s} {target:>12s}  "
              f"{'yes' if met else 'no'}")


def bytes_per_second(r: dict) -> float:
    """A measure's throughput: over its own timing where it has one, else its wall time."""
    return r["bytes"] / r.get("inner_seconds", r["seconds"])


def targets(results: dict[str, dict]) -> list[tuple[str, float, str, str, bool]]:
    """The compiled core's performance targets on the 2-core reference machine, each from
    this run: (what, measured, the target as printed, the measure's unit, met)."""
    def mb_s(name: str) -> float:
        return bytes_per_second(results[name]) / 2**20

    full, half = results["run_2_workers_full"], results["run_2_workers_half"]
    one, single = results["run_1_worker_half"], results["run_single_server_2_workers"]
    gb = 2**30

    def peak(r: dict) -> float:  # the largest process of the run, client or worker
        return max(r["peak_rss_main"], r["peak_rss_worker_max"]) / gb

    rows = [
        (f"dsaccess run, 2 workers, {human(full['bytes'])} fleet", mb_s("run_2_workers_full"),
         150, "MB/s"),
        ("the same, --operations none", mb_s("run_full_no_operations"), 250, "MB/s"),
        ("dsaccess run / logconv -V, one server",
         results["logconv_single_server"]["seconds"] / single["seconds"], 30, "x"),
        ("the same, --operations none", results["logconv_single_server"]["seconds"]
         / results["run_single_no_operations"]["seconds"], 50, "x"),
        ("tokenizer alone, one core", mb_s("tokenizer_1_core"), 800, "MB/s"),
        ("stage B alone (a join task, no writing), one core", mb_s("join_1_core"), 250,
         "MB/s"),
        ("2 workers / 1 worker, same input", one["seconds"] / half["seconds"], 1.8, "x"),
    ]
    run_seconds = full["seconds"]
    rows += [("dsaccess trace from logs / run, one user", run_seconds
              / results["trace_logs_one_user"]["seconds"], 2, "x"),
             ("the same, the identity of half the load", run_seconds
              / results["trace_logs_half_the_load"]["seconds"], 2, "x")]
    out = [(what, value, f">= {target:g} {unit}", unit, value >= target)
           for what, value, target, unit in rows]
    seconds = results["trace_out_one_user"]["seconds"]
    out.append(("dsaccess trace from the run's OUT, one user", seconds, "< 3 s", "s",
                seconds < 3))
    many = results["run_many_identities"]
    for what, r in ((f"largest process, {human(half['bytes'])}", half),
                    (f"largest process, {human(full['bytes'])}", full),
                    (f"the same, {many['identities']:,} identities", many)):
        out.append((what, peak(r), "<= 1 GB", "GB", peak(r) <= 1))
    scale = results.get("run_2_workers_scale")
    if scale:
        grown = peak(scale) / peak(many)
        out.append((f"largest process at x{scale['bytes'] / many['bytes']:.0f} the input",
                    grown, "<= 1.2 x", "x", grown <= 1.2))
    return out


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
    """The tokenizer into polars tables of events (the tests' view, ``tests.events``), one
    thread: what a Python program reading the logs with the core would pay."""
    from tests.events import parse_lines
    began = time.perf_counter()  # after the imports: interpreter and polars start-up is not parsing
    lines = 0
    for path in sorted(Path(folder).iterdir()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        carry = b""
        for start in range(0, len(data), 64 << 20):  # the run's chunk size
            chunk = carry + data[start:start + (64 << 20)]
            final = start + (64 << 20) >= len(data)
            result = parse_lines(chunk, server="s", file=path.name, final=final)
            lines += result.counts["total"]
            carry = result.carry  # the line cut at the block's end starts the next block
    print(json.dumps({"lines": lines, "inner_seconds": time.perf_counter() - began}))


def tokenize_alone(folder: str) -> None:
    """The compiled tokenizer alone, one core: 64 MB blocks, as the run's chunks."""
    from pipeline import _core
    blocks = []
    for path in log_files(Path(folder)):
        data = path.read_bytes()
        blocks += [data[i:i + (64 << 20)] for i in range(0, len(data), 64 << 20)]
    _core.tokenize_text(blocks[0][:1 << 20])  # compile the patterns once, outside the timing
    best = float("inf")
    for _ in range(3):  # best of three: the machine is noisy
        began = time.perf_counter()
        lines = sum(_core.tokenize_text(b, final_block=False)[2]["total"] for b in blocks)
        best = min(best, time.perf_counter() - began)
    print(json.dumps({"lines": lines, "inner_seconds": best, **callgrind(folder)}))


def callgrind(folder: str, example: str = "tokenize_file", only: str = "") -> dict:
    """Instructions per line of an example program on 8 MB of the folder (repeatable): the
    tokenizer's run on the sample less its run on nothing (start-up, compiling the
    patterns); with ``only``, the instructions inside that function alone."""
    binary = ROOT / f"rust/target/release/examples/{example}"
    if not binary.exists() or not shutil.which("valgrind"):
        return {}
    sample = Path(folder).parent.parent / "callgrind-sample.log"
    if not sample.exists():
        sample.write_bytes(log_files(Path(folder))[0].read_bytes()[: 8 << 20])
    def grind(*args: str) -> tuple[int, str]:
        """The instructions callgrind counted, and the program's stdout."""
        done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                               *([f"--toggle-collect={only}"] if only else []), str(binary),
                               *args], capture_output=True, text=True)
        return int(re.findall(r"refs:\s+([\d,]+)", done.stderr)[0].replace(",", "")), done.stdout

    refs, out = grind(str(sample))
    if not only:
        refs -= grind()[0]
    lines = json.loads(out)["lines"]
    return {"instructions_per_line": refs / lines, "callgrind_lines": lines}


def join_alone(folder: str) -> None:
    """Stage B alone, one core, on every event of one server as one bucket: the bucket's
    task as a run calls it (decoding the shuffle files, the join, the operations table
    with its fingerprints, the built-in workload classes, the partial aggregates; no
    operations written)."""
    import tempfile

    from pipeline.config import load_workloads
    from pipeline.engine import shuffle
    from pipeline.engine.enrich import join_pieces
    from pipeline.engine.logline import tokenize
    from pipeline.engine.partition import SUBS
    from pipeline.engine.schema import EVENT_CLASSES
    files = log_files(Path(folder))
    rules = load_workloads(None)
    with tempfile.TemporaryDirectory() as scratch:
        for seq, path in enumerate(files):
            shuffle.write_buckets(scratch, seq, tokenize(path.read_bytes()).classes, server="s",
                                  file=path.name, file_seq=seq, buckets=1)
        sources = ((0, len(files), 0),)
        pieces = {cls: shuffle.read_pieces(shuffle.pieces(scratch, cls, sources), range(SUBS),
                                           dict.fromkeys(range(len(files)), 0))
                  for cls in EVENT_CLASSES}
    best, events = float("inf"), 0
    for _ in range(3):  # best of three: the machine is noisy
        began = time.perf_counter()
        events = join_pieces(pieces, workloads=rules).events
        best = min(best, time.perf_counter() - began)
    pairing = callgrind(folder, "join_file", "dsaccess_core::join::join")
    # the shuffle's two halves around the join: a parse task's encoding, a join task's
    # decoding (of every batch of the sample, as one bucket)
    encode, decode = (callgrind(folder, "shuffle_file", f"shuffle_file::{step}_step")
                      for step in ("encode", "decode"))
    # the other shape of stage A (issue 32): raw lines routed by their frame, tokenized
    # once in the join task; and the bytes each shape sends through the scratch
    route, unroute = (callgrind(folder, "route_file", f"route_file::{step}_step")
                      for step in ("route", "unroute"))
    sizes = route_sizes(folder)
    print(json.dumps({"lines": events, "inner_seconds": best,
                      **callgrind(folder, "join_file", "join_file::join_stage"),
                      "pairing_instructions_per_line": pairing.get("instructions_per_line"),
                      "aggregate_instructions_per_line": callgrind(
                          folder, "join_file", "join_file::aggregate_stage").get(
                          "instructions_per_line"),
                      "shuffle_encode_instructions_per_line": encode.get("instructions_per_line"),
                      "shuffle_decode_instructions_per_line": decode.get("instructions_per_line"),
                      "route_instructions_per_line": route.get("instructions_per_line"),
                      "unroute_instructions_per_line": unroute.get("instructions_per_line"),
                      **sizes}))


def shuffle_shapes(fleet: Path) -> dict[str, dict]:
    """Issue 32's choice of what the shuffle carries, timed on every file of the fleet on
    one core (``route_file``, each shape's best of two runs a file): raw lines (routed in
    the parse task, ``route::route``; decompressed and tokenized in the join task) against the
    tokenized columns (tokenize and encode, then decode). Both end with the join task's
    events tokenized (the join itself is the same): a row of the table each, with the
    seconds of each side and the scratch bytes."""
    binary = ROOT / "rust/target/release/examples/route_file"
    if not binary.exists():
        return {}
    keys = ("bytes", "lines", "route", "unroute", "columns", "decode", "routed_compressed",
            "columns_shuffle_bytes")
    total = dict.fromkeys(keys, 0)
    for server in sorted(fleet.iterdir()):
        for path in log_files(server):
            done = json.loads(subprocess.run([str(binary), str(path), "2"],
                                             capture_output=True, text=True,
                                             check=True).stdout)
            for key in keys:
                total[key] += done[key]
    common = {"bytes": total["bytes"], "lines": total["lines"], "peak_rss_main": 0,
              "peak_rss_worker_max": 0, "workers": 0}
    return {
        "shuffle_raw_lines_1_core": {**common, "seconds": total["route"] + total["unroute"],
                                     "parse_side": total["route"],
                                     "join_side": total["unroute"],
                                     "scratch_bytes": total["routed_compressed"]},
        "shuffle_columns_1_core": {**common, "seconds": total["columns"] + total["decode"],
                                   "parse_side": total["columns"],
                                   "join_side": total["decode"],
                                   "scratch_bytes": total["columns_shuffle_bytes"]},
    }


def route_sizes(folder: str) -> dict:
    """The scratch bytes of each shape of stage A on the callgrind sample (``route_file``):
    the lines routed raw (LZ4), and the tokenized columns (the shuffle's files)."""
    binary = ROOT / "rust/target/release/examples/route_file"
    sample = Path(folder).parent.parent / "callgrind-sample.log"
    if not binary.exists() or not sample.exists():
        return {}
    done = json.loads(subprocess.run([str(binary), str(sample)], capture_output=True,
                                     text=True, check=True).stdout)
    return {"route_sample_bytes": done["bytes"], "routed_compressed": done["routed_compressed"],
            "columns_shuffle_bytes": done["columns_shuffle_bytes"]}


def run_job(inputs: str, out: str, workers: int, operations: str) -> None:
    """`dsaccess run` in this process (``operations``: as --operations), printing the stage
    timings, the parse tasks and the scratch files (counted before the run removes them)
    as JSON."""
    from pipeline.engine.plan import DEFAULT_PARTITION_MB, RunOptions
    from pipeline.engine.run import run
    from tests.cluster import counting_scratch, parse_tasks
    formats = () if operations == "none" else (operations,)
    with counting_scratch() as counted:
        result = run(RunOptions(inputs=(inputs,), out=Path(out), workers=workers,
                                operations=formats))
    tasks = parse_tasks(Path(inputs), DEFAULT_PARTITION_MB)
    print(json.dumps({"stages": result.stage_seconds, "parse_tasks": tasks,
                      "scratch_files": counted[0] if counted else 0}))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--run":
        run_job(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) == 3 and sys.argv[1] == "--naive":
        naive(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--parse":
        parse_only(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--tokenize":
        tokenize_alone(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--join":
        join_alone(sys.argv[2])
    else:
        main()
