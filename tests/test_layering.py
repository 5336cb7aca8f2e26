"""The layers import only downwards: pure stages, a store contract, training on top of the store,
flows over everything. Read from the source with ``ast``, so a lazy import inside a function
counts as much as one at the top of a file.

    pipeline/      pure stages: no Prefect, no Zarr, no flows, no train
    store_schema/  the store contract: no pipeline, no flows, no train
    train/         reads the store through store_schema only: no pipeline, no flows, no zarr.core
    flows/         orchestration: may import all of the above, but no numpy and no Zarr (a
                   flow says which stage runs for what; the arrays stay below it)

The seams are checked too: no import cycle even through imports inside functions, no ``_private``
name imported from another module, no module over 600 lines, no ``kind ==`` branching in
``train/models`` (a model is one file and a registry maps kind to class), and a README that
guides: at most 400 lines, every relative link in it and in ``docs/`` resolving.
"""

from __future__ import annotations

import ast
import re
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
    type_checking: bool = False
    """Under ``if TYPE_CHECKING:``: read by type checkers only, never run."""
    aliases: tuple[str, ...] = ()
    """The names as written: ``_MONTAGE`` for ``from pipeline.stages.eeg.filter_ica import _MONTAGE``."""
    source: str = ""
    """The absolute module a from-import reads from (empty for ``import x``)."""


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

    def visit(node: ast.AST, at_import_time: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            found.append(Import(module, tuple(a.name for a in node.names), path, node.lineno,
                                at_import_time, type_checking, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            found.append(Import(module, (source, *(f"{source}.{a.name}" for a in node.names)),
                                path, node.lineno, at_import_time, type_checking,
                                tuple(a.name for a in node.names), source))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False, True)
            for child in node.orelse:
                visit(child, at_import_time, type_checking)
            return
        inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time and not inside_function, type_checking)

    visit(ast.parse(path.read_text(), filename=str(path)), True, False)
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


def import_cycles(root: Path, packages: tuple[str, ...], *, lazy: bool = False) -> list[list[str]]:
    """Every cycle of import-time imports between project modules (one per strongly connected
    component of more than one module, or a module importing itself). With ``lazy``, imports
    inside functions count too (those under ``TYPE_CHECKING`` never run and never count)."""
    files = project_files(root, packages)
    modules = {module_name(p, root) for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in files:
        for imp in imports_of(path, root):
            if imp.at_import_time or (lazy and not imp.type_checking):
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


def import_cycles_including_lazy(root: Path, packages: tuple[str, ...]) -> list[list[str]]:
    """The cycles of :func:`import_cycles` when an import inside a function counts as much as one
    at the top of a file: a late import hides a cycle from Python, not from the reader (it only
    delays the partly-initialised-module error to the first call that takes that path)."""
    return import_cycles(root, packages, lazy=True)


def _is_private(name: str) -> bool:
    """``_name`` (one leading underscore), not ``__dunder__`` nor ``__mangled``."""
    return name.startswith("_") and not name.startswith("__")


def private_imports(root: Path, packages: tuple[str, ...]) -> list[str]:
    """``pipeline/synth/writers.py:14 imports pipeline.synth.signals._noise`` for every import
    that reaches into another project module's privates:

    - a ``_name`` taken from another module (``from pipeline.stages.eeg.filter_ica import _MONTAGE``), wherever the
      two modules live (a name private to a module is private to that module);
    - a ``_module`` (``import pipeline._util``, ``from pipeline import _util``, or anything under
      it) from outside the package that holds it: a private module is private to its package, so
      ``pipeline/stages/eeg/__init__.py`` may import its own ``_ica`` submodule.

    Only project modules count (``from typing import _SpecialForm`` is another library's business);
    dunders (``__version__``) are public."""
    files = project_files(root, packages)
    modules = {module_name(p, root) for p in files}
    offences: list[str] = []

    def outside_private_package(importer: str, target: str) -> bool:
        parts = target.split(".")
        for i, part in enumerate(parts):
            if _is_private(part):
                package = ".".join(parts[:i])
                if not (importer == package or importer.startswith(package + ".")):
                    return True
        return False

    for path in files:
        where = path.relative_to(root)
        for imp in imports_of(path, root):
            if imp.source:  # from SOURCE import a, b
                if imp.source.split(".")[0] not in packages:
                    continue
                for name in imp.aliases:
                    target = f"{imp.source}.{name}"
                    if target in modules:  # a submodule: the package rule
                        if outside_private_package(imp.module, target):
                            offences.append(f"{where}:{imp.line} imports {target}")
                    elif _is_private(name) and imp.source != imp.module:
                        offences.append(f"{where}:{imp.line} imports {target}")
                    elif outside_private_package(imp.module, imp.source):
                        offences.append(f"{where}:{imp.line} imports {target}")
            else:  # import a.b.c
                for name in imp.aliases:
                    if name.split(".")[0] in packages and outside_private_package(imp.module, name):
                        offences.append(f"{where}:{imp.line} imports {name}")
    return offences


def long_modules(root: Path, packages: tuple[str, ...], limit: int = 600) -> list[str]:
    """``flows/cli.py: 641 lines`` for every project file over ``limit`` lines."""
    found = []
    for path in project_files(root, packages):
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{path.relative_to(root)}: {n} lines")
    return found


_BRANCH_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _is_kind(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "kind") or (
        isinstance(node, ast.Attribute) and node.attr == "kind")


def kind_branches(root: Path, folder: str) -> list[str]:
    """``train/models/milmer.py:207 c.kind == 'deepcca'`` for every comparison of something called
    ``kind`` (a name or an attribute) by ``==``, ``!=``, ``in`` or ``not in``, and every ``match
    kind:``, in the files under ``folder``: variants are classes a registry maps a kind to, not
    branches inside one class (timm's ``@register_model``). Looking a kind up in a registry
    (``MODELS[kind]``) is not a branch."""
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        hits: list[tuple[int, str]] = []
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(op, _BRANCH_OPS) and (_is_kind(a) or _is_kind(b))
                       for op, a, b in zip(node.ops, operands, operands[1:])):
                    hits.append((node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.Match) and _is_kind(node.subject):
                hits.append((node.lineno, f"match {ast.unparse(node.subject)}"))
        found += [f"{path.relative_to(root)}:{line} {text}" for line, text in sorted(hits)]
    return found


README_MAX_LINES = 400
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?:.|\n)*?\1")
_INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)


def _prose(text: str) -> str:
    """The markdown without fenced code blocks and code spans (a link inside code is text)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown page: lower case, punctuation other
    than ``-`` and ``_`` dropped, spaces as ``-``, repeats numbered ``-1``, ``-2``..."""
    anchors: set[str] = set()
    for line in _FENCE.sub("", text).splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def broken_links(root: Path, pages: list[Path]) -> list[str]:
    """``docs/cli.md: ../flows/nowhere.py (no such file)`` for every relative link of ``pages``
    (inline ``[text](target)`` and reference ``[label]: target``) whose file does not exist, or
    whose ``#anchor`` names no heading of the markdown page it points to. Absolute URLs
    (``https:``, ``mailto:``...) are not followed; links inside code are not links."""
    found = []
    for page in pages:
        text = _prose(page.read_text())
        targets = [*_INLINE_LINK.findall(text), *_REFERENCE_LINK.findall(text)]
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
                continue
            file_part, _, anchor = target.partition("#")
            where = page if not file_part else (page.parent / file_part)
            label = f"{page.relative_to(root)}: {target}"
            if not where.exists():
                found.append(f"{label} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in heading_anchors(where.read_text()):
                found.append(f"{label} (no heading #{anchor} in {where.relative_to(root)})")
            elif root.resolve() not in where.resolve().parents and where.resolve() != root.resolve():
                found.append(f"{label} (outside the repository)")
    return found


def documentation_pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


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
        [sys.executable, "-c", "import sys, pipeline.stages; print('mne' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_sees_a_cycle_closed_by_a_late_import(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "low/__init__.py": "",
        "low/eeg.py": "def ica():\n    from low.eeg_iclabel import label\n    return label()\n",
        "low/eeg_iclabel.py": "from low.eeg import helper\n",
        "low/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from low import other\n",
        "low/other.py": "def f():\n    import low.typed\n",
    })
    assert import_cycles(tmp_path, ("low",)) == []  # hidden at import time
    # the late import closes eeg <-> eeg_iclabel; other -> typed -> other does not, as typed's
    # import of other is for type checkers only and never runs
    assert import_cycles_including_lazy(tmp_path, ("low",)) == [["low.eeg", "low.eeg_iclabel"]]


def test_the_checker_sees_private_names_taken_from_another_module(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "low/__init__.py": "",
        "low/eeg.py": "import typing\nfrom typing import _SpecialForm\n_MONTAGE = 1\n__version__ = '1'\n"
                      "def _own():\n    from low.eeg import _MONTAGE\n",
        "low/iclabel.py": "from low.eeg import _MONTAGE, ica\nfrom low.eeg import __version__\n"
                          "def later():\n    from .eeg import _own as own\n",
        "low/stage/__init__.py": "from . import _heavy\nfrom low.stage._heavy import run\n",
        "low/stage/_heavy.py": "from low.stage import _helper\ndef run(): ...\n",
        "low/stage/_helper.py": "",
        "low/flow.py": "import low.stage._heavy\nfrom low.stage import _heavy\n"
                       "from low.stage._heavy import run\nfrom low.stage import run as r2\n",
    })
    assert private_imports(tmp_path, ("low",)) == [
        "low/flow.py:1 imports low.stage._heavy",
        "low/flow.py:2 imports low.stage._heavy",
        "low/flow.py:3 imports low.stage._heavy.run",
        "low/iclabel.py:1 imports low.eeg._MONTAGE",
        "low/iclabel.py:4 imports low.eeg._own",
    ]  # a module's own privates, a package's own private submodules and dunders are fine


def test_the_checker_counts_lines(tmp_path: Path) -> None:
    _tree(tmp_path, {"low/__init__.py": "", "low/short.py": "x = 1\n" * 600,
                     "low/long.py": "x = 1\n" * 601})
    assert long_modules(tmp_path, ("low",)) == ["low/long.py: 601 lines"]
    assert long_modules(tmp_path, ("low",), limit=10) == ["low/long.py: 601 lines",
                                                          "low/short.py: 600 lines"]


def test_the_checker_sees_kind_branches_but_not_a_registry(tmp_path: Path) -> None:
    _tree(tmp_path, {"low/models/fusion.py": (
        "MODELS = {}\n"
        "def build(kind, c):\n"
        "    model = MODELS[kind](c)\n"          # a registry: fine
        "    if c.kind == 'deepcca':\n"
        "        pass\n"
        "    elif kind != 'concat' and c.mil:\n"
        "        pass\n"
        "    x = 'eeg' in c.kind\n"              # kind on the right of `in`
        "    y = kind not in ('a', 'b')\n"
        "    z = c.kinds == 'a' or c.kind is None or c.kind.startswith('a')\n"  # not branches
        "    match self.kind:\n"
        "        case 'a':\n"
        "            pass\n"
        "    return model\n")})
    assert kind_branches(tmp_path, "low/models") == [
        "low/models/fusion.py:4 c.kind == 'deepcca'",
        "low/models/fusion.py:6 kind != 'concat'",
        "low/models/fusion.py:8 'eeg' in c.kind",
        "low/models/fusion.py:9 kind not in ('a', 'b')",
        "low/models/fusion.py:11 match self.kind",
    ]


def test_the_checker_follows_relative_links_and_anchors(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "beside.md").write_text("# Beside the repository\n")
    _tree(repo, {
        "README.md": "# Title\n\nSee [the CLI](docs/cli.md#milmer-preprocess), [gone](docs/gone.md),\n"
                     "[top](#title), [bad anchor](docs/cli.md#nowhere), [web](https://x.org/a.md),\n"
                     "`[in code](docs/nothing.md)`, ![a picture](docs/pic.png) and [Makefile][mk].\n\n"
                     "```\n[fenced](docs/nothing.md)\n```\n\n[mk]: Makefile\n",
        "Makefile": "",
        "docs/cli.md": "# The `milmer` CLI\n\n## `milmer preprocess`\n\nBack to [the README](../README.md),"
                       " [stages](stages.md#the-eeg-stage-band-pass--ica), [out](../../beside.md).\n",
        "docs/stages.md": "# Stages\n\n## The eeg stage: band-pass + ICA\n\n## Stages\n\n[x](#stages-1)\n",
    })
    assert heading_anchors((repo / "docs" / "stages.md").read_text()) == {
        "stages", "the-eeg-stage-band-pass--ica", "stages-1"}
    assert broken_links(repo, documentation_pages(repo)) == [
        "README.md: docs/gone.md (no such file)",
        "README.md: docs/cli.md#nowhere (no heading #nowhere in docs/cli.md)",
        "README.md: docs/pic.png (no such file)",
        "docs/cli.md: ../../beside.md (outside the repository)",
    ]


def test_the_readme_guides_and_every_link_resolves() -> None:
    """The README is a guide (what it is, two commands, a tour, where to read on); the reference
    and the measured results live in docs/, and no link between them is broken."""
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference to docs/"
    assert (REPO / "docs" / "README.md").is_file()
    assert broken_links(REPO, documentation_pages(REPO)) == []


# ---- the structure's targets (issue 28) ----

def test_no_import_cycle_even_through_imports_inside_functions() -> None:
    assert import_cycles_including_lazy(REPO, PACKAGES) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    assert private_imports(REPO, PACKAGES) == []


def test_no_module_is_over_600_lines() -> None:
    assert long_modules(REPO, PACKAGES, limit=600) == []


def test_models_are_registered_classes_not_kind_branches() -> None:
    assert kind_branches(REPO, "train/models") == []
