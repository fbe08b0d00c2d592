"""A bank object's header: what kind of value it holds, sealed under the bank's keyring
(the paths objects live under are :mod:`protectflow._paths`'s).

Every stored object records its
kind, so that a round trip gives back the type that was stored:

- ``b`` -- :class:`bytes`, returned as they were;
- ``s`` -- :class:`str`, stored as UTF-8;
- ``j`` -- a dict or list (or a JSON scalar: number, bool, None), stored
  as JSON (UTF-8, sorted keys).

and is sealed under the bank's keyring (:mod:`protectflow.bank.objects.crypto`): a
file that does not authenticate (dropped into a bank by another tool, or
edited) is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from protectflow.bank.objects.crypto import KIND_MARKER, Keyring
from protectflow.errors import BankError, CorruptObjectError

__all__ = ["KIND_BYTES", "KIND_JSON", "KIND_STR", "MARKER_AREAS", "Parts", "Value", "decode",
           "encode_body", "encode_parts"]

KIND_BYTES, KIND_STR, KIND_JSON = b"b", b"s", b"j"
#: Areas whose objects are empty markers by design (chunk refs, index
#: entries: their existence is their meaning, they are listed, not read): an
#: empty value there is stored as its area's marker (see
#: :mod:`protectflow.bank.objects.crypto`), the same bytes for every key.
MARKER_AREAS = ("refs/", "index/")

#: What a bank object may hold.
Value = Any  # bytes | str | dict[str, Any] | list[Any]


#: What a bank object is written from: its pieces, in order.
Parts = Sequence[bytes | memoryview]


def encode_parts(value: Value, key: str, keyring: Keyring) -> Parts:
    """Serialise ``value`` and seal it under bank key ``key`` (see
    :mod:`protectflow.bank.objects.crypto`), in pieces: bytes are compressed or
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
        raise CorruptObjectError(f"bank object {key!r} is corrupt: {err}", key=key) from err
