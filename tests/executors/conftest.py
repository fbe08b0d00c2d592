"""Fixtures for the executor suite: every executor, dask clusters included.

The dask clusters are session-scoped: one in-process LocalCluster, one of two
worker processes, and (``dask_remote``, in ``tests/conftest.py``, shared with
the command tests) one scheduler plus worker as separate ``dask scheduler`` /
``dask worker`` processes on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

EXECUTORS = ("serial", "threads", "dask-inproc", "dask-procs", "dask-remote")


@pytest.fixture(scope="session")
def dask_inproc() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def dask_procs() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def remote_client(dask_remote: str) -> Iterator[Any]:
    from distributed import Client

    with Client(dask_remote, timeout=30) as client:
        yield client


@pytest.fixture(params=EXECUTORS)
def make_executor(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A factory of the executor under test (parametrised over every one)."""
    from protectflow.executors import get_executor

    name = request.param
    if name in ("serial", "threads"):
        return lambda: get_executor(name, **({"workers": 4} if name == "threads" else {}))
    fixture = {"dask-inproc": "dask_inproc", "dask-procs": "dask_procs",
               "dask-remote": "remote_client"}[name]
    client = request.getfixturevalue(fixture)
    return lambda: get_executor("dask", client=client)


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)
