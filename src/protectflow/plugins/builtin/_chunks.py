"""The bank's chunk store, as the plugins use it: it lives in
:mod:`protectflow.bank.chunks.store` (gc and the checks need it below the plugins)."""

from __future__ import annotations

from protectflow.bank.chunks.store import ChunkStore, chunk_key, owner_id, sha256

__all__ = ["ChunkStore", "chunk_key", "owner_id", "sha256"]
