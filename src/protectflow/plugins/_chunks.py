"""The bank's chunk store, as the plugins use it: it lives in
:mod:`protectflow.bank.chunks` (gc and the checks need it below the plugins)."""

from __future__ import annotations

from protectflow.bank.chunks import ChunkStore, chunk_key, owner_id, sha256

__all__ = ["ChunkStore", "chunk_key", "owner_id", "sha256"]
