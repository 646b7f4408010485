"""House rule 1: a pure core that imports no I/O, cluster or terminal library, and no shell
module; the shell around it. Every module of the package is one or the other. House rule
2: imports go one way, between modules and between the package's folders."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "pipeline"
CORE = {"errors", "engine.schema", "engine.logline", "sources.jsonlog", "fingerprint",
        "engine.partition", "engine.enrich", "tables.histogram", "tables.aggregate", "workload",
        "tables.dn", "tables.frames", "names", "outputs.views", "outputs.render", "outputs.metrics",
        "outputs.textreport", "live.monitor", "sources.sniff", "forensic.compare",
        "tables.offsets", "_core"}
SHELL = {"__init__", "__main__", "config", "sources.source", "sources.collect",
         "engine.shuffle", "engine.stages", "engine.run", "engine.plan", "engine.cluster",
         "engine.finish", "engine.saturation", "outputs.files", "outputs.report",
         "outputs.merge", "outputs.terminal", "cli", "live.exporter", "live.webconfig",
         "sources.store", "forensic.trace", "forensic.compare_out"}
FORBIDDEN = ["fsspec", "paramiko", "dask", "distributed", "click", "rich"]
# the folders, in the order imports may point: each imports only from those before it
FOLDERS = ["tables", "sources", "outputs", "forensic", "engine", "live"]


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


MODULES = sorted({_name(p) for p in PACKAGE.rglob("*.py")} | {"_core"})
FOLDER_INITS = {m for m in MODULES if m in FOLDERS}


def _file(module: str) -> Path:  # (not of _core, which is compiled)
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(module: str) -> set[str]:
    """The package's modules this module imports, at the top or inside functions."""
    here = module.split(".")[:-1] if module not in FOLDER_INITS else module.split(".")
    found = set()
    for node in ast.walk(ast.parse(_file(module).read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
            elif (node.module or "").startswith("pipeline"):
                base = []
            else:
                continue
            target = [*base, *(node.module or "").split(".")]
            target = [p for p in target if p and p != "pipeline"]
            for alias in node.names:  # `from . import x`: x is a module or a name in one
                dotted = ".".join([*target, alias.name])
                found.add(dotted if dotted in MODULES else ".".join(target) or "__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("pipeline.") for a in node.names
                         if a.name.startswith("pipeline."))
    return found - {module}


def test_every_module_is_core_or_shell() -> None:
    modules = set(MODULES) - FOLDER_INITS
    assert modules - CORE - SHELL == set(), "new module: add it to CORE or SHELL"
    assert CORE & SHELL == set()
    assert (CORE | SHELL) - modules == set(), "a module of CORE or SHELL is gone"


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


@pytest.mark.parametrize("module", ["outputs.merge", "outputs.report", "outputs.files"])
def test_writers_load_no_cluster(module: str) -> None:
    code = f"import sys, pipeline.{module}; print('dask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_only_the_cluster_module_imports_dask() -> None:
    for module in set(MODULES) - {"_core"}:
        tree = ast.parse(_file(module).read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.level == 0}
        assert not names & {"dask", "distributed"} or module == "engine.cluster", module


def test_imports_form_no_cycle() -> None:
    graph = {m: _imports(m) - {"__init__"} for m in set(MODULES) - {"_core"}}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import cycle: " + " -> ".join([*path, module])
        if module in done:
            return
        for other in sorted(graph.get(module, set())):
            visit(other, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_folders_import_one_way() -> None:
    """A folder imports the top level's shared modules and the folders before it in
    FOLDERS, never one after it: the folders show the flow."""
    assert sorted(FOLDERS) == sorted(FOLDER_INITS)
    for module in set(MODULES) - {"_core"}:
        mine = module.split(".")[0]
        if mine not in FOLDERS:  # the top level: shared modules import no folder
            if module not in {"cli", "__main__"}:
                assert {o.split(".")[0] for o in _imports(module)} & set(FOLDERS) == set(), \
                    f"pipeline.{module} is shared: it imports no folder"
            continue
        for other in _imports(module):
            theirs = other.split(".")[0]
            if theirs in FOLDERS and theirs != mine:
                assert FOLDERS.index(theirs) < FOLDERS.index(mine), \
                    f"pipeline.{module} imports pipeline.{other}: against the flow {FOLDERS}"
