"""The scheduler's time: the real clock, or one a test drives."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol

__all__ = ["Clock", "RealClock"]


class Clock(Protocol):
    """What the scheduler asks of time."""

    def now(self) -> dt.datetime:
        """The time it is, timezone-aware."""
        ...

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds``, or until ``stop`` is set."""
        ...


class RealClock:
    """The system's clock, in the local time zone (where cron expressions are read)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now().astimezone()

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(max(0.0, seconds))
