"""Settings and fixtures shared by every test folder; the rest live in each
folder's conftest.

The dask clusters are made once per session and shared by every test that
only needs a cluster to run on (the executor behaviour suite, the operations,
the plugins, resume, the conformance kit, the commands): one in this process
(``dask_inproc``), one of two worker processes (``dask_procs``), and a
scheduler and a worker started as separate ``dask scheduler`` / ``dask
worker`` processes (``dask_remote``). A test that stops, interrupts or kills
its cluster starts its own. Every start waits for readiness, never for a
clock (see ``tests/waits.py``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import HealthCheck, settings

from tests import waits
from tests.scripts import ROOT

# No per-example deadline: CI machines are slower and noisier than laptops.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    """Bound the waits that need a bound by pytest-timeout's own limit."""
    from pytest_timeout import get_env_settings

    limit = get_env_settings(config).timeout
    waits.LIMIT = float(limit) if limit else None


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


@contextlib.contextmanager
def _environment_for_workers() -> Iterator[None]:
    """No ``PROTECTFLOW_*`` variable of the test that asks first (a password,
    a fault to inject) reaches worker processes shared by the whole session:
    what they read and write, they do with what each run sends them."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("PROTECTFLOW_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def dask_inproc() -> Iterator[Any]:
    """A client of a LocalCluster in this process: one worker, four threads."""
    from distributed import Client, LocalCluster  # only the dask tests pay for importing it

    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="session")
def dask_procs() -> Iterator[Any]:
    """A client of a LocalCluster of two worker processes, two threads each."""
    from distributed import Client, LocalCluster

    with _environment_for_workers():
        cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                               dashboard_address=":0")
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_running(proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"the {what} exited ({proc.returncode}) while starting: "
                           f"{log.read_text(errors='replace')[-3000:]}")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@pytest.fixture(scope="session")
def dask_remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a scheduler with one worker, both subprocesses, once
    both are up (however long that takes: see ``tests/waits.py``)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask-remote")
    # The worker imports the test plugins by name (tests.executors.executor_plugins).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROTECTFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    commands = {
        "scheduler": ["distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                      "--port", str(port), "--no-dashboard"],
        "worker": ["distributed.cli.dask_worker", address, "--nthreads", "2",
                   "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
    }
    with contextlib.ExitStack() as stack:
        procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for name, args in commands.items():
            log = logs / f"{name}.log"
            out: IO[bytes] = stack.enter_context(log.open("wb"))
            proc = subprocess.Popen([sys.executable, "-m", *args], stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
            stack.callback(_stop, proc)
            procs[name] = (proc, log)

        def up(name: str, ready: Any) -> Any:
            def check() -> Any:
                _check_running(*procs[name], f"dask {name} of dask_remote")
                return ready()
            return check

        waits.wait_until(up("scheduler", lambda: _accepts(port)), "the scheduler to listen")
        with Client(address, timeout=waits.LIMIT, set_as_default=False) as client:
            waits.wait_until(up("worker", client.nthreads), "the worker to join", every=0.1)
        yield address


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)  # a clean close takes a second; one that hangs is killed
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
