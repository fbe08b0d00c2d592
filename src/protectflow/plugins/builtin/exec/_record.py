"""What the exec plugin stores in a resource's bank section, read back once.

:class:`StreamManifest` (``manifest``, version 1): the standard output a
protect hook stored -- which hook, its size and SHA-256, and its
content-defined chunks with each one's length. It names no command and no
environment: those come from the operator's plan on every run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from protectflow._fields import Fields
from protectflow.errors import LocalPluginError

__all__ = ["MANIFEST_VERSION", "StreamManifest"]

MANIFEST_VERSION = 1
_DIGEST = re.compile(r"[0-9a-f]{16,128}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
HOOKS = ("prepare_begin", "prepare_finish", "main", "complete")
Json = dict[str, object]


@attrs.frozen(kw_only=True)
class StreamManifest:
    """A stored stream: ``chunks`` (of ``lengths`` bytes each), ``size``
    bytes in all, hashing to ``sha256``, from protect hook ``hook``."""

    hook: str
    size: int
    sha256: str
    chunks: tuple[str, ...]
    lengths: tuple[int, ...]
    taken_at: float
    version: int = MANIFEST_VERSION

    def to_json(self) -> Json:
        """The manifest's JSON, as :meth:`from_json` reads it."""
        return {"version": self.version, "hook": self.hook, "size": self.size,
                "sha256": self.sha256, "chunks": list(self.chunks),
                "lengths": list(self.lengths), "taken_at": self.taken_at}

    def renamed(self, names: Mapping[str, str]) -> StreamManifest:
        """This manifest with its chunks renamed (a copy to another bank)."""
        return attrs.evolve(self, chunks=tuple(names[d] for d in self.chunks))

    @classmethod
    def from_json(cls, data: object, *, what: str) -> StreamManifest:
        """The manifest ``data`` holds, its version checked first.

        Raises
        ------
        LocalPluginError
            If its version is not one this protectflow reads (saying to
            upgrade), or a field is missing, of the wrong type or inconsistent.
        """
        f = Fields(data, "stream manifest", lambda why: LocalPluginError(
            f"{what}: its stream manifest in the bank is not valid: {why}"))
        f.version_in((MANIFEST_VERSION,), lambda found: LocalPluginError(
            f"{what}: its stream manifest has format version {found!r}; this protectflow "
            f"reads version {MANIFEST_VERSION} -- upgrade it"))
        chunks = f.strings("chunks")
        if not all(_DIGEST.fullmatch(d) for d in chunks):
            raise f.fail("'chunks' is not a list of chunk names")
        lengths = f.get("lengths", list)
        if (len(lengths) != len(chunks)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                           for n in lengths)):
            raise f.fail("'lengths' is not one positive length per chunk")
        size, digest, hook = f.get("size", int), f.get("sha256", str), f.get("hook", str)
        if size != sum(lengths):
            raise f.fail(f"size {size} is not the sum of the chunks' lengths")
        if not _SHA256.fullmatch(digest):
            raise f.fail("'sha256' is not a SHA-256 in hex")
        if hook not in HOOKS:
            raise f.fail(f"hook {hook!r} is not one of {', '.join(HOOKS)}")
        return cls(hook=hook, size=size, sha256=digest, chunks=chunks,
                   lengths=tuple(lengths), taken_at=f.get("taken_at", float),
                   version=f.get("version", int))
