"""What a resource id and a plan name may be: what every operation can store
and restore, checked when the plan is read, before anything is written.

A resource's key ``TYPE#ID`` names its record and its data in a checkpoint
(``resources/KEY``, ``data/resources/KEY/``), escaped into one bank key
segment (:func:`protectflow._paths.segment`), and the local plugins
restore a resource to ``TARGET/ID``. A plan's name names its index folder
(``index/by-plan/NAME/``), escaped the same way. Hence the rules:

- an id is a file name: not ``.`` or ``..``, no ``/``;
- no control character (NUL included) in an id, a type or a plan name: no
  file system or terminal takes them as they are;
- no lone surrogate (JSON's ``"\\ud800"``): it is not text any file system or
  bank can hold;
- once escaped, a key or a plan name is at most :data:`MAX_SEGMENT_BYTES`
  bytes, the longest file name of common file systems, so that a local bank
  can hold it.
"""

from __future__ import annotations

import re

from protectflow._paths import segment
from protectflow.dag.model import Resource

__all__ = ["MAX_SEGMENT_BYTES", "plan_name_problems", "resource_problems"]

#: The longest a key or plan name may be once escaped into a bank key segment:
#: NAME_MAX of ext4, xfs, btrfs, tmpfs and most others.
MAX_SEGMENT_BYTES = 255

# Characters segment() leaves as they are: a key made of them alone is its own
# escaped form, and its length is all there is to check (the common case).
_PLAIN = re.compile(r"[A-Za-z0-9_.~:#@=+,;!$&'()*-]+\Z")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:50] + "...")


def _text_problems(text: str, what: str) -> list[str]:
    problems = []
    bad = _CONTROL.search(text)
    if bad is not None:
        problems.append(f"{what} holds the control character "
                        f"{bad.group()!r}; control characters (NUL, newline, tab...) "
                        "are not allowed")
    if _SURROGATE.search(text):
        problems.append(f"{what} is not valid Unicode text (a lone "
                        "surrogate such as '\\ud800')")
        return problems  # nothing can escape it
    size = len(segment(text).encode())
    if size > MAX_SEGMENT_BYTES:
        problems.append(f"{what} is {size:,} bytes once escaped for the "
                        f"bank, more than the {MAX_SEGMENT_BYTES} a bank key segment may "
                        "have; make it shorter")
    return problems


def resource_problems(resource: Resource) -> list[str]:
    """What is wrong with ``resource``'s type and id, as messages naming the
    resource and the rule (none for a good resource)."""
    key, rid = resource.key, resource.id
    if len(key) <= MAX_SEGMENT_BYTES and _PLAIN.match(key) and rid not in (".", ".."):
        return []
    problems = []
    if rid in (".", ".."):
        problems.append(f"the id {rid!r} is not allowed: an id names the resource's "
                        "file or folder when restored")
    if "/" in rid:
        problems.append("the id holds a '/': an id names the resource's file or folder "
                        "when restored, so it may not have one")
    problems += _text_problems(key, "its key")
    return [f"resource {_shown(key)}: {p}" for p in problems]


def plan_name_problems(name: str) -> list[str]:
    """What is wrong with a plan's name (none for a good name)."""
    if len(name) <= MAX_SEGMENT_BYTES and _PLAIN.match(name):
        return []
    return _text_problems(name, f"the plan's name {_shown(name)}")
