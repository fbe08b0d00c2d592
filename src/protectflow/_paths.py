"""Object paths in a bank: what a path may be, and how a name is escaped into
one of its segments.

A path is a ``/``-separated relative name. Both the bank (which stores objects
under paths) and the compiler (which names a resource's place in a bank before
any bank is opened) need these rules, so they live below both.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from protectflow.errors import BankError

__all__ = ["RESERVED", "TEMP_PREFIX", "check_writable_key", "segment", "unsegment",
           "validate_key", "validate_prefix"]

#: The name prefix of a temporary file; listing skips it, paths may not use it.
TEMP_PREFIX = ".pftmp-"
#: Paths the bank keeps for itself (its config, password entries and the
#: mark of a key rotation in progress).
RESERVED = ("config", "keys/", "rotation")

_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Segments that do not start with '.' and are not empty: nothing more to check.
_PLAIN_SEGMENTS = re.compile(r"[^./][^/]*(?:/[^./][^/]*)*\Z")


def validate_key(key: object, *, what: str = "key") -> str:
    """Return ``key`` if it is a valid bank key, else raise :class:`BankError`.

    The rules: a non-empty ``str``; relative (no leading ``/``); no empty
    segment (``a//b``, a trailing ``/``); no ``.`` or ``..`` segment; no
    backslash; no control character; no segment starting with ``.pftmp-``
    (reserved for temporary files); valid Unicode (no lone surrogate).
    """
    if not isinstance(key, str) or not key:
        raise BankError(f"invalid bank {what} {key!r}: it must be a non-empty string")
    if key.startswith("/"):
        raise BankError(f"invalid bank {what} {key!r}: absolute paths are not allowed; "
                        "drop the leading '/'")
    if "\\" in key:
        raise BankError(f"invalid bank {what} {key!r}: backslashes are not allowed; use '/'")
    bad = _CONTROL.search(key)
    if bad is not None:
        raise BankError(f"invalid bank {what} {key!r}: control character {bad.group()!r} "
                        "is not allowed")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: nothing can name it
            raise BankError(f"invalid bank {what} {key!r}: it is not valid Unicode (a lone "
                            "surrogate); use valid UTF-8 text") from None
    if _PLAIN_SEGMENTS.match(key):  # the common case: no segment can break a rule
        return key
    for segment in key.split("/"):
        if not segment:
            raise BankError(f"invalid bank {what} {key!r}: empty path segments "
                            "('//' or a trailing '/') are not allowed")
        if segment in (".", ".."):
            raise BankError(f"invalid bank {what} {key!r}: '{segment}' segments "
                            "are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise BankError(f"invalid bank {what} {key!r}: segments starting with "
                            f"{TEMP_PREFIX!r} are reserved for temporary files")
    return key


def check_writable_key(key: str) -> None:
    """Raise :class:`BankError` unless ``key`` is valid and not the bank's own."""
    validate_key(key)
    if key in ("config", "rotation") or key.startswith("keys/"):
        raise BankError(f"invalid bank key {key!r}: 'config', 'keys/' and 'rotation' hold "
                        "the bank's own key material")


def validate_prefix(prefix: str | None) -> str:
    """Return a listing prefix ('' for None) if a key could start with it."""
    if prefix is None or prefix == "":
        return ""
    # A prefix may stop mid-segment or after a '/': it is valid when some key
    # extends it, and 'x' is the simplest extension.
    validate_key(prefix + "x", what=f"prefix {prefix!r} (checked as")
    return prefix


def segment(name: str) -> str:
    """Escape ``name`` (a resource key, an id) into one valid key segment."""
    if not name:
        raise BankError("cannot use an empty name as a bank key segment")
    quoted = quote(name, safe="#:@=+,;!$&'()*")
    if quoted.startswith("."):  # '.', '..' and '.pftmp-' would be refused
        quoted = "%2E" + quoted[1:]
    return quoted


def unsegment(quoted: str) -> str:
    """Invert :func:`segment`."""
    return unquote(quoted)
