"""Fixtures: every bank test runs on a real local folder and on memory://."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow.bank import Bank
from tests.bank.bank_helpers import make_bank


@pytest.fixture(params=["local", "memory"])
def bank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bank]:
    b = make_bank(request.param, tmp_path)
    yield b
    if request.param == "memory":
        with contextlib.suppress(FileNotFoundError):
            b.backend.fs.rm(b.backend.root, recursive=True)  # type: ignore[union-attr]


@pytest.fixture
def local_bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank")
