"""Settings and fixtures shared by every test folder; the rest live in each
folder's conftest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.scripts import ROOT

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def dask_remote() -> Iterator[str]:
    """The address of a scheduler with one worker, both subprocesses."""
    from distributed import Client  # only the dask tests pay for importing it

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    # The worker imports the test plugins by name (tests.executors.executor_plugins).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"], **quiet)
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2",
         "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"], **quiet)
    try:
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
        yield address
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
