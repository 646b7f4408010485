"""The README's sample output is the code's: run `make run`'s command, compare or write.

``python -m tests.readme_sample --write`` refreshes the block between the
``sample-output`` markers; ``tests/test_readme.py`` fails when it is stale.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
SAMPLE = ROOT / "tests" / "fixtures" / "real389"
BLOCK = re.compile(r"(<!-- sample-output:begin -->\n```\n)(.*?)(```\n<!-- sample-output:end -->)",
                   re.S)


def produced() -> str:
    """What `dsaccess run tests/fixtures/real389 -o out` prints on stdout (as `make run`)."""
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", str(SAMPLE), "-o", "out",
                               "--workers", "2"], cwd=cwd, capture_output=True, text=True,
                              check=True)
    return "".join(line.rstrip() + "\n" for line in done.stdout.splitlines())


def in_readme() -> str:
    found = BLOCK.search(README.read_text())
    if not found:
        raise SystemExit("README.md: no sample-output markers")
    return found.group(2)


def write() -> None:
    text = README.read_text()
    README.write_text(BLOCK.sub(lambda m: m.group(1) + produced() + m.group(3), text, count=1))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.exit(0 if produced() == in_readme() else 1)
