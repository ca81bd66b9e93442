"""Storage for cached replies: SQL rows (exact lookups, TTL, hit counts) and a Chroma
collection of the questions (semantic lookups), plus the lookup log for hit rates.

Every read filters on ``user_id`` — in SQL and in Chroma — and a semantic candidate is
re-read from SQL with the same user and context fingerprint before it is served, so a
cached answer never crosses users even if one index were wrong.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, delete, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from memory.models import CacheEntry, CacheLookup, utcnow

__all__ = ["COLLECTION", "CachedReply", "ResponseCache", "cache_stats"]

log = logging.getLogger(__name__)
COLLECTION = "reply_cache"
PURGE_EVERY = 200  # writes between sweeps of expired entries


@dataclass(frozen=True)
class CachedReply:
    """A reply fit to serve again, and how it was found."""

    id: int
    reply: str
    provider: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    kind: str = "exact"
    similarity: float = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


class ResponseCache:
    """Cached replies on the conversation database; ``chroma`` (a client) enables the
    semantic side."""

    def __init__(self, engine: Engine, *, ttl_s: float, chroma: Any = None) -> None:
        self.engine, self.ttl_s, self._client = engine, ttl_s, chroma
        self._collection: Any = None
        self._lock = threading.Lock()
        self._writes = 0

    @property
    def collection(self) -> Any:
        if self._collection is None:
            if self._client is None:
                raise RuntimeError("this cache has no Chroma client: semantic lookups are off")
            from memory.embedding_function import MiniLMEmbeddingFunction

            self._collection = self._client.get_or_create_collection(
                COLLECTION, embedding_function=MiniLMEmbeddingFunction(),
                configuration={"hnsw": {"space": "cosine"}})
        return self._collection

    def _row(self, stmt: Any, kind: str, similarity: float = 1.0) -> CachedReply | None:
        with self.engine.begin() as conn:
            row = conn.execute(stmt.where(CacheEntry.expires_at > _now())).first()
            if row is None:
                return None
            conn.execute(update(CacheEntry).where(CacheEntry.id == row.id)
                         .values(hits=CacheEntry.hits + 1))
        return CachedReply(row.id, row.reply, row.provider, row.finish_reason, row.prompt_tokens,
                           row.completion_tokens, kind, similarity)

    def exact(self, user_id: str, key: str) -> CachedReply | None:
        """The unexpired entry for exactly this request, for this user only."""
        return self._row(select(CacheEntry).where(CacheEntry.user_id == user_id,
                                                  CacheEntry.key == key), "exact")

    def similar(self, user_id: str, context_fp: str, model: str, prompt: str, *,
                threshold: float, accept: Any = None) -> CachedReply | None:
        """The closest cached question of this user, with the same context and model, at
        cosine similarity >= ``threshold`` (and passing ``accept(prompt, cached)``)."""
        where = {"$and": [{"user_id": user_id}, {"context_fp": context_fp}, {"model": model},
                          {"expires_at": {"$gt": _now().timestamp()}}]}
        result = self.collection.query(query_texts=[prompt], n_results=3, where=where,
                                       include=["metadatas", "distances", "documents"])
        for meta, distance, cached in zip(result["metadatas"][0], result["distances"][0],
                                          result["documents"][0], strict=True):
            similarity = 1.0 - float(distance)
            if similarity < threshold or meta.get("user_id") != user_id:
                continue
            if accept is not None and not accept(prompt, cached):
                continue
            found = self._row(select(CacheEntry).where(
                CacheEntry.id == int(meta["entry_id"]), CacheEntry.user_id == user_id,
                CacheEntry.context_fp == context_fp), "semantic", similarity)
            if found is not None:
                return found
        return None

    def put(self, *, user_id: str, key: str, context_fp: str, model: str, prompt: str, reply: str,
            provider: str, finish_reason: str | None, prompt_tokens: int, completion_tokens: int,
            semantic: bool) -> int | None:
        """Store (or refresh) one entry; returns its id. A racing writer's entry wins."""
        now = _now()
        expires_at = now + timedelta(seconds=self.ttl_s)
        values = {"user_id": user_id, "key": key, "context_fp": context_fp, "model": model,
                  "prompt": prompt, "reply": reply, "provider": provider,
                  "finish_reason": finish_reason, "prompt_tokens": prompt_tokens,
                  "completion_tokens": completion_tokens, "hits": 0, "created_at": now,
                  "expires_at": expires_at}
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(CacheEntry).where(CacheEntry.user_id == user_id,
                                                      CacheEntry.key == key))
                entry_id = conn.execute(insert(CacheEntry).values(**values)
                                        .returning(CacheEntry.id)).scalar_one()
        except IntegrityError:
            return None
        if semantic:
            self.collection.upsert(ids=[f"cache-{entry_id}"], documents=[prompt], metadatas=[{
                "user_id": user_id, "context_fp": context_fp, "model": model, "entry_id": entry_id,
                "expires_at": expires_at.timestamp()}])
        with self._lock:
            self._writes += 1
            sweep = self._writes % PURGE_EVERY == 0
        if sweep:
            self.purge()
        return entry_id

    def purge(self, *, user_id: str | None = None, expired_only: bool = True) -> int:
        """Delete expired entries (or all of them, optionally for one user); returns how many."""
        conditions = [CacheEntry.expires_at <= _now()] if expired_only else []
        if user_id is not None:
            conditions.append(CacheEntry.user_id == user_id)
        with self.engine.begin() as conn:
            ids = list(conn.scalars(select(CacheEntry.id).where(and_(true(), *conditions))))
            if ids:
                conn.execute(delete(CacheEntry).where(CacheEntry.id.in_(ids)))
        if ids and self._client is not None:
            try:
                self.collection.delete(ids=[f"cache-{i}" for i in ids])
            except Exception:  # orphans are harmless: the SQL re-check rejects them
                log.warning("could not delete %d cached questions from Chroma", len(ids), exc_info=True)
        return len(ids)

    def record(self, user_id: str | None, kind: str, outcome: str, saved_tokens: int = 0) -> None:
        """One lookup in the log hit rates come from."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(insert(CacheLookup).values(
                user_id=user_id, day=now.astimezone(UTC).date().isoformat(), kind=kind,
                outcome=outcome, saved_tokens=saved_tokens, created_at=now))


def cache_stats(engine: Engine, *, user_id: str | None = None, since: str | None = None) -> dict:
    """Lookups, hits (exact / semantic), misses, bypasses, hit rate and tokens saved.

    ``hit_rate`` is hits / (hits + misses); bypassed turns never looked, so they don't count.
    """
    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    stmt = select(count(and_(CacheLookup.outcome == "hit", CacheLookup.kind == "exact")),
                  count(and_(CacheLookup.outcome == "hit", CacheLookup.kind == "semantic")),
                  count(CacheLookup.outcome == "miss"), count(CacheLookup.outcome == "bypass"),
                  func.coalesce(func.sum(CacheLookup.saved_tokens), 0))
    if user_id is not None:
        stmt = stmt.where(CacheLookup.user_id == user_id)
    if since is not None:
        stmt = stmt.where(CacheLookup.day >= since)
    with engine.connect() as conn:
        exact, semantic, misses, bypassed, saved = (int(v or 0) for v in conn.execute(stmt).one())
    hits = exact + semantic
    return {"lookups": hits + misses, "hits": hits, "exact_hits": exact, "semantic_hits": semantic,
            "misses": misses, "bypassed": bypassed, "saved_tokens": saved,
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else 0.0}
