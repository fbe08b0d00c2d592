"""A plan's policies as pure data: which checkpoints to keep (restic's and
Karbor's retention rules, :mod:`.policy`), and when to run its operations
(:mod:`.schedules`), with the durations both are written in (:mod:`.durations`).

Nothing here reads a bank or a clock: :func:`decide` is a function of the
checkpoints' times, tags and statuses, and the time it is told it is.
"""

from __future__ import annotations

from protectflow.retention.decide import Candidate, Decision, Kept, decide
from protectflow.retention.durations import Span, parse_interval, parse_span
from protectflow.retention.policy import RetentionPolicy
from protectflow.retention.schedules import Schedule

__all__ = ["Candidate", "Decision", "Kept", "RetentionPolicy", "Schedule", "Span", "decide",
           "parse_interval", "parse_span"]
