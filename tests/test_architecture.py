"""House rule 1: the core imports no I/O or cluster libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ["errors", "schema", "logline", "jsonlog", "ldapfilter", "fingerprint", "partition",
        "enrich", "aggregate"]
FORBIDDEN = ["fsspec", "paramiko", "dask", "distributed", "click"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_is_pure(module: str) -> None:
    code = (f"import sys, pipeline.{module}; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "", f"pipeline.{module} pulls in {done.stdout.strip()}"
