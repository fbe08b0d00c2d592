"""A resource's statistics, as the report shows them: label/value pairs.

They come from both places the bank keeps them, the first winning where
both give one:

- the ``stats`` of the resource's status (a
  :class:`~protectflow.dag.outcomes.ResourceStats`, a mapping or an attrs
  class), when the records carry them;
- the outputs of the resource's hooks in the run's journal that are JSON
  objects, ``main`` first (the fs plugin returns its files, bytes, new
  chunks and the files it reused from the previous checkpoint, from
  whichever hook read the tree).

Only numbers are kept: a string, a list or an object of a plugin's
output is not a statistic. To show a new kind of
statistic, teach :func:`resource_stats` where it lives; to label or format
one, add it to :data:`LABELS` or :data:`SIZES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["DEDUP_KEYS", "LABELS", "SIZES", "dedup_summary", "human_size", "resource_stats"]

#: Statistics shown under another name than their key.
LABELS = {
    "files": "files", "entries": "entries", "bytes": "size of the files",
    "new_chunks": "new chunks", "new_bytes": "bytes added", "reused_files": "files reused",
    "packs": "packs",
    "files_new": "files new", "files_changed": "files changed",
    "files_unmodified": "files unmodified", "bytes_new": "bytes of new files",
    "bytes_changed": "bytes of changed files", "bytes_unmodified": "bytes of unmodified files",
    "bytes_read": "bytes read", "bytes_added": "bytes added to the bank",
}
#: Statistics that are sizes in bytes (shown as KiB, MiB...).
SIZES = frozenset({"bytes", "new_bytes", "bytes_read", "bytes_added", "size", "bytes_new",
                   "bytes_changed", "bytes_unmodified"})
#: Output fields that are not statistics (times are the timeline's).
_SKIP = frozenset({"started_at", "finished_at", "version"})
#: The statistics whose totals say what a protect deduplicated.
DEDUP_KEYS = ("files", "reused_files", "bytes", "new_bytes")


def _plain(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in mapping.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and str(k) not in _SKIP}


def raw_stats(status: object, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's statistics by key: its status's ``stats`` if it has
    some, else the numbers its hooks' ``outputs`` (hook -> output) hold,
    ``main``'s first (see the module)."""
    stats: Any = getattr(status, "stats", None)
    to_json = getattr(stats, "to_json", None)
    if to_json is not None:
        stats = to_json()
    elif attrs.has(type(stats)):
        stats = attrs.asdict(stats)
    found: dict[str, Any] = {}
    for hook in sorted(outputs, key=lambda h: h != "main"):
        output = outputs[hook]
        if isinstance(output, Mapping):
            found = {**_plain(output), **found}
    if isinstance(stats, Mapping) and stats:
        return {**found, **_plain(stats)}  # the status's typed stats win
    return found


def resource_stats(status: object, outputs: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """:func:`raw_stats` as ``(key, value)`` pairs, in the order of
    :data:`LABELS` then by key."""
    stats = raw_stats(status, outputs)
    order = {key: i for i, key in enumerate(LABELS)}
    return tuple(sorted(stats.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def label(key: str) -> str:
    """How the page names the statistic ``key``."""
    return LABELS.get(key, key.replace("_", " "))


def human_size(n: float) -> str:
    """``n`` bytes in a unit a person reads: ``1.5 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def shown(key: str, value: Any) -> str:
    """The statistic's value as the page shows it."""
    if key in SIZES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return human_size(value)
    return str(value)


def dedup_summary(all_stats: list[tuple[tuple[str, Any], ...]]) -> str | None:
    """What the run deduplicated, from the totals of :data:`DEDUP_KEYS`
    over every resource; None when no resource reports them."""
    totals: dict[str, float] = {}
    for stats in all_stats:
        for key, value in stats:
            if key in DEDUP_KEYS and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    if not totals:
        return None
    parts = []
    if "files" in totals:
        parts.append(f"{int(totals.get('reused_files', 0))} of {int(totals['files'])} files "
                     "unchanged and reused from the previous checkpoint")
    if "bytes" in totals and "new_bytes" in totals:
        parts.append(f"{human_size(totals['new_bytes'])} of new data added to the bank for "
                     f"{human_size(totals['bytes'])} of files")
    return "; ".join(parts) or None
