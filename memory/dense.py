"""In-memory dense search over per-user embedding matrices, plus a query-embedding cache.

Why: Chroma's filtered HNSW query plus embedding every query cost 400-600 ms p95 at
10,000 memories. Chroma stays the durable store (source of truth); the search path reads
one float32 matrix per user instead — a 10,000 x 384 matrix-vector product is well under
a millisecond — and a repeated query is embedded only once.

Vectors are L2-normalised, so cosine similarity (Chroma's "cosine" space) is the dot
product and rankings match the Chroma path. A matrix holds one user's rows only, so a
search can never see another user's memory (isolation by construction, as in BM25).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from chromadb.api.models.Collection import Collection

from assistant.errors import VectorStoreUnavailable

__all__ = ["QUERY_CACHE", "DenseIndex", "QueryEmbeddingCache", "chroma_dense", "embed_query", "load_vectors"]

DIM = 384


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, DIM)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


@dataclass
class _UserMatrix:
    ids: list[str] = field(default_factory=list)  # row -> source id
    rows: dict[str, int] = field(default_factory=dict)  # source id -> row
    matrix: np.ndarray = field(default_factory=lambda: np.empty((0, DIM), np.float32))
    n: int = 0  # rows in use; capacity grows geometrically so appends are amortised O(1)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        for sid, vec in zip(ids, _normalised(vectors), strict=True):
            row = self.rows.get(sid)
            if row is None:
                if self.n == len(self.matrix):
                    grown = np.empty((max(64, 2 * self.n), DIM), np.float32)
                    grown[:self.n] = self.matrix[:self.n]
                    self.matrix = grown
                row, self.n = self.n, self.n + 1
                self.rows[sid] = row
                self.ids.append(sid)
            self.matrix[row] = vec


class DenseIndex:
    """Per-user float32 matrices; ``search`` returns ``(source_id, cosine)`` best first."""

    def __init__(self) -> None:
        self._users: dict[str, _UserMatrix] = {}
        self._lock = threading.Lock()

    def loaded(self, user_id: str) -> bool:
        return user_id in self._users

    def load(self, user_id: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Replace this user's matrix (e.g. with what Chroma holds)."""
        user = _UserMatrix()
        user.upsert(ids, vectors)
        with self._lock:
            self._users[user_id] = user

    def upsert(self, user_id: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace rows of a loaded user (an unloaded user loads from Chroma later)."""
        with self._lock:
            user = self._users.get(user_id)
            if user is not None:
                user.upsert(ids, vectors)

    def remove(self, user_id: str, ids: AbstractSet[str]) -> None:
        """Drop rows of a loaded user. A new matrix replaces the old one, so a search
        holding the old snapshot stays consistent (deletes are rare; O(rows) is fine)."""
        with self._lock:
            user = self._users.get(user_id)
            if user is None or not any(i in user.rows for i in ids):
                return
            keep = [row for row, sid in enumerate(user.ids[:user.n]) if sid not in ids]
            fresh = _UserMatrix()
            fresh.upsert([user.ids[r] for r in keep], user.matrix[keep])
            self._users[user_id] = fresh

    def drop(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def nbytes(self, user_id: str) -> int:
        """What this user's matrix holds in memory (its capacity, not just rows in use)."""
        user = self._users.get(user_id)
        return 0 if user is None else int(user.matrix.nbytes)

    def scores(self, user_id: str, vector: np.ndarray) -> tuple[list[str], dict[str, int], np.ndarray]:
        """Cosine of every row of this user: (row ids, id -> row, scores by row); a row
        added after the snapshot may be in the mapping but beyond ``len(scores)``."""
        with self._lock:  # a consistent snapshot: rows are only ever added or overwritten
            user = self._users.get(user_id)
            if user is None or user.n == 0:
                return [], {}, np.zeros(0, np.float32)
            scores = user.matrix[:user.n] @ np.asarray(vector, dtype=np.float32)
            ids = user.ids[:user.n]
            rows = user.rows  # may gain rows later: callers check row < len(scores)
        return ids, rows, scores

    def search(self, user_id: str, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        ids, _, scores = self.scores(user_id, vector)
        if not len(scores) or n <= 0:
            return []
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties in insertion order
        return [(ids[i], float(scores[i])) for i in top]


def load_vectors(collection: Collection, user_id: str) -> tuple[list[str], np.ndarray]:
    """One user's source ids and stored embeddings, read from Chroma."""
    try:
        got = collection.get(where={"user_id": user_id}, include=["embeddings", "metadatas"])
    except Exception as exc:
        raise VectorStoreUnavailable(f"loading memory vectors failed: {exc}") from exc
    metas = got["metadatas"] or []
    embeddings = got["embeddings"]
    keep = [i for i, m in enumerate(metas) if m.get("user_id") == user_id]  # belt and braces
    if not keep:
        return [], np.empty((0, DIM), np.float32)
    vectors = np.asarray(embeddings, dtype=np.float32)[keep]
    return [str(metas[i]["source_id"]) for i in keep], vectors


def chroma_dense(collection: Collection, user_id: str, vector: np.ndarray, n: int) -> list[str]:
    """The same dense ranking served by Chroma's filtered query (the slow reference path)."""
    try:
        result = collection.query(query_embeddings=[vector], n_results=n,
                                  where={"user_id": user_id}, include=["metadatas"])
    except Exception as exc:
        raise VectorStoreUnavailable(f"memory search failed: {exc}") from exc
    metadatas = result["metadatas"]
    assert metadatas is not None  # asked for in `include`
    return [str(m["source_id"]) for m in metadatas[0] if m.get("user_id") == user_id]


class QueryEmbeddingCache:
    """Thread-safe LRU of query text -> embedding (read-only arrays)."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: dict[str, Future[np.ndarray]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, text: str, encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """The cached embedding of ``text``, else ``encode([text])[0]`` (then cached).
        One being computed ahead (``prefetch``) is waited for once it is running; one
        still queued is taken back and computed here (no waiting behind other turns')."""
        with self._lock:
            vec = self._data.get(text)
            if vec is not None:
                self._data.move_to_end(text)
                self.hits += 1
                return vec
            self.misses += 1
            ahead = self._pending.get(text)
        if ahead is not None and not ahead.cancel():
            try:
                return ahead.result()
            except Exception:  # noqa: BLE001 - computed here again, raising as it would
                pass
        return self._encode(text, encode)

    def _encode(self, text: str, encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        vec = np.array(encode([text])[0], dtype=np.float32)  # outside the lock: ~10 ms
        vec.setflags(write=False)
        with self._lock:
            self._data[text] = vec
            self._data.move_to_end(text)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return vec

    def prefetch(self, text: str, encode: Callable[[list[str]], np.ndarray],
                 executor: ThreadPoolExecutor) -> None:
        """Start embedding ``text`` on ``executor`` (unless known or under way), so it is
        ready when a search asks: it runs while the turn waits on the database."""
        with self._lock:
            if text in self._data or text in self._pending:
                return
            future: Future[np.ndarray] = Future()
            self._pending[text] = future

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                self._done(text, future)
                return
            try:
                future.set_result(self._encode(text, encode))
            except BaseException as exc:  # noqa: BLE001 - the asker re-raises it inline
                future.set_exception(exc)
            finally:
                self._done(text, future)

        executor.submit(run)

    def _done(self, text: str, future: Future[np.ndarray]) -> None:
        with self._lock:
            if self._pending.get(text) is future:
                del self._pending[text]

    def __len__(self) -> int:
        return len(self._data)


#: One process-wide cache, so a turn embeds its query once for every memory it searches
#: (episodes, facts): on two cores each MiniLM forward pass (~10 ms) counts.
QUERY_CACHE = QueryEmbeddingCache(2048)


def embed_query(text: str) -> np.ndarray:
    """The MiniLM embedding of a search query, shared through ``QUERY_CACHE``."""
    from memory.minilm import get_encoder

    return QUERY_CACHE.get(text, get_encoder().encode)


#: One thread computes queries ahead (``prefetch_query``): bounded, so a burst of turns
#: never adds more encoder work than one core's; a turn whose query is still queued
#: computes it itself.
_AHEAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-embedding")


def prefetch_query(text: str) -> None:
    """Start ``embed_query(text)`` in the background (the turn loop calls it as soon as
    the message passed its guards, so the embedding overlaps storing it); never raises."""
    try:
        from memory.minilm import get_encoder

        QUERY_CACHE.prefetch(text, lambda texts: get_encoder().encode(texts), _AHEAD)
    except Exception:  # noqa: BLE001 - the search embeds it itself (and reports why not)
        pass
