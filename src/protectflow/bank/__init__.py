"""The bank: a key/object store for plugins' data, and the checkpoints in it."""

from protectflow.bank.catalog.checkpoint import Checkpoint
from protectflow.bank.catalog.lease import Lease
from protectflow.bank.catalog.record import (
    STATUSES,
    CheckpointRecord,
    CopiedFrom,
    allowed_transitions,
)
from protectflow.bank.catalog.runs import RunRecord
from protectflow.bank.catalog.store import CheckpointStore
from protectflow.bank.objects.section import BankSection
from protectflow.bank.objects.store import Bank, default_bank_url, open_existing_bank

__all__ = [
    "STATUSES",
    "Bank",
    "BankSection",
    "Checkpoint",
    "CheckpointRecord",
    "CheckpointStore",
    "CopiedFrom",
    "Lease",
    "RunRecord",
    "allowed_transitions",
    "default_bank_url",
    "open_existing_bank",
]
