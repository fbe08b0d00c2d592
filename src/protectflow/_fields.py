"""Reading a stored JSON document field by field, each field's type checked.

What a bank holds is untrusted input: a class read back from it (a
checkpoint's record, the plan and resource graph kept in it, a run record, a
journal) reads its JSON through :class:`Fields`, which refuses a missing
field or one of the wrong type with a message naming it. The class says what
error that is -- a corrupt bank object naming its key, a plan that is not
valid -- so the inner code can trust the types it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["Fail", "Fields", "within"]

T = TypeVar("T")
#: Makes the error that refuses a document, from why it is refused.
Fail = Callable[[str], Exception]


def within(fail: Fail, where: str) -> Fail:
    """``fail`` for a part of the document: its message starts with ``where``
    (``operations[2]``, ``resources[0]``)."""
    return lambda why: fail(f"{where}: {why}")


def _fits(value: object, kind: type) -> bool:
    if kind is float:  # a JSON number: 3 is as good as 3.0, a bool is not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind: type) -> str:
    return "JSON object" if kind is dict else kind.__name__


class Fields:
    """The fields of one JSON object read back, refused by ``fail`` at the
    first that is missing or of the wrong type.

    Parameters
    ----------
    data : object
        What was read; refused unless it is a JSON object.
    what : str
        What it should be (``record``, ``run record``), for the message.
    fail : callable
        Makes the error, from why the document is refused.

    Raises
    ------
    Exception
        What ``fail`` makes, if ``data`` is not a JSON object.
    """

    def __init__(self, data: object, what: str, fail: Fail) -> None:
        if not isinstance(data, dict):
            raise fail(f"it holds a {type(data).__name__}, not a {what}")
        self.data: dict[str, object] = data
        self.fail = fail

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type[T]) -> T:
        """The field ``name``, a ``kind`` (a float field takes any number).

        Raises
        ------
        Exception
            What ``fail`` makes, when it is missing or not a ``kind``.
        """
        value = self.data.get(name)
        if not _fits(value, kind):
            raise self.fail(f"{name!r} is not a {_kind_name(kind)}")
        return value  # type: ignore[return-value]  # checked by _fits

    def optional(self, name: str, kind: type[T]) -> T | None:
        """The field ``name``: a ``kind``, or None when it is null or absent.

        Raises
        ------
        Exception
            What ``fail`` makes, when it is there and not a ``kind``.
        """
        if self.data.get(name) is None:
            return None
        return self.get(name, kind)

    def default(self, name: str, kind: type[T], default: T) -> T:
        """The field ``name`` when it is there and not null, else ``default``.

        Raises
        ------
        Exception
            What ``fail`` makes, when it is there and not a ``kind``.
        """
        found = self.optional(name, kind)
        return default if found is None else found

    def strings(self, name: str) -> tuple[str, ...]:
        """The field ``name``, a list of strings (empty when absent).

        Raises
        ------
        Exception
            What ``fail`` makes, when it is not a list of strings.
        """
        items = self.default(name, list, [])
        if not all(isinstance(item, str) for item in items):
            raise self.fail(f"{name!r} is not a list of strings")
        return tuple(items)

    def version(self, expected: int | tuple[int, ...],
                unsupported: Callable[[object], Exception]) -> int:
        """Check the document's ``version``, once, before any other field:
        ``expected`` or one of them (a format that still reads its older
        versions). Returns the version found.

        Raises
        ------
        Exception
            What ``unsupported`` makes of the version found, when it is not
            ``expected``.
        """
        return self.version_in(expected if isinstance(expected, tuple) else (expected,),
                               unsupported)

    def version_in(self, accepted: tuple[int, ...],
                   unsupported: Callable[[object], Exception]) -> int:
        """Check that the document's ``version`` is one of ``accepted``
        (a reader of several versions), once, before any other field, and
        return it.

        Raises
        ------
        Exception
            What ``unsupported`` makes of the version found, when it is not
            one of ``accepted``.
        """
        found = self.data.get("version")
        if found not in accepted or not isinstance(found, int) or isinstance(found, bool):
            raise unsupported(found)
        return found
