"""Bank objects sealed: compressed, encrypted and authenticated, bound to their key.

Every object a bank stores is sealed under the bank's :class:`Keyring`::

    b"PFE2" + kind + codec + nonce (12 bytes) + AES-256-GCM(payload) + tag (16 bytes)

- ``kind`` is the value's type (``b`` bytes, ``s`` str, ``j`` JSON), so a round
  trip gives back what was stored; ``codec`` is ``z`` when the payload is
  zstd-compressed, ``-`` when it is stored as is (compression, or
  compressing a sample of a large payload, did not shrink it).
- The associated data is the 6-byte header plus the object's bank key: an
  object copied under another key (another checkpoint's record, another
  chunk's name) fails authentication there, and so does a header edited to
  another kind or codec.
- Nonces are random (96 bits): under one key, the chance of a repeat stays
  below 2^-32 for the first 2^32 objects, far beyond a bank's life.
- Decompression runs only on authenticated bytes, so no one without the key
  can make a reader inflate a bomb; and it stops at what the object's kind
  may hold (:mod:`protectflow.bank.objects._limits`), so not even a key
  holder's frame can exhaust a reader's memory.

Markers -- the empty objects whose existence is their whole meaning (chunk
refs, index entries; see :data:`protectflow.bank.objects._header.MARKER_AREAS`) -- are
``b"PFE2e-"`` plus a 16-byte keyed hash of their area (``refs``, ``index``):
identical within an area, so that a local bank can make them hard links to
one file (see :mod:`protectflow.bank.objects._backend`), unforgeable without the
key, and refused anywhere outside their area, so no marker can stand in for
an object that holds data. Copying one within its area makes a marker
appear (a chunk kept longer, an index entry naming a record that is then
authenticated on its own) and nothing more.

A chunk's name is a keyed hash of its plaintext (HMAC-SHA256 under the id
key), so identical data dedups while the names say nothing about content to
anyone without the key.

The master key (32 random bytes) never seals anything itself: HKDF-SHA256
derives the encryption key, the id key and the fingerprint from it. A
:class:`Keyring` pickles as its derived keys only (a dask worker gets them in
the task message, in memory), never as the master key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import cast

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protectflow.bank.objects._limits import max_plain_size
from protectflow.errors import BankError, CorruptObjectError

__all__ = ["MAGIC", "MASTER_KEY_LEN", "Keyring"]

MAGIC = b"PFE2"
HEADER_LEN = 6
NONCE_LEN = 12
TAG_LEN = 16
#: The smallest sealed object: header, nonce and tag around an empty payload.
OVERHEAD = HEADER_LEN + NONCE_LEN + TAG_LEN
MASTER_KEY_LEN = 32
CODEC_RAW, CODEC_ZSTD = b"-", b"z"
KINDS = (b"b", b"s", b"j")
KIND_MARKER = b"e"
#: zstd level 1: on a pack of small files (text and binary) it runs at about
#: twice the speed of level 3 (zstd's default) for 2-3 % more bytes, and
#: compression is what a first protect of such files spends most on after
#: hashing.
ZSTD_LEVEL = 1
#: Below this size compression rarely pays for its frame header.
_MIN_COMPRESS = 64
#: Compress only if it saves at least 1/32 of the size.
_MIN_SAVING = 32
#: Bodies above this size are probed first: :data:`_PROBES` slices of
#: :data:`_PROBE_LEN` bytes spread over the body are compressed together, and
#: the body is compressed whole only if they shrink. On data that does not
#: compress (random bytes, media, archives -- most of a tree's bytes) zstd
#: takes longer than AES-GCM and the chunk's HMAC together (about 6 ms
#: against 2.5 ms per 4 MiB here); the probe costs 1/64 of that.
_PROBE_ABOVE = 256 << 10
_PROBES, _PROBE_LEN = 8, 8 << 10
#: A frame that does not declare its size is inflated this much at a time.
_INFLATE_STEP = 1 << 20


def derive(master: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for ``purpose`` derived from the master key (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"protectflow bank v2 " + purpose).derive(master)


class Keyring:
    """The keys that seal a bank's objects and name its chunks.

    Parameters
    ----------
    encryption_key, id_key, mac_key : bytes
        32 bytes each; :meth:`from_master` derives them: objects are sealed
        under the first, chunks named under the second, markers and the
        config authenticated under the third.
    fingerprint : str
        The key's fingerprint, shown by ``protectflow key``.
    """

    def __init__(self, encryption_key: bytes, id_key: bytes, mac_key: bytes,
                 fingerprint: str) -> None:
        self._aead = AESGCM(encryption_key)
        self._encryption_key = encryption_key
        self._id_key = id_key
        self._mac_key = mac_key
        self.fingerprint = fingerprint
        self._markers: dict[str, bytes] = {}
        # zstd contexts are not thread-safe: one per call is cheap enough
        # (a context costs microseconds next to a chunk's milliseconds).

    @classmethod
    def from_master(cls, master: bytes) -> Keyring:
        """The keyring of a master key.

        Raises
        ------
        BankError
            If ``master`` is not 32 bytes.
        """
        if len(master) != MASTER_KEY_LEN:
            raise BankError(f"a bank master key is {MASTER_KEY_LEN} bytes, not {len(master)}")
        return cls(derive(master, b"encryption"), derive(master, b"id"),
                   derive(master, b"mac"), fingerprint_of(master))

    def __reduce__(self) -> tuple[object, ...]:
        # The derived keys travel (to a dask worker, in memory); the master
        # key, which could unwrap nothing more but would outlive a rotation
        # of these, does not.
        return (Keyring, (self._encryption_key, self._id_key, self._mac_key, self.fingerprint))

    def __repr__(self) -> str:
        return f"Keyring(fingerprint={self.fingerprint!r})"

    # -- names --------------------------------------------------------------------
    def chunk_id(self, data: bytes | bytearray | memoryview) -> str:
        """The name of a chunk holding ``data``: its keyed hash, in hex."""
        return hmac.digest(self._id_key, data, "sha256").hex()

    def mac(self, data: bytes) -> str:
        """A keyed hash of ``data`` for authenticating small clear texts."""
        return hmac.digest(self._mac_key, b"text\0" + data, "sha256").hex()

    def marker(self, area: str) -> bytes:
        """The stored form of every marker (empty object) of ``area``."""
        found = self._markers.get(area)
        if found is None:
            tag = hmac.digest(self._mac_key, b"marker\0" + area.encode("utf-8"), "sha256")
            found = self._markers[area] = MAGIC + KIND_MARKER + CODEC_RAW + tag[:TAG_LEN]
        return found

    def open_marker(self, key: str, area: str, data: bytes) -> None:
        """Check that ``data`` is a marker of ``area``.

        Raises
        ------
        BankError
            Naming ``key``, if it is not.
        """
        if not hmac.compare_digest(data, self.marker(area)):
            raise self._failed(key, f"it is not a marker of {area!r}")

    # -- objects ------------------------------------------------------------------
    def seal(self, key: str, kind: bytes, body: bytes | bytearray | memoryview,
             ) -> Sequence[bytes]:
        """The stored form of ``body`` under bank key ``key``, in parts."""
        codec, payload = CODEC_RAW, body
        if len(body) >= _MIN_COMPRESS and _worth_compressing(body):
            packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
            if _saves(len(packed), len(body)):
                codec, payload = CODEC_ZSTD, packed
        header = MAGIC + kind + codec
        nonce = os.urandom(NONCE_LEN)
        sealed = self._aead.encrypt(nonce, payload, header + key.encode("utf-8"))
        return (header + nonce, sealed)

    def open(self, key: str, data: bytes) -> tuple[bytes, bytes]:
        """``(kind, body)`` of a stored object, authenticated.

        Raises
        ------
        BankError
            Naming ``key``, if the object does not authenticate under this
            keyring and key: corrupt, tampered with, moved from another key,
            or sealed under another bank's key.
        """
        header, nonce, sealed = self._split(key, data)
        try:
            payload = self._aead.decrypt(nonce, sealed, header + key.encode("utf-8"))
        except InvalidTag:
            raise self._failed(key, "its authentication tag does not match") from None
        kind, body = self._unpack(key, header, payload)
        return kind, cast(bytes, body)  # decrypted or decompressed: bytes either way

    def open_into(self, key: str, data: bytes | bytearray | memoryview, out: bytearray,
                  ) -> tuple[bytes, bytes | memoryview]:
        """:meth:`open`, decrypting into ``out`` (at least ``len(data)``
        bytes): no allocation per object for a reader that reuses its
        buffers. The body is a view of ``out`` (a new ``bytes`` if it was
        compressed), valid until ``out`` is used again.

        Raises
        ------
        BankError
            Naming ``key``, as :meth:`open`.
        """
        header, nonce, sealed = self._split(key, data)
        plain = memoryview(out)[:len(sealed) - TAG_LEN]
        try:
            self._aead.decrypt_into(nonce, sealed, header + key.encode("utf-8"), plain)
        except InvalidTag:
            raise self._failed(key, "its authentication tag does not match") from None
        return self._unpack(key, header, plain)

    def _split(self, key: str, data: bytes | bytearray | memoryview,
               ) -> tuple[bytes, bytes, memoryview]:
        """``(header, nonce, ciphertext and tag)`` of a sealed object."""
        header = bytes(data[:HEADER_LEN])
        if len(data) < OVERHEAD or header[:4] != MAGIC:
            raise self._failed(key, "it is not a sealed object of bank format 2")
        nonce = bytes(data[HEADER_LEN:HEADER_LEN + NONCE_LEN])
        return header, nonce, memoryview(data)[HEADER_LEN + NONCE_LEN:]

    def _unpack(self, key: str, header: bytes, payload: bytes | memoryview,
                ) -> tuple[bytes, bytes | memoryview]:
        """``(kind, body)`` of an authenticated payload: decompressed if it was."""
        # The header is authenticated now; these can only fail for a writer's bug.
        kind, codec = header[4:5], header[5:6]
        if kind not in KINDS or codec not in (CODEC_RAW, CODEC_ZSTD):
            raise self._failed(key, f"unknown kind {kind!r} or codec {codec!r}")
        if codec == CODEC_ZSTD:
            payload = self._inflate(key, payload)
        return kind, payload

    def _inflate(self, key: str, payload: bytes | memoryview) -> bytes:
        """The decompressed ``payload`` of ``key``, never more than its kind may
        hold (:func:`~protectflow.bank.objects._limits.max_plain_size`): a frame
        that claims more, or yields more, is refused before memory goes to it."""
        limit = max_plain_size(key)
        try:
            declared = zstandard.frame_content_size(payload)
            if declared > limit:
                raise self._failed(key, f"its compressed payload claims {declared} bytes, "
                                   f"more than the {limit} such an object may hold")
            if declared >= 0:  # our writer always declares it: one exact allocation
                inflated: bytes = zstandard.ZstdDecompressor().decompress(payload)
                return inflated
            return self._inflate_streamed(key, payload, limit)
        except zstandard.ZstdError as err:
            raise self._failed(key, f"its compressed payload is damaged: {err}") from err

    def _inflate_streamed(self, key: str, payload: bytes | memoryview, limit: int) -> bytes:
        """A frame of no declared size, read piece by piece up to ``limit``."""
        pieces: list[bytes] = []
        size = 0
        with zstandard.ZstdDecompressor().stream_reader(payload) as reader:
            while piece := reader.read(min(_INFLATE_STEP, limit + 1 - size)):
                pieces.append(piece)
                size += len(piece)
                if size > limit:
                    raise self._failed(key, f"its compressed payload expands past the "
                                       f"{limit} bytes such an object may hold")
        return b"".join(pieces)

    @staticmethod
    def _failed(key: str, why: str) -> CorruptObjectError:
        return CorruptObjectError(f"bank object {key!r} failed authentication: {why} (it is "
                                  "damaged, was tampered with or moved, or belongs to another "
                                  "bank); nothing was read from it", key=key)


def _saves(packed: int, size: int) -> bool:
    return packed <= size - size // _MIN_SAVING


def _worth_compressing(body: bytes | bytearray | memoryview) -> bool:
    """Whether ``body`` may compress: always for a small one; for a large
    one, whether a sample of it compresses (a few % of the whole's cost)."""
    size = len(body)
    if size <= _PROBE_ABOVE:
        return True
    view = memoryview(body)
    step = (size - _PROBE_LEN) // (_PROBES - 1)
    sample = b"".join(view[i * step:i * step + _PROBE_LEN] for i in range(_PROBES))
    packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(sample)
    return _saves(len(packed), len(sample))


def fingerprint_of(master: bytes) -> str:
    """A master key's public fingerprint: 16 hex digits, grouped by four."""
    digest = hashlib.sha256(derive(master, b"fingerprint")).hexdigest()[:16]
    return "-".join(digest[i:i + 4] for i in range(0, 16, 4))
