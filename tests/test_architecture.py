"""Imports flow one way: compiler and executors both depend on dag and the plugin
interfaces, never on each other; dag depends on neither; and ``import
protectflow`` imports no heavy optional dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "protectflow"

#: (layer, packages it must not import)
FORBIDDEN = [
    ("compiler", ("protectflow.executors",)),
    ("executors", ("protectflow.compiler",)),
    ("dag", ("protectflow.compiler", "protectflow.executors")),
    # The CLI is a shell over the library, never the other way round.
    ("operations", ("protectflow.cli",)),
]


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, relative imports
    resolved, wherever the import statement is (functions included)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            # `from protectflow import executors` imports the subpackage too.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _modules(layer: str) -> list[tuple[str, Path]]:
    folder = PACKAGE / layer
    if not folder.is_dir():  # a layer still being written may not exist yet
        return []
    out = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out.append((".".join(parts), path))
    return out


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for module, path in _modules(layer):
        is_package = path.name == "__init__.py"
        name = module.removesuffix(".__init__")
        for target in imported_modules(path.read_text("utf-8"), name, is_package=is_package):
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                bad.append(f"{name} imports {target}")
    return bad


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_layers_do_not_import_the_wrong_way(layer: str, forbidden: tuple[str, ...]) -> None:
    if not _modules(layer):
        pytest.skip(f"src/protectflow/{layer} has no modules yet")
    assert _violations(layer, forbidden) == []


def test_the_compiler_and_dag_layers_exist() -> None:
    # The walk above must not pass vacuously for the layers that are written.
    assert len(_modules("compiler")) >= 4 and len(_modules("dag")) >= 4


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import protectflow.executors.local", "protectflow.compiler.x",
         "protectflow.executors.local"),
        ("from protectflow.executors import local", "protectflow.compiler.x",
         "protectflow.executors.local"),
        ("from protectflow import executors", "protectflow.compiler.x", "protectflow.executors"),
        ("from ..executors import local", "protectflow.compiler.x", "protectflow.executors"),
        ("from .. import compiler", "protectflow.executors.x", "protectflow.compiler"),
        ("def f():\n    from protectflow.compiler import plan\n", "protectflow.executors.x",
         "protectflow.compiler"),
    ],
)
def test_the_import_walk_finds_every_form(source: str, module: str, expected: str) -> None:
    assert expected in imported_modules(source, module)


def test_the_import_walk_resolves_relative_imports_of_a_package() -> None:
    found = imported_modules("from .local import X", "protectflow.executors", is_package=True)
    assert "protectflow.executors.local" in found


def test_importing_protectflow_imports_no_dask() -> None:
    code = (
        "import sys, protectflow, protectflow.compiler, protectflow.dag, protectflow.cli\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'dask', 'distributed'})\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""
