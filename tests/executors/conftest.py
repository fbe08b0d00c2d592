"""Fixtures for the executor suite: every executor, dask clusters included.

The dask clusters are the session's (``tests/conftest.py``): one in-process
LocalCluster, one of two worker processes, and one scheduler plus worker as
separate ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import waits

EXECUTORS = ("serial", "threads", "dask-inproc", "dask-procs", "dask-remote")


@pytest.fixture(scope="session")
def remote_client(dask_remote: str) -> Iterator[Any]:
    from distributed import Client

    with Client(dask_remote, timeout=waits.LIMIT) as client:
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
