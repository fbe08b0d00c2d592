"""What a checkpoint's tag may be."""

from __future__ import annotations

__all__ = ["TAG_MAX", "tag_problem"]

#: The longest tag.
TAG_MAX = 128


def tag_problem(tag: str) -> str | None:
    """Why ``tag`` cannot be a checkpoint's tag, or None if it can.

    A tag is 1 to :data:`TAG_MAX` printable characters without a comma (a
    comma joins tags in a ``--tag a,b`` filter, as restic's) or white space
    at its ends.
    """
    if not tag or len(tag) > TAG_MAX:
        return f"a tag has 1 to {TAG_MAX} characters; got {tag!r}"
    if "," in tag:
        return f"a tag may not hold a comma (`--tag a,b` means both a and b); got {tag!r}"
    if tag != tag.strip() or not tag.isprintable():
        return f"a tag is printable characters with no space at either end; got {tag!r}"
    return None
