"""The app plugin's local state: a private per-user folder that nobody else can
plant, swap or read, files 0600, nothing left behind, and a thaw command that
always comes from the operator's plan."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protectflow.bank import Bank
from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin import _private, app
from tests import needs
from tests.plugins.plugin_helpers import new_checkpoint
from tests.scripts import ROOT
from tests.waits import wait_until

OTHER = "pfs12other"
as_root = needs.root("making a second local user and acting as them")


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(tmp_path / "bank", fsync=False)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A session runtime folder that every local user may write to (sticky, as
    /tmp), so that the state folder in it is what a stranger could plant; in
    the temporary folder itself, as pytest's own are closed to other users."""
    folder = Path(tempfile.mkdtemp(prefix="pf-runtime-"))
    os.chmod(folder, 0o1777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder)


def app_resource(folder: Path, **extra: Any) -> Resource:
    """An application whose freeze and thaw leave marks in ``folder``."""
    return Resource(app.APPLICATION, "shop", extra_info={
        "base_dir": str(folder), "freeze": "touch FROZEN", "thaw": "rm FROZEN && touch THAWED",
        **extra})


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def as_other(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command as the other user (plain tools: the test's interpreter
    may sit in a folder they cannot enter)."""
    return subprocess.run(argv, user=OTHER, capture_output=True, text=True, check=False,
                          cwd="/")


@pytest.fixture(scope="module")
def other_user() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip(needs.missing_root("making a second local user"))
    created = False
    try:
        pwd.getpwnam(OTHER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", OTHER], check=True)
        created = True
    yield OTHER
    if created:
        subprocess.run(["userdel", OTHER], check=False)


# -- the folder and its files ------------------------------------------------------
def test_state_lives_in_a_private_folder_with_private_files(
        bank: Bank, tmp_path: Path, runtime: Path) -> None:
    resource = app_resource(tmp_path)
    cp = new_checkpoint(bank)
    app.freeze_app(cp, resource, {})
    state = runtime / "protectflow"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and state.stat().st_uid == os.geteuid()
    names = files_in(state)
    assert len(names) == 1  # the token, holding no command
    token = state / names[0]
    assert stat.S_IMODE(token.lstat().st_mode) == 0o600
    assert set(json.loads(token.read_text())) == {"pid", "frozen_at", "mode"}
    app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})
    assert (tmp_path / "THAWED").exists() and files_in(state) == []


def test_without_a_runtime_folder_the_users_cache_folder_is_used(
        bank: Bank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert _private.default_state_dir() == str(tmp_path / "cache" / "protectflow" / "run")
    cp, resource = new_checkpoint(bank), app_resource(tmp_path)
    app.freeze_app(cp, resource, {})
    assert len(files_in(tmp_path / "cache" / "protectflow" / "run")) == 1
    app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})
    assert files_in(tmp_path / "cache" / "protectflow" / "run") == []


@pytest.mark.parametrize("planted", ["symlink", "group-writable", "file"])
def test_a_state_folder_that_is_not_private_is_refused(
        bank: Bank, tmp_path: Path, runtime: Path, planted: str) -> None:
    state = runtime / "protectflow"
    if planted == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        state.symlink_to(tmp_path / "elsewhere")
    elif planted == "group-writable":
        state.mkdir()
        os.chmod(state, 0o770)
    else:
        state.write_text("")
    rule = {"symlink": "it is a symlink", "group-writable": "others may write to it",
            "file": "it is not a folder"}[planted]
    with pytest.raises(LocalPluginError, match=f"refusing the private folder {state}: {rule}"):
        app.freeze_app(new_checkpoint(bank), app_resource(tmp_path), {})
    assert not (tmp_path / "FROZEN").exists()  # refused before anything was frozen
    assert files_in(tmp_path / "elsewhere") == []


def test_a_state_folder_under_a_folder_others_may_rename_in_is_refused(
        bank: Bank, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # world-writable, no sticky bit
    resource = app_resource(tmp_path, state_dir=str(shared / "state"))
    with pytest.raises(LocalPluginError, match=f"under {shared}: others may write to it "
                                               r"\(mode 777\) and it has no sticky bit"):
        app.freeze_app(new_checkpoint(bank), resource, {})
    assert not (tmp_path / "FROZEN").exists()


def test_the_thaw_command_is_the_plans_whatever_the_token_says(
        bank: Bank, tmp_path: Path, runtime: Path) -> None:
    resource = app_resource(tmp_path)
    cp = new_checkpoint(bank)
    app.freeze_app(cp, resource, {})
    (token,) = (runtime / "protectflow").iterdir()
    # what the old format kept there, rewritten as a swapped token would be
    data = json.loads(token.read_text())
    forged = tmp_path / "forged"
    data.update(mode="command", thaw=["touch", str(forged)], cwd=str(tmp_path))
    token.write_text(json.dumps(data))
    app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})
    assert (tmp_path / "THAWED").exists() and not forged.exists()


# -- nothing left behind -----------------------------------------------------------
def test_nothing_is_left_after_a_failed_protect(bank: Bank, tmp_path: Path,
                                                runtime: Path) -> None:
    resource = app_resource(tmp_path)
    cp = new_checkpoint(bank)
    app.freeze_app(cp, resource, {})  # then a child's snapshot fails: fail-fast
    assert app.AppProtectionPlugin().on_failure(cp, resource, None, {}) == {"thawed": True}
    assert files_in(runtime / "protectflow") == [] and (tmp_path / "THAWED").exists()


def test_nothing_is_left_after_a_failed_freeze(bank: Bank, tmp_path: Path,
                                               runtime: Path) -> None:
    resource = app_resource(tmp_path, freeze="touch FROZEN && exit 3")  # half frozen
    with pytest.raises(LocalPluginError, match="exit code 3"):
        app.freeze_app(new_checkpoint(bank), resource, {})
    assert (tmp_path / "THAWED").exists()  # thawed at once
    wait_until(lambda: files_in(runtime / "protectflow") == [], "the token to go")


def test_nothing_is_left_after_the_guard_thawed_early(bank: Bank, tmp_path: Path,
                                                      runtime: Path) -> None:
    resource = app_resource(tmp_path)
    cp = new_checkpoint(bank)
    app.freeze_app(cp, resource, {"freeze_timeout": 0.2})
    wait_until(lambda: (tmp_path / "THAWED").exists(), "the guard to thaw")
    with pytest.raises(LocalPluginError, match="thawed before its children's snapshots"):
        app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})
    wait_until(lambda: files_in(runtime / "protectflow") == [], "the token to go")
    with pytest.raises(LocalPluginError, match="thawed before"):  # a rerun says the same
        app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})


def test_nothing_is_left_after_the_freezing_process_is_killed(
        tmp_path: Path, runtime: Path) -> None:
    code = f"""
import os, sys
from protectflow.bank import Bank
from protectflow.dag.model import Resource
from protectflow.plugins.builtin import app
from tests.plugins.plugin_helpers import new_checkpoint
resource = Resource(app.APPLICATION, "shop", extra_info={{"base_dir": {str(tmp_path)!r},
    "freeze": "touch FROZEN", "thaw": "rm FROZEN && touch THAWED"}})
app.freeze_app(new_checkpoint(Bank({str(tmp_path / "bank")!r})), resource, {{}})
print("frozen", flush=True)
sys.stdin.read()
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "frozen\n"
    assert (tmp_path / "FROZEN").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: (tmp_path / "THAWED").exists(), "the guard to thaw")
    wait_until(lambda: files_in(runtime / "protectflow") == [], "the token to go")


# -- another local user ------------------------------------------------------------
@pytest.mark.slow  # a second user
@as_root
def test_a_state_folder_another_user_made_is_refused(
        bank: Bank, tmp_path: Path, runtime: Path, other_user: str) -> None:
    state = runtime / "protectflow"
    done = as_other("mkdir", "-m", "700", str(state))
    assert done.returncode == 0, done.stderr
    uid = pwd.getpwnam(other_user).pw_uid
    with pytest.raises(LocalPluginError, match=f"{state}: it belongs to uid {uid}, not to you"):
        app.freeze_app(new_checkpoint(bank), app_resource(tmp_path), {})
    assert not (tmp_path / "FROZEN").exists()


@pytest.mark.slow  # a second user
@as_root
def test_a_symlink_another_user_planted_is_refused(
        bank: Bank, tmp_path: Path, runtime: Path, other_user: str) -> None:
    state, target = runtime / "protectflow", tmp_path / "roots-folder"
    target.mkdir(mode=0o700)
    done = as_other("ln", "-s", str(target), str(state))
    assert done.returncode == 0, done.stderr
    with pytest.raises(LocalPluginError, match="it is a symlink"):
        app.freeze_app(new_checkpoint(bank), app_resource(tmp_path), {})
    assert files_in(target) == [] and not (tmp_path / "FROZEN").exists()


@pytest.mark.slow  # a second user
@as_root
def test_another_user_can_neither_read_nor_swap_the_token(
        bank: Bank, tmp_path: Path, runtime: Path, other_user: str) -> None:
    resource = app_resource(tmp_path)
    cp = new_checkpoint(bank)
    app.freeze_app(cp, resource, {})
    state = runtime / "protectflow"
    (token,) = state.iterdir()
    attempts = {
        "list": ("ls", str(state)),
        "read": ("cat", str(token)),
        "swap": ("cp", "/etc/hostname", str(token)),
        "plant": ("ln", "-s", "/etc/passwd", f"{token}.thawed"),
        "rename": ("mv", str(state), str(runtime / "moved")),
    }
    for what, argv in attempts.items():
        done = as_other(*argv)
        # EACCES, or EPERM for the rename the sticky bit stops
        refused = ("Permission denied", "Operation not permitted")
        assert done.returncode != 0 and any(r in done.stderr for r in refused), (what, done)
    app.AppProtectOperation().on_prepare_finish(cp, resource, None, {})
    assert (tmp_path / "THAWED").exists() and files_in(state) == []
