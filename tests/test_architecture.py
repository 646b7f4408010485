"""House rule 1: a pure core that imports no I/O, cluster or terminal library, and no shell
module; the shell around it. Every module of the package is one or the other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "pipeline"
CORE = {"errors", "schema", "logline", "jsonlog", "fingerprint", "partition",
        "enrich", "histogram", "aggregate", "workload", "dn", "names", "views", "render",
        "metrics", "textreport", "monitor", "sniff", "compare", "offsets", "_core"}
SHELL = {"__init__", "__main__", "config", "source", "collect", "shuffle", "stages", "run",
         "outputs", "report", "merge", "cli", "terminal", "exporter", "store", "trace",
         "compare_out", "webconfig", "saturation", "plan", "cluster", "finish"}
FORBIDDEN = ["fsspec", "paramiko", "dask", "distributed", "click", "rich"]
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_every_module_is_core_or_shell() -> None:
    assert set(MODULES) - CORE - SHELL == set(), "new module: add it to CORE or SHELL"
    assert CORE & SHELL == set()


def _imports(module: str) -> set[str]:
    """The package's modules this module imports, at the top or inside functions."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
            found.add((node.module or "").split(".")[1] if "." in (node.module or "") else "")
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("pipeline."))
    return found - {""}


@pytest.mark.parametrize("module", sorted(CORE - {"_core"}))
def test_core_imports_only_the_core(module: str) -> None:
    assert _imports(module) <= CORE, f"pipeline.{module} imports {_imports(module) - CORE}"


@pytest.mark.parametrize("module", sorted(CORE - {"_core"}))
def test_core_module_is_pure(module: str) -> None:
    code = (f"import sys, pipeline.{module}; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "", f"pipeline.{module} pulls in {done.stdout.strip()}"


@pytest.mark.parametrize("module", ["merge", "report", "outputs"])
def test_writers_load_no_cluster(module: str) -> None:
    code = f"import sys, pipeline.{module}; print('dask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_only_cluster_imports_dask() -> None:
    for module in MODULES:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.level == 0}
        assert not names & {"dask", "distributed"} or module == "cluster", module


def test_imports_form_no_cycle() -> None:
    """House rule 2: imports go one way (at the top or inside functions)."""
    graph = {m: _imports(m) - {"__init__"} for m in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path, module])
        if module in done:
            return
        for other in sorted(graph.get(module, set())):
            visit(other, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])
