"""The bank: a key/object store for plugins' data, and the checkpoints in it."""

from protectflow.bank.checkpoint import Checkpoint
from protectflow.bank.checkpoint_store import CheckpointStore
from protectflow.bank.lease import Lease
from protectflow.bank.objectstore import Bank, default_bank_url, open_existing_bank
from protectflow.bank.record import STATUSES, allowed_transitions
from protectflow.bank.runs import RunRecord
from protectflow.bank.section import BankSection

__all__ = [
    "STATUSES",
    "Bank",
    "BankSection",
    "Checkpoint",
    "CheckpointStore",
    "Lease",
    "RunRecord",
    "allowed_transitions",
    "default_bank_url",
    "open_existing_bank",
]
