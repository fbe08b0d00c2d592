"""Fixtures the local plugins' tests share."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests import needs


@pytest.fixture(scope="session")
def second_user() -> Iterator[tuple[str, int, int]]:
    """A real second user, made for these tests and removed after them."""
    if os.geteuid() != 0:
        pytest.skip(needs.missing_root("making a second local user"))
    if shutil.which("useradd") is None:
        pytest.skip(needs.missing_tool("useradd", "passwd"))
    name = f"pft{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        yield name, entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
