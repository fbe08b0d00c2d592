"""A local dask run ends quietly: no scheduler errors as its cluster closes;
and the ``dask`` extra brings what the dashboard needs."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from tests import waits

SCRIPT = """
import sys
from protectflow import operations
from protectflow.compiler import parse_plan

if __name__ == "__main__":  # dask's worker processes import this file
    plan = parse_plan(
        "name: d\\nresources:\\n"
        "  - {type: OS::Cinder::Volume, id: v1}\\n  - {type: OS::Cinder::Volume, id: v2}\\n")
    result = operations.protect(plan, bank=sys.argv[1], executor="dask")
    print(result.report.state)
"""


@pytest.mark.slow  # a cluster of its own, in a process of its own
def test_a_successful_local_dask_run_prints_no_distributed_errors(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "bank")],
                          capture_output=True, text=True, timeout=waits.LIMIT,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "succeeded"
    assert "CommClosedError" not in done.stderr
    assert "distributed.scheduler - ERROR" not in done.stderr


def test_the_dask_extra_brings_bokeh_for_the_dashboard() -> None:
    requires = importlib.metadata.requires("protectflow") or []
    extra = [r for r in requires if 'extra == "dask"' in r]
    assert any(r.startswith("bokeh") for r in extra), requires
    import bokeh  # installed with the test extra, which brings the dask one

    assert bokeh.__version__
