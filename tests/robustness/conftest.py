"""A real bank holding one checkpoint, protected once per session through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.robustness.robust_helpers import DATA, protectflow


@pytest.fixture(scope="session")
def session_bank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A bank folder and the id of the ``available`` checkpoint in it."""
    bank = tmp_path_factory.mktemp("robust") / "bank"
    done = protectflow(["protect", str(DATA / "plans" / "good.yaml"), "--executor", "serial"],
                       bank=bank)
    assert done.returncode == 0, done.stderr
    (checkpoint,) = [p.name for p in (bank / "checkpoints").iterdir()]
    return bank, checkpoint
