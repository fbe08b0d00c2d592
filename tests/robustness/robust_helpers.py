"""Running the real ``protectflow`` command, and fingerprinting a bank folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests import waits

#: The corpus of bad input.
DATA = Path(__file__).resolve().parents[1] / "data" / "bad"

_SCRIPT = Path(sys.executable).parent / "protectflow"
# The installed console script when there is one (what users run), else the same
# entry point through this interpreter.
COMMAND = (
    [str(_SCRIPT)] if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from protectflow.cli import main; sys.exit(main())"]
)


def protectflow(
    args: Sequence[str], *, bank: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``protectflow ARGS`` with ``$PROTECTFLOW_BANK`` set to ``bank``; by
    default for as long as it takes (the test's limit: tests/waits.py)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PROTECTFLOW_BANK", None)
    if bank is not None:
        full_env["PROTECTFLOW_BANK"] = os.fspath(bank)
    full_env.setdefault("COLUMNS", "200")  # rich tables: one line per row
    return subprocess.run(
        [*COMMAND, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=waits.LIMIT if timeout is None else timeout, stdin=subprocess.DEVNULL,
        check=False,
    )


def tree_digest(root: str | os.PathLike[str]) -> str:
    """A SHA-256 over every folder's and file's path and every file's bytes."""
    h = hashlib.sha256()
    base = Path(root)
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base).as_posix()
        if path.is_dir():
            h.update(f"D {rel}\0".encode())
        else:
            h.update(f"F {rel}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
