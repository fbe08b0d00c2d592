"""Settings shared by every test folder; fixtures live in each folder's conftest."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# No per-example deadline: CI machines are slower and noisier than laptops.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True, scope="session")
def _private_key_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Key files of the banks tests make go to a throw-away config folder,
    never the user's (subprocesses and dask workers inherit it)."""
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old
