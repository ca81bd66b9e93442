"""Chroma: embedded by default, a ``chroma run`` server when ``LASTMILE_CHROMA_URL`` is set.

What lives in it (``memory.retrieval``) carries ``user_id`` and ``session_id`` metadata,
and every query there filters on ``user_id``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from assistant.errors import VectorStoreUnavailable

__all__ = ["open_chroma"]


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
    except Exception as exc:  # chroma raises many unrelated types here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VectorStoreUnavailable(f"cannot reach Chroma at {target}: {reason}", url=target) from exc
    return client
