"""The layers import only downwards: pure stages, a store contract, training on top of the store,
flows over everything. Read from the source with ``ast``, so a lazy import inside a function
counts as much as one at the top of a file.

    pipeline/      pure stages: no Prefect, no Zarr, no flows, no train
    store_schema/  the store contract: no pipeline, no flows, no train
    train/         reads the store through store_schema only: no pipeline, no flows, no zarr.core
    flows/         orchestration: may import all of the above, but no numpy and no Zarr (a
                   flow says which stage runs for what; the arrays stay below it)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "train", "store_schema", "flows")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "pipeline": ("prefect", "zarr", "flows", "train"),
    "train": ("pipeline", "flows", "zarr.core"),
    "store_schema": ("pipeline", "flows", "train"),
    "flows": ("numpy", "zarr"),
}


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, e.g. ``flows.cli``."""
    names: tuple[str, ...]
    """What it imports: ``zarr.core.sync`` for ``import zarr.core.sync``; ``zarr`` and
    ``zarr.core`` for ``from zarr import core`` (a from-import may name a submodule)."""
    path: Path
    line: int
    at_import_time: bool
    """Runs when the module is imported (not inside a function, not under ``TYPE_CHECKING``)."""


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, root: Path) -> list[Import]:
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, at_import_time: bool) -> None:
        if isinstance(node, ast.Import):
            found.append(Import(module, tuple(a.name for a in node.names), path, node.lineno,
                                at_import_time))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            found.append(Import(module, (source, *(f"{source}.{a.name}" for a in node.names)),
                                path, node.lineno, at_import_time))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_import_time)
            return
        inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time and not inside_function)

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return found


def project_files(root: Path, packages: tuple[str, ...]) -> list[Path]:
    return sorted(p for package in packages for p in (root / package).rglob("*.py"))


def forbidden_imports(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``pipeline/faces.py:12 imports zarr`` for every import of ``package`` that it may not make."""
    offences = []
    for path in project_files(root, (package,)):
        for imp in imports_of(path, root):
            hits = sorted({f for name in imp.names for f in forbidden
                           if name == f or name.startswith(f + ".")})
            offences += [f"{path.relative_to(root)}:{imp.line} imports {hit}" for hit in hits]
    return offences


def import_cycles(root: Path, packages: tuple[str, ...]) -> list[list[str]]:
    """Every cycle of import-time imports between project modules (one per strongly connected
    component of more than one module, or a module importing itself)."""
    files = project_files(root, packages)
    modules = {module_name(p, root) for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in files:
        for imp in imports_of(path, root):
            if imp.at_import_time:
                graph[imp.module] |= {n for n in imp.names if n in modules and n != imp.module}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_the_checks_read_every_project_file() -> None:
    files = project_files(REPO, PACKAGES)
    assert {p.relative_to(REPO).parts[0] for p in files} == set(PACKAGES)
    assert REPO / "flows" / "cli" / "__init__.py" in files and len(files) > 30


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    assert forbidden_imports(REPO, package, FORBIDDEN[package]) == []


def test_project_modules_import_each_other_without_a_cycle() -> None:
    assert import_cycles(REPO, PACKAGES) == []


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path: Path) -> None:
    (tmp_path / "low").mkdir()
    (tmp_path / "low" / "__init__.py").write_text("")
    (tmp_path / "low" / "a.py").write_text("from . import b\n")
    (tmp_path / "low" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import low.c\n"
        "def later():\n    from zarr import core\n    import low.a\n")
    (tmp_path / "low" / "c.py").write_text("from low.a import thing\n")
    assert forbidden_imports(tmp_path, "low", ("zarr.core",)) == ["low/b.py:5 imports zarr.core"]
    assert import_cycles(tmp_path, ("low",)) == []  # b's imports of a and c do not run at import
    (tmp_path / "low" / "b.py").write_text("import low.c\n")
    assert import_cycles(tmp_path, ("low",)) == [["low.a", "low.b", "low.c"]]


def test_naming_the_stages_does_not_import_mne() -> None:
    """The plan and an up-to-date `milmer preprocess` only compare fingerprints: importing the
    stage table must not pay for MNE (~0.35 s), which only the eeg stage's computation needs."""
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, pipeline.stage_table; print('mne' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"
