"""The conformance kit's runs on the session's dask cluster."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def conformance_dask_client(dask_inproc: Any) -> Any:
    """The kit's dask runs go to the session's in-process cluster, not one
    more of their own (``protectflow.testing`` starts one for a plugin's
    suite)."""
    return dask_inproc

