"""Freeze and thaw commands never see the bank's password: not
``$PROTECTFLOW_PASSWORD``, not the new one ``key add-password`` reads, not
``$PROTECTFLOW_PASSWORD_FILE`` (a path to it); the rest of the environment,
and what protectflow tells them (the checkpoint), they get as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from protectflow import cli
from protectflow.bank.objects import _keystore as keystore

SECRET = "do-not-leak-this-password"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PROTECTFLOW_BANK", "PROTECTFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    keystore.forget_unlocked()
    yield
    keystore.forget_unlocked()


def test_freeze_and_thaw_commands_get_no_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    monkeypatch.setenv("PROTECTFLOW_PASSWORD", SECRET)
    monkeypatch.setenv("PROTECTFLOW_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("PROTECTFLOW_NEW_PASSWORD", SECRET + "-new")
    monkeypatch.setenv("PF_KEPT", "inherited")
    plan = {"name": "env", "resources": [{
        "type": "protectflow::app::Application", "id": "app",
        "extra_info": {"base_dir": str(tmp_path), "freeze": "env > freeze.env",
                       "thaw": "env > thaw.env"}}]}
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))
    assert cli.main(["protect", str(tmp_path / "plan.yaml"), "--bank",
                     str(tmp_path / "bank"), "-q"]) == 0
    for name in ("freeze.env", "thaw.env"):
        seen = (tmp_path / name).read_text()
        assert SECRET not in seen and "PROTECTFLOW_PASSWORD" not in seen, name
        assert "PROTECTFLOW_NEW_PASSWORD" not in seen, name
        assert "PF_KEPT=inherited" in seen and "PROTECTFLOW_CHECKPOINT=" in seen, name
