"""Bank keys and values: validation, escaping and the object header.

A key is a ``/``-separated relative path. Every stored object starts with a
6-byte header, ``b"PFB1"`` + a kind byte + ``b"\\n"``, so that a round trip
gives back the type that was stored:

- ``b`` -- :class:`bytes`, returned as they were;
- ``s`` -- :class:`str`, stored as UTF-8;
- ``j`` -- a dict or list (or a JSON scalar: number, bool, None), stored
  as JSON (UTF-8, sorted keys).

A file without the header (dropped into a local bank by another tool) reads
as bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

from protectflow.errors import BankError

#: The name prefix of a temporary file; listing skips it, keys may not use it.
TEMP_PREFIX = ".pftmp-"

MAGIC = b"PFB1"
HEADER_LEN = 6
KIND_BYTES, KIND_STR, KIND_JSON = b"b", b"s", b"j"
BYTES_HEADER = MAGIC + KIND_BYTES + b"\n"

_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Segments that do not start with '.' and are not empty: nothing more to check.
_PLAIN_SEGMENTS = re.compile(r"[^./][^/]*(?:/[^./][^/]*)*\Z")

#: What a bank object may hold.
Value = Any  # bytes | str | dict[str, Any] | list[Any]


def validate_key(key: object, *, what: str = "key") -> str:
    """Return ``key`` if it is a valid bank key, else raise :class:`BankError`.

    The rules: a non-empty ``str``; relative (no leading ``/``); no empty
    segment (``a//b``, a trailing ``/``); no ``.`` or ``..`` segment; no
    backslash; no control character; no segment starting with ``.pftmp-``
    (reserved for temporary files).
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


#: What a bank object is written from: its pieces, in order.
Parts = Sequence[bytes | memoryview]


def encode_parts(value: Value) -> Parts:
    """Serialise ``value`` with its header, in pieces: bytes are not copied
    behind their header (a chunk of several MiB is written from the caller's
    buffer)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (BYTES_HEADER, memoryview(value).cast("B"))
    return (_encode_text(value),)


def _encode_text(value: Value) -> bytes:
    if isinstance(value, str):
        return MAGIC + KIND_STR + b"\n" + value.encode("utf-8")
    if value is None or isinstance(value, (dict, list, int, float)):
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise BankError(f"cannot store {type(value).__name__} as JSON: {err}") from err
        return MAGIC + KIND_JSON + b"\n" + text.encode("utf-8")
    raise BankError(f"cannot store a {type(value).__name__}: a bank object is bytes, "
                    "str, or JSON (a dict, a list, a number, a bool or None)")


def decode(data: bytes, key: str) -> Value:
    """Deserialise what :func:`encode_parts` wrote; ``key`` names it in errors."""
    if len(data) < HEADER_LEN or data[:4] != MAGIC or data[5:6] != b"\n":
        return data
    kind, body = data[4:5], data[HEADER_LEN:]
    try:
        if kind == KIND_BYTES:
            return body
        if kind == KIND_STR:
            return body.decode("utf-8")
        if kind == KIND_JSON:
            return json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise BankError(f"bank object {key!r} is corrupt: {err}") from err
    raise BankError(f"bank object {key!r} has an unknown kind {kind!r}")
