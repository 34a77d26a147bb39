"""The chunk queue and address check live in the runtime now (``agentrt.chunks``: ActionChunk is a wire
message, and one executor serves the sim and real robots); this module keeps the old import path."""

from __future__ import annotations

from agentrt.chunks import AddressCheck, ChunkQueue, QueuedChunk, chunk_sender

__all__ = ["AddressCheck", "ChunkQueue", "QueuedChunk", "chunk_sender"]
