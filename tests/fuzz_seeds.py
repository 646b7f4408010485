"""Seed corpora for `make fuzz` from the fixtures: small windows of the real sample's
lines, every table case and awkward line of the parser tests, and the filters."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_fingerprint import FINGERPRINTS  # noqa: E402
from tests.test_jsonlog import EXAMPLES  # noqa: E402
from tests.test_logline import AWKWARD, CASES, T  # noqa: E402


def main(out: Path) -> None:
    tokenize, filters = out / "tokenize", out / "filter"
    tokenize.mkdir(parents=True, exist_ok=True)
    filters.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []
    for path in sorted((ROOT / "tests/fixtures/real389").glob("real389*/access*")):
        data = path.read_bytes()
        lines = (gzip.decompress(data) if path.suffix == ".gz" else data).split(b"\n")
        seeds += [b"\n".join(lines[i:i + 12]) + b"\n" for i in range(0, 3000, 150)]
    seeds += [(c[1] + "\n").encode() for c in CASES]
    seeds += [f"{T}conn=5 op=1 {body}\n".encode() for body in AWKWARD]
    for i, seed in enumerate(seeds):
        (tokenize / f"seed-{i:04d}").write_bytes(seed)
    for i, (_, text, _) in enumerate(FINGERPRINTS):
        (filters / f"seed-{i:04d}").write_text(text)
    json_seeds = out / "json"
    json_seeds.mkdir(parents=True, exist_ok=True)
    pretty = "\n".join(json.dumps(json.loads(e), indent=2) for e in EXAMPLES)
    for i, text in enumerate([*EXAMPLES, "\n".join(EXAMPLES), pretty]):
        (json_seeds / f"seed-{i:04d}").write_text(text + "\n")
    # the shuffle target damages files it encodes itself: it starts from no seeds
    (out / "shuffle").mkdir(parents=True, exist_ok=True)
    # the route target: the tokenizer's seeds as logs, each under every window (its first
    # byte: the window, the log's end final or not)
    route = out / "route"
    route.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds[::4]):
        for mode in (0, 1, 3, 8):
            (route / f"seed-{i:04d}-{mode}").write_bytes(bytes([mode]) + seed)
    print(f"{len(seeds)} tokenizer seeds, {len(EXAMPLES) + 2} JSON seeds, "
          f"{len(FINGERPRINTS)} filter seeds in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
