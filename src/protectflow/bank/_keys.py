"""Bank keys and values: validation, escaping and the object header.

A key is a ``/``-separated relative path. Every stored object records its
kind, so that a round trip gives back the type that was stored:

- ``b`` -- :class:`bytes`, returned as they were;
- ``s`` -- :class:`str`, stored as UTF-8;
- ``j`` -- a dict or list (or a JSON scalar: number, bool, None), stored
  as JSON (UTF-8, sorted keys).

and is sealed under the bank's keyring (:mod:`protectflow.bank.crypto`): a
file that does not authenticate (dropped into a bank by another tool, or
edited) is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

from protectflow.bank.crypto import KIND_MARKER, Keyring
from protectflow.errors import BankError

#: The name prefix of a temporary file; listing skips it, keys may not use it.
TEMP_PREFIX = ".pftmp-"

KIND_BYTES, KIND_STR, KIND_JSON = b"b", b"s", b"j"
#: Keys the bank keeps for itself (its config and password entries).
RESERVED = ("config", "keys/")
#: Areas whose objects are empty markers by design (chunk refs, index
#: entries: their existence is their meaning, they are listed, not read): an
#: empty value there is stored as its area's marker (see
#: :mod:`protectflow.bank.crypto`), the same bytes for every key.
MARKER_AREAS = ("refs/", "index/")

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
    if key == "config" or key.startswith(RESERVED[1]):
        raise BankError(f"invalid bank key {key!r}: 'config' and 'keys/' hold the bank's "
                        "own key material")


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


def encode_parts(value: Value, key: str, keyring: Keyring) -> Parts:
    """Serialise ``value`` and seal it under bank key ``key`` (see
    :mod:`protectflow.bank.crypto`), in pieces: bytes are compressed or
    encrypted straight from the caller's buffer (a chunk of several MiB is
    not copied first).

    Raises
    ------
    BankError
        If ``value`` is of a type a bank cannot store.
    """
    kind, body = encode_body(value)
    if not body and key.startswith(MARKER_AREAS):
        return (keyring.marker(key.split("/", 1)[0]),)
    return keyring.seal(key, kind, body)


def encode_body(value: Value) -> tuple[bytes, bytes | memoryview]:
    """``(kind, body)`` of ``value``: its type tag and its serialised bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return KIND_BYTES, memoryview(value).cast("B")
    if isinstance(value, str):
        return KIND_STR, value.encode("utf-8")
    if value is None or isinstance(value, (dict, list, int, float)):
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as err:
            raise BankError(f"cannot store {type(value).__name__} as JSON: {err}") from err
        return KIND_JSON, text.encode("utf-8")
    raise BankError(f"cannot store a {type(value).__name__}: a bank object is bytes, "
                    "str, or JSON (a dict, a list, a number, a bool or None)")


def decode(data: bytes, key: str, keyring: Keyring) -> Value:
    """Authenticate and deserialise what :func:`encode_parts` wrote under ``key``.

    Raises
    ------
    BankError
        Naming ``key``, if the object fails authentication or does not parse.
    """
    if data[4:5] == KIND_MARKER and key.startswith(MARKER_AREAS):
        keyring.open_marker(key, key.split("/", 1)[0], data)
        return b""
    kind, body = keyring.open(key, data)
    try:
        if kind == KIND_BYTES:
            return body
        if kind == KIND_STR:
            return body.decode("utf-8")
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise BankError(f"bank object {key!r} is corrupt: {err}") from err
