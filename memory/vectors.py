"""Chroma: embedded by default, a ``chroma run`` server when ``LASTMILE_CHROMA_URL`` is set.

Every item carries ``user_id`` and ``session_id`` metadata and every query filters on
``user_id`` — callers cannot even express a cross-user search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from assistant.errors import VectorStoreUnavailable
from memory.embedding_function import MiniLMEmbeddingFunction
from memory.store import StoredMessage

__all__ = ["open_chroma", "TurnIndex", "TurnHit"]


def open_chroma(path: Path, url: str | None = None) -> ClientAPI:
    """A client for the server at ``url`` or, without one, a persistent store at ``path``."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    target = url or str(path)
    try:
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError("expected http://host:port")
            client = chromadb.HttpClient(
                host=parsed.hostname, port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https", settings=chroma_settings,
            )
        else:
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        client.heartbeat()
    except Exception as exc:  # noqa: BLE001 - chroma raises many unrelated types here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VectorStoreUnavailable(f"cannot reach Chroma at {target}: {reason}", url=target) from exc
    return client


@dataclass(frozen=True)
class TurnHit:
    message_id: int
    session_id: str
    role: str
    text: str
    created_at: str
    distance: float


class TurnIndex:
    """Every stored turn, embedded, for recall by meaning."""

    def __init__(self, client: ClientAPI, *, collection: str = "turns",
                 embedding_function: MiniLMEmbeddingFunction | None = None) -> None:
        self.client = client
        self.collection = client.get_or_create_collection(
            collection, embedding_function=embedding_function or MiniLMEmbeddingFunction(),
            configuration={"hnsw": {"space": "cosine"}},
        )

    def add(self, messages: Sequence[StoredMessage]) -> None:
        """Upsert messages (idempotent: re-indexing after a crash is harmless)."""
        items = [m for m in messages if m.content.strip()]
        if not items:
            return
        try:
            self.collection.upsert(
                ids=[f"msg-{m.id}" for m in items],
                documents=[m.content for m in items],
                metadatas=[{
                    "user_id": m.user_id, "session_id": m.session_id, "role": m.role,
                    "message_id": m.id, "created_at": m.created_at.isoformat(),
                    "created_ts": m.created_at.timestamp(),
                } for m in items],
            )
        except Exception as exc:  # noqa: BLE001
            raise VectorStoreUnavailable(f"indexing failed: {exc}") from exc

    def search(self, user_id: str, query: str, *, k: int = 5,
               session_id: str | None = None) -> list[TurnHit]:
        """Nearest turns for this user only (optionally within one session)."""
        where: dict = {"user_id": user_id}
        if session_id is not None:
            where = {"$and": [{"user_id": user_id}, {"session_id": session_id}]}
        try:
            result = self.collection.query(query_texts=[query], n_results=k, where=where)
        except Exception as exc:  # noqa: BLE001
            raise VectorStoreUnavailable(f"search failed: {exc}") from exc
        hits = []
        for doc, meta, dist in zip(result["documents"][0], result["metadatas"][0],
                                   result["distances"][0], strict=True):
            hits.append(TurnHit(int(meta["message_id"]), str(meta["session_id"]), str(meta["role"]),
                                doc, str(meta["created_at"]), float(dist)))
        return hits

    def count(self, user_id: str) -> int:
        return len(self.collection.get(where={"user_id": user_id}, include=[])["ids"])
