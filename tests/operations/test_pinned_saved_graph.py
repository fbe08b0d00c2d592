"""A checkpoint's saved resource graph is checked when it is loaded: one
with a cycle or a dependency on a resource it does not hold is refused by
every operation on the checkpoint, before anything runs (the graph is
sealed, so only a holder of the key, or a bug, could have written it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protectflow import operations
from protectflow.bank import Bank
from protectflow.compiler import parse_plan
from protectflow.errors import CorruptObjectError

SIM_PLAN = """\
name: graph
resources:
  - {type: OS::Nova::Server, id: web, depends_on: [OS::Cinder::Volume#disk]}
  - {type: OS::Cinder::Volume, id: disk}
"""


@pytest.mark.parametrize(("dependency", "said"), [
    (["OS::Cinder::Volume#disk", "OS::Nova::Server#web"], "cycle"),
    (["OS::Nova::Server#web", "OS::Cinder::Volume#gone"], "OS::Cinder::Volume#gone"),
])
def test_a_saved_resource_graph_with_a_cycle_or_a_dangling_dependency_is_refused(
        tmp_path: Path, dependency: list[str], said: str) -> None:
    bank = Bank(tmp_path / "bank", fsync=False)
    plan = parse_plan(SIM_PLAN, source=str(tmp_path / "plan.yaml"))
    cid = operations.protect(plan, bank=bank, executor="serial").checkpoint.id
    key = f"checkpoints/{cid}/record"
    record = bank.get_object(key)
    record["resource_graph"]["dependencies"].append(dependency)
    bank.update_object(key, record)  # sealed by a holder of the key, or a bug
    before = sorted(bank.list_objects(f"checkpoints/{cid}/"))
    for operation in (operations.restore, operations.verify, operations.delete):
        with pytest.raises(CorruptObjectError, match="its resource graph") as refused:
            operation(cid, bank=bank, executor="serial")
        assert said in str(refused.value)
    # nothing ran: no run record, no lease, no journal, no status change
    assert sorted(bank.list_objects(f"checkpoints/{cid}/")) == before
    assert bank.get_object(key)["status"] == "available"
