"""Small helpers shared across the package."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

__all__ = ["now_iso", "paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block allocates many objects.

    Building a 400,000-hook DAG allocates over a million long-lived objects;
    with the collector on, its generational passes rescan them again and again
    and the build takes twice as long. Nothing built there forms a cycle.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def now_iso(now: float | None = None) -> str:
    """UTC time as ``2024-05-17T13:45:01.123456Z`` (sorts as it reads)."""
    ts = time.time() if now is None else now
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
