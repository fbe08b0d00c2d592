"""The conformance kit's runs on the session's dask cluster, and its slow
check marked as such."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent

#: The kit's check that kills a protect at each hook boundary, in a process
#: of its own each time: seconds per plugin and executor.
_KILLS = "test_a_protect_killed_at_each_hook_boundary_resumes_to_the_same_data"


@pytest.fixture(scope="session")
def conformance_dask_client(dask_inproc: Any) -> Any:
    """The kit's dask runs go to the session's in-process cluster, not one
    more of their own (``protectflow.testing`` starts one for a plugin's
    suite)."""
    return dask_inproc


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # every item of the session: this folder's only
        if HERE in item.path.parents and getattr(item, "originalname", "") == _KILLS:
            item.add_marker(pytest.mark.slow)
