"""Conversation memory: storage, vector index and the local MiniLM embeddings.

Exports resolve lazily so ``import memory.models`` (e.g. from migrations)
does not pay for numpy, tokenizers or chromadb.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Accounts",
    "ConversationStore",
    "Corpus",
    "FactMemory",
    "HybridRetriever",
    "JobQueue",
    "JobWorker",
    "MiniLMEmbeddingFunction",
    "MiniLMEncoder",
    "ReviewQueue",
    "SessionInfo",
    "StoredMessage",
    "TurnIndexer",
    "TurnMemory",
    "get_encoder",
    "open_chroma",
    "open_engine",
]

_EXPORTS = {
    "Accounts": "memory.accounts",
    "Corpus": "memory.corpus",
    "FactMemory": "memory.facts",
    "JobQueue": "memory.jobs",
    "JobWorker": "memory.jobs",
    "ReviewQueue": "memory.review",
    "ConversationStore": "memory.store",
    "SessionInfo": "memory.store",
    "StoredMessage": "memory.store",
    "open_engine": "memory.db",
    "HybridRetriever": "memory.retrieval",
    "TurnMemory": "memory.recall",
    "open_chroma": "memory.vectors",
    "TurnIndexer": "memory.indexer",
    "MiniLMEncoder": "memory.minilm",
    "get_encoder": "memory.minilm",
    "MiniLMEmbeddingFunction": "memory.embedding_function",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'memory' has no attribute {name!r}")
