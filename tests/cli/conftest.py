"""Fixtures for the command tests: a dask scheduler for ``run --scheduler``.

The executor suite starts its own (``tests/executors/conftest.py``); the
commands are tested against one of their own so this folder runs alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest


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
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": dict(os.environ)}
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
