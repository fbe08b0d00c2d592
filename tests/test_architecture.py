"""The package's shape: layers that import only downwards, no import cycle, no
function-local import of the package's own modules, and a light ``import protectflow``.

The layers, top to bottom (a module may import its own component and any
component of a lower layer, nothing else)::

    cli | testing             the command (its config file, --json documents and
                              completion included); the plugin authors' kit
    report                    a checkpoint and its run as an HTML page (a view)
    protectflow (__init__)    the names a user imports
    scheduler                 runs plans' schedules: protect, verify, forget
    operations                protect / restore / verify / copy / delete / resume
    compiler | executors      never each other
    plugins.builtin           fs, sqlite, app, sim: plugins like any other
    plugins                   the framework: interfaces, contract, registry, providers
    bank                      the bank's public names, over its three layers:
    bank.catalog                checkpoints: records, leases, journals, runs, gc
    bank.chunks                 the content-addressed chunk store and its refs
    bank.objects                the object store, its crypto and its keys
    dag                       the HookDAG, and the plan and resource graph a
                              checkpoint keeps (pure data and their JSON)
    retention                 a plan's policies as pure data: retention rules and
                              their decision, schedules, durations, tags
    signals | _paths | _urls  SIGTERM as Ctrl-C; object paths and bank URLs, which
                              the compiler needs without loading the bank
    states | errors | _util | _faults | _fields | _localfiles
                              (_fields: reading stored JSON, its types checked;
                              _localfiles: the private folders and files both
                              the local plugins and the bank's key folder trust)

The import graph is read from the source with :mod:`ast`, so a module that is
never imported by a test is checked all the same.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.scripts import ROOT

PACKAGE = ROOT / "src" / "protectflow"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "testing"),  # the command line; the conformance kit for plugin authors
    ("report",),  # the HTML page of a checkpoint: a view over the bank
    ("protectflow",),  # the package's own __init__
    ("scheduler",),  # the scheduler's loop over the operations
    ("operations",),
    ("compiler", "executors"),
    ("plugins.builtin",),
    ("plugins",),
    ("bank",),
    ("bank.catalog",),
    ("bank.chunks",),
    ("bank.objects",),
    ("dag",),
    ("retention",),
    ("signals", "_paths", "_urls"),
    ("states", "errors", "_util", "_faults", "_fields", "_localfiles"),
)
#: Subpackages that are layers of their own inside their component.
SUBLAYERS = {"bank": ("objects", "chunks", "catalog"), "plugins": ("builtin",)}
RANK = {component: rank for rank, tier in enumerate(LAYERS) for component in tier}

#: Third-party modules slow to import (or optional), which a function may import
#: where it needs them so that `import protectflow` stays light; nothing else is
#: imported inside a function.
LAZY_OK = frozenset({"dask", "distributed", "graphviz", "networkx", "fsspec", "platformdirs",
                     "rich",
                     # 40 ms, and needed only when the shell asks for completions
                     "argcomplete"})

#: What `import protectflow` and its library subpackages must not import.
HEAVY = ("dask", "distributed", "networkx", "rich", "fsspec", "graphviz")



@attrs.frozen
class Import:
    """One import statement's target, as the module importing it names it."""

    source: str  # the importing module
    target: str  # the module imported (a protectflow module, or a top-level name)
    line: int
    in_function: bool


# -- reading the import graph -----------------------------------------------------


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _walk(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(tree):
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                           | ast.Lambda)
        yield child, inside
        yield from _walk(child, inside)


def _resolve(name: str, modules: frozenset[str]) -> str:
    """The module ``name`` loads: itself if it is a module of ours, else its
    longest prefix that is (``protectflow.dag.HookDAG`` -> ``protectflow.dag``)."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(source: str, module: str, *, is_package: bool = False,
               modules: frozenset[str] = frozenset()) -> list[Import]:
    """Every import in ``source`` (the text of ``module``), wherever it stands.

    A protectflow target is resolved to the module it loads (``from
    protectflow.dag import jsonio`` imports ``protectflow.dag.jsonio``); when
    it loads a subpackage's module, the subpackage's ``__init__`` runs first,
    so that is an import too. The root ``protectflow/__init__`` is left out of
    those implicit imports: Python runs it before any of its modules, whoever
    asks, so it is not an edge of anybody's.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node, in_function in _walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                prefix = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{prefix}.{base}" if base else prefix
            names = [f"{base}.{alias.name}" for alias in node.names]
            if not base.startswith("protectflow"):
                names = [base]
        targets: set[str] = set()
        for name in names:
            if name.split(".")[0] != "protectflow":
                targets.add(name.split(".")[0])
                continue
            target = _resolve(name, modules) if modules else name
            targets.add(target)
            parent = target.rpartition(".")[0]
            # The subpackages' __init__, not the root's, nor the source's own
            # packages: those started running before the source did, whoever asked.
            while parent.count(".") and not module.startswith(parent + "."):
                targets.add(parent)
                parent = parent.rpartition(".")[0]
        found += [Import(module, t, node.lineno, in_function) for t in sorted(targets)
                  if t != module]
    return found


def package_imports(root: Path = PACKAGE) -> list[Import]:
    """Every import of every module under ``root``."""
    paths = sorted(root.rglob("*.py"))
    modules = frozenset(module_name(p, root) for p in paths)
    out: list[Import] = []
    for path in paths:
        out += imports_of(path.read_text("utf-8"), module_name(path, root),
                          is_package=path.name == "__init__.py", modules=modules)
    return out


def component(module: str) -> str:
    """``cli`` for ``protectflow.cli.run``, ``bank.catalog`` for
    ``protectflow.bank.catalog.gc``; ``protectflow`` for the root package."""
    parts = module.split(".")
    if len(parts) > 2 and parts[2] in SUBLAYERS.get(parts[1], ()):
        return f"{parts[1]}.{parts[2]}"
    return parts[1] if len(parts) > 1 else parts[0]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (its modules, first == last), or None."""
    try:
        # graphlib wants predecessors; a cycle is a cycle either way round.
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as err:
        return list(reversed(err.args[1]))
    return None


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return package_imports()


def ours(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.target.split(".")[0] == "protectflow"]


# -- the package --------------------------------------------------------------------


def test_the_walk_sees_the_whole_package(imports: list[Import]) -> None:
    # Nothing below may pass vacuously: every layer has modules, and they import.
    components = {component(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert set(RANK) <= components, sorted(set(RANK) - components)
    assert len(ours(imports)) > 100


def test_every_module_belongs_to_a_layer() -> None:
    stray = sorted({module_name(p) for p in PACKAGE.rglob("*.py")
                    if component(module_name(p)) not in RANK})
    assert stray == [], "add these modules to a layer's package (or a layer to LAYERS)"


def test_imports_run_down_the_layers(imports: list[Import]) -> None:
    wrong = [
        f"{i.source} (line {i.line}) imports {i.target}: "
        f"{component(i.source)} may not import {component(i.target)}"
        for i in ours(imports)
        if component(i.source) in RANK and component(i.target) in RANK
        and component(i.source) != component(i.target)
        and RANK[component(i.target)] <= RANK[component(i.source)]
    ]
    assert wrong == []


def test_the_compiler_and_the_executors_never_import_each_other(imports: list[Import]) -> None:
    pairs = {("compiler", "executors"), ("executors", "compiler")}
    wrong = [f"{i.source} imports {i.target}" for i in ours(imports)
             if (component(i.source), component(i.target)) in pairs]
    assert wrong == []


def test_nothing_below_the_cli_imports_it(imports: list[Import]) -> None:
    wrong = [f"{i.source} (line {i.line}) imports {i.target}" for i in ours(imports)
             if component(i.target) == "cli" and component(i.source) != "cli"]
    assert wrong == []


def test_there_is_no_import_cycle(imports: list[Import]) -> None:
    edges: dict[str, set[str]] = {}
    for i in ours(imports):
        edges.setdefault(i.source, set()).add(i.target)
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_functions_import_only_heavy_optional_dependencies(imports: list[Import]) -> None:
    wrong = [f"{i.source} (line {i.line}) imports {i.target} inside a function"
             for i in imports if i.in_function and i.target.split(".")[0] not in LAZY_OK]
    assert wrong == [], "import these at the top of the module"


def _imported_after(statement: str) -> list[str]:
    """The top-level modules a fresh interpreter has loaded after ``statement``."""
    code = (f"import sys\n{statement}\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.split()


def test_importing_the_library_imports_nothing_heavy() -> None:
    loaded = _imported_after(
        "import protectflow, protectflow.compiler, protectflow.dag, protectflow.dag.graphml, "
        "protectflow.bank, protectflow.plugins, protectflow.executors, protectflow.operations")
    assert "protectflow" in loaded  # the import did happen
    assert [m for m in HEAVY if m in loaded] == []


def test_the_compiler_imports_nothing_of_the_bank(imports: list[Import]) -> None:
    wrong = [f"{i.source} (line {i.line}) imports {i.target}" for i in ours(imports)
             if component(i.source) == "compiler" and component(i.target).startswith("bank")]
    assert wrong == []


def test_reading_a_plan_loads_no_cryptography_nor_zstandard() -> None:
    # Compiling it loads the installed plugins, which may keep data in a bank;
    # the compiler itself needs none of the bank's crypto.
    plan = ROOT / "examples" / "tenant.yaml"
    loaded = _imported_after(
        f"from protectflow.compiler import load_plan\nload_plan({str(plan)!r})")
    assert "protectflow" in loaded
    assert [m for m in ("cryptography", "zstandard") if m in loaded] == []


def test_the_bank_layers_import_downwards_only(imports: list[Import]) -> None:
    # objects < chunks < catalog: spelled out, so that a reorder of LAYERS shows here
    order = {"bank.objects": 0, "bank.chunks": 1, "bank.catalog": 2}
    wrong = [f"{i.source} imports {i.target}" for i in ours(imports)
             if component(i.source) in order and component(i.target) in order
             and order[component(i.target)] > order[component(i.source)]]
    assert wrong == []
    assert {component(i.source) for i in ours(imports)} >= set(order)


def test_importing_the_cli_imports_no_dask_nor_networkx() -> None:
    loaded = _imported_after("import protectflow.cli")
    assert [m for m in ("dask", "distributed", "networkx") if m in loaded] == []


# -- the walk itself ------------------------------------------------------------------

MODULES = frozenset({"protectflow", "protectflow.compiler", "protectflow.compiler.plan",
                     "protectflow.executors", "protectflow.executors.local",
                     "protectflow.dag", "protectflow.dag.model"})


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import protectflow.executors.local", "protectflow.compiler.x",
         "protectflow.executors.local"),
        ("from protectflow.executors import local", "protectflow.compiler.x",
         "protectflow.executors.local"),
        ("from protectflow.executors import local", "protectflow.compiler.x",
         "protectflow.executors"),  # its __init__ runs first
        ("from protectflow import executors", "protectflow.compiler.x", "protectflow.executors"),
        ("from ..executors import local", "protectflow.compiler.x",
         "protectflow.executors.local"),
        ("from .. import compiler", "protectflow.executors.x", "protectflow.compiler"),
        ("from protectflow.dag import HookDAG", "protectflow.executors.x", "protectflow.dag"),
        ("from protectflow import Plan", "protectflow.cli.x", "protectflow"),
        ("def f():\n    from protectflow.compiler import plan\n", "protectflow.executors.x",
         "protectflow.compiler.plan"),
        ("if TYPE_CHECKING:\n    from protectflow.dag.model import HookDAG\n",
         "protectflow.executors.x", "protectflow.dag.model"),
    ],
)
def test_the_walk_finds_every_form(source: str, module: str, expected: str) -> None:
    assert expected in {i.target for i in imports_of(source, module, modules=MODULES)}


def test_the_walk_resolves_relative_imports_of_a_package() -> None:
    found = imports_of("from .local import X", "protectflow.executors", is_package=True,
                       modules=MODULES)
    assert [i.target for i in found] == ["protectflow.executors.local"]


def test_the_walk_does_not_add_the_root_package_to_every_import() -> None:
    found = imports_of("from protectflow.dag.model import HookDAG", "protectflow.bank.x",
                       modules=MODULES)
    assert sorted(i.target for i in found) == ["protectflow.dag", "protectflow.dag.model"]


def test_the_walk_tells_function_local_imports() -> None:
    source = ("import json\n"
              "class C:\n    def m(self):\n        import networkx\n"
              "f = lambda: __import__('x')\n"
              "def g():\n    if True:\n        from protectflow.dag import model\n")
    found = {(i.target, i.in_function) for i in imports_of(source, "protectflow.x",
                                                            modules=MODULES)}
    assert found == {("json", False), ("networkx", True), ("protectflow.dag", True),
                     ("protectflow.dag.model", True)}


def test_a_cycle_is_found_and_named() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    cycle = find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert all(b in edges[a] for a, b in itertools.pairwise(cycle))  # in import order
