"""Every state and status protectflow names, spelled once.

Three families, as TaskFlow's ``states.py`` keeps its own:

- **hook states**: how one hook of a run ended (its ``HookRecord``), and the
  run events named after them;
- **checkpoint statuses**: where a checkpoint is in its life (its record);
- **resource statuses**: what the last operation did to one resource of a checkpoint.

The values are the strings stored in reports, journals and bank records, so
they never change; code compares against these names, never against literals.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AVAILABLE",
    "CANCELLED",
    "CANCELLING",
    "CHECKPOINT_STATUSES",
    "COPIED",
    "COPYING",
    "CORRUPT",
    "DELETED",
    "DELETING",
    "DONE",
    "ERROR",
    "ERROR_DELETING",
    "FAILED",
    "FAILED_STATES",
    "HOOK_STATES",
    "IN_PROGRESS_STATUSES",
    "NOT_RUN",
    "NOT_RUN_STATES",
    "PROTECTING",
    "QUEUED",
    "RESTORED",
    "RETRIED",
    "RUN_FINISHED",
    "RUN_STARTED",
    "STARTED",
    "SUCCEEDED",
    "TIMED_OUT",
    "UPSTREAM_FAILED",
    "VERIFIED",
]

# -- hook states (and the run's own end state) ---------------------------------
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
#: A hook attempt that ran past its timeout; counts as failed.
TIMED_OUT: Final = "timed_out"
#: Never ran: a hook it waits for failed.
UPSTREAM_FAILED: Final = "upstream_failed"
#: Never ran (or was abandoned): the run was cancelled or stopped after a failure.
CANCELLED: Final = "cancelled"

#: The states a hook ends in.
HOOK_STATES: Final = (SUCCEEDED, FAILED, TIMED_OUT, UPSTREAM_FAILED, CANCELLED)
#: The end states that are the hook's own failure.
FAILED_STATES: Final = frozenset((FAILED, TIMED_OUT))
#: The end states of a hook that never ran to its end for another's sake.
NOT_RUN_STATES: Final = frozenset((UPSTREAM_FAILED, CANCELLED))

# -- run events that are not hook end states -----------------------------------
RUN_STARTED: Final = "run_started"
QUEUED: Final = "queued"
STARTED: Final = "started"
RETRIED: Final = "retried"
#: The run stops starting hooks: cancelled, interrupted, or its journal failed.
CANCELLING: Final = "cancelling"
RUN_FINISHED: Final = "run_finished"

# -- checkpoint statuses ---------------------------------------------------------
PROTECTING: Final = "protecting"
AVAILABLE: Final = "available"
ERROR: Final = "error"
COPYING: Final = "copying"
DELETING: Final = "deleting"
DELETED: Final = "deleted"
ERROR_DELETING: Final = "error_deleting"

CHECKPOINT_STATUSES: Final = (PROTECTING, AVAILABLE, ERROR, COPYING, DELETING, DELETED,
                              ERROR_DELETING)
#: Not a status a record holds: how a listing shows a checkpoint whose record
#: cannot be read (``checkpoints show ID`` says why).
CORRUPT: Final = "corrupt"
#: Statuses an operation is still writing; gc resolves them once the lease expires.
IN_PROGRESS_STATUSES: Final = (PROTECTING, COPYING, DELETING)

# -- resource statuses (AVAILABLE, ERROR and DELETED as above) -----------------
RESTORED: Final = "restored"
VERIFIED: Final = "verified"
COPIED: Final = "copied"
#: The operation never ran this resource's hooks to their end.
NOT_RUN: Final = "not_run"

#: The status a resource gets when all its hooks succeeded, per operation.
DONE: Final = {
    "protect": AVAILABLE,
    "restore": RESTORED,
    "verify": VERIFIED,
    "copy": COPIED,
    "delete": DELETED,
}
