"""The repository's folders, and its scripts (``tools/``, ``examples/``) as modules.

The scripts are not packages: they are loaded from their files by path, so no
test puts their folders on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["ROOT", "load_script"]

#: The repository's root: the folder holding ``src/``, ``tests/`` and ``tools/``.
ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """The module of the script at ``relative`` (to :data:`ROOT`), run once per call
    with ``__name__`` set to its file's stem, so its ``__main__`` block does not run."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
