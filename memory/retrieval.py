"""Hybrid memory retrieval: dense MiniLM (Chroma) + lexical BM25, fused by reciprocal rank.

Why both: dense vectors find paraphrases ("pets" -> "my cat Pixel") but blur rare names
and numbers; BM25 nails exact names and terms but misses paraphrase. Reciprocal rank
fusion (RRF, Cormack et al. 2009) combines the two rankings without calibrating their
scores. Conversations cluster their evidence, so each hit brings its adjacent turns of
the same session along as context (neighbour expansion; optionally they can also get a
share of its score and enter the ranking themselves). Turns are embedded with the turn
before them, since a reply ("Yes, last Friday!") means little alone.

User scoping: dense search runs over one in-memory vector matrix per user
(``memory.dense``) and BM25 is one index per user, so neither path can return another
user's item. Items and vectors are cached in memory per user (loaded lazily from Chroma,
the source of truth, filtered by ``user_id``); one process should own the writes for a
user, or call ``refresh(user_id)`` after another process wrote.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chromadb.api import ClientAPI

from assistant.errors import VectorStoreUnavailable
from memory.dense import DenseIndex, QueryEmbeddingCache, chroma_dense, load_vectors
from memory.embedding_function import MiniLMEmbeddingFunction
from memory.lexical import LexicalIndex
from memory.memblock import approx_tokens, render_block
from memory.minilm import get_encoder

__all__ = ["HybridRetriever", "MemoryHit", "MemoryItem", "RetrievalConfig", "is_temporal"]

_TEMPORAL = re.compile(
    r"\b(when|what (?:date|day|month|year|time|week)|which (?:date|day|month|year|week)|"
    r"how long|how many (?:days|weeks|months|years)|ago|since|until)\b", re.IGNORECASE)


def is_temporal(query: str) -> bool:
    """Does the question ask about time ("When did ...", "How long ago ...")?"""
    return bool(_TEMPORAL.search(query))


@dataclass(frozen=True)
class MemoryItem:
    """One memory: a conversation turn (or, later, an extracted fact)."""

    source_id: str  # unique per user, e.g. "msg-42" or LoCoMo "D3:7"
    text: str
    session_id: str = ""
    speaker: str = ""
    timestamp: datetime | None = None  # when it was said (the session date for LoCoMo)
    seq: int | None = None  # position within the session: enables neighbour expansion
    kind: str = "turn"


@dataclass(frozen=True)
class MemoryHit:
    item: MemoryItem
    score: float
    dense_rank: int | None = None  # 1-based, None when that path did not find it
    lexical_rank: int | None = None
    via: str = "fused"  # "fused" or "neighbour" (entered only through an adjacent hit)
    context: tuple[MemoryItem, ...] = ()  # adjacent turns shown with it (neighbour expansion)

    @property
    def date(self) -> datetime | None:
        return self.item.timestamp

    @property
    def source_ids(self) -> list[str]:
        """Every item this hit shows, in conversation order."""
        items = sorted((self.item, *self.context), key=lambda i: (i.seq is None, i.seq or 0))
        return [i.source_id for i in items]


@dataclass(frozen=True)
class RetrievalConfig:
    dense_weight: float = 1.0  # 0 disables the dense path
    lexical_weight: float = 1.0  # 0 disables BM25
    rrf_k: int = 60  # the constant from the RRF paper
    candidates: int = 50  # depth taken from each path before fusion
    neighbours: int = 1  # +-n adjacent turns of each hit come along as its context (0: off)
    neighbour_share: float = 0.0  # fraction of a top hit's score its neighbours receive
    expand_from: int = 10  # how many top hits spread score to their neighbours


def _chroma_id(user_id: str, source_id: str) -> str:
    return f"{len(user_id)}:{user_id}:{source_id}"  # unambiguous whatever the ids contain


def _meta(user_id: str, item: MemoryItem) -> dict:
    meta: dict = {"user_id": user_id, "source_id": item.source_id, "session_id": item.session_id,
                  "speaker": item.speaker, "kind": item.kind,
                  "seq": -1 if item.seq is None else int(item.seq)}
    if item.timestamp is not None:
        meta["created_at"] = item.timestamp.isoformat()
        meta["created_ts"] = item.timestamp.timestamp()
    return meta


def _item(doc: str, meta: dict) -> MemoryItem:
    ts = meta.get("created_at")
    seq = int(meta.get("seq", -1))
    return MemoryItem(source_id=str(meta["source_id"]), text=doc,
                      session_id=str(meta.get("session_id", "")), speaker=str(meta.get("speaker", "")),
                      timestamp=datetime.fromisoformat(ts) if ts else None,
                      seq=None if seq < 0 else seq, kind=str(meta.get("kind", "turn")))


class HybridRetriever:
    def __init__(self, client: ClientAPI, *, collection: str = "memories",
                 config: RetrievalConfig | None = None, embed_context: int = 1) -> None:
        """``embed_context``: embed each turn together with that many preceding turns of its
        session (a reply like "Yes, last Friday!" means little alone); the stored text
        and BM25 stay the turn itself."""
        self.config = config or RetrievalConfig()
        self.embed_context = embed_context
        self.collection = client.get_or_create_collection(
            collection, embedding_function=MiniLMEmbeddingFunction(),
            configuration={"hnsw": {"space": "cosine"}})
        self.lexical = LexicalIndex()
        self.dense = DenseIndex()  # per-user vectors, served instead of Chroma's query
        self.query_cache = QueryEmbeddingCache(1024)
        self._items: dict[str, dict[str, MemoryItem]] = {}  # user -> source id -> item
        self._by_pos: dict[str, dict[tuple[str, int], str]] = {}  # user -> (session, seq) -> id
        self._lock = threading.RLock()

    # -- writing ---------------------------------------------------------------------
    def add(self, user_id: str, items: Sequence[MemoryItem], *, batch_size: int = 256) -> None:
        """Upsert items for one user (idempotent on ``source_id``)."""
        items = [i for i in items if i.text.strip()]
        if not items:
            return
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        self._load(user_id)
        vectors = get_encoder().encode([self._embed_text(user_id, i, items) for i in items])
        try:
            for start in range(0, len(items), batch_size):
                part = items[start:start + batch_size]
                self.collection.upsert(
                    ids=[_chroma_id(user_id, i.source_id) for i in part],
                    documents=[i.text for i in part], embeddings=vectors[start:start + len(part)],
                    metadatas=[_meta(user_id, i) for i in part])
        except Exception as exc:
            raise VectorStoreUnavailable(f"indexing memories failed: {exc}") from exc
        with self._lock:
            for item in items:
                self._remember(user_id, item)
            self.dense.upsert(user_id, [i.source_id for i in items], vectors)
        self.lexical.add(user_id, [(i.source_id, i.text) for i in items])

    def _embed_text(self, user_id: str, item: MemoryItem, batch: Sequence[MemoryItem]) -> str:
        if self.embed_context <= 0 or item.seq is None:
            return item.text
        near = {(i.session_id, i.seq): i.text for i in batch if i.seq is not None}
        cached = self._items.get(user_id, {})
        positions = self._by_pos.get(user_id, {})
        before = []
        for d in range(self.embed_context, 0, -1):
            key = (item.session_id, item.seq - d)
            text = near.get(key) or (cached[positions[key]].text if key in positions else None)
            if text:
                before.append(text)
        return " ".join([*before, item.text])

    def _remember(self, user_id: str, item: MemoryItem) -> None:
        self._items[user_id][item.source_id] = item
        if item.seq is not None:
            self._by_pos[user_id][(item.session_id, item.seq)] = item.source_id

    def _load(self, user_id: str) -> dict[str, MemoryItem]:
        """This user's items, read from Chroma once per process (or after ``refresh``)."""
        with self._lock:
            if user_id in self._items:
                return self._items[user_id]
            try:
                got = self.collection.get(where={"user_id": user_id},
                                          include=["documents", "metadatas"])
            except Exception as exc:
                raise VectorStoreUnavailable(f"loading memories failed: {exc}") from exc
            self._items[user_id], self._by_pos[user_id] = {}, {}
            loaded = [_item(d, m) for d, m in zip(got["documents"], got["metadatas"], strict=True)]
            for item in loaded:
                self._remember(user_id, item)
            self.lexical.drop_user(user_id)
            self.lexical.add(user_id, [(i.source_id, i.text) for i in loaded])
            return self._items[user_id]

    def refresh(self, user_id: str) -> None:
        with self._lock:
            self._items.pop(user_id, None)
            self._by_pos.pop(user_id, None)
            self.dense.drop(user_id)

    def count(self, user_id: str) -> int:
        return len(self._load(user_id))

    # -- reading ---------------------------------------------------------------------
    def _dense(self, user_id: str, query: str, n: int, *, via_chroma: bool = False) -> list[str]:
        """Top-n source ids by cosine; ``via_chroma`` asks Chroma instead (same ranking)."""
        vector = self.query_cache.get(query, get_encoder().encode)
        if via_chroma:
            return chroma_dense(self.collection, user_id, vector, n)
        with self._lock:
            if not self.dense.loaded(user_id):  # first search of this user: read the vectors
                self.dense.load(user_id, *load_vectors(self.collection, user_id))
        return [sid for sid, _ in self.dense.search(user_id, vector, n)]

    def search(self, user_id: str, query: str, *, k: int = 10,
               config: RetrievalConfig | None = None) -> list[MemoryHit]:
        """The k best memories of this user for ``query``, best first."""
        cfg = config or self.config
        items = self._load(user_id)
        if not items or k <= 0 or not query.strip():
            return []
        depth = min(max(cfg.candidates, k), len(items))
        scores: dict[str, float] = {}
        dense_rank: dict[str, int] = {}
        lexical_rank: dict[str, int] = {}
        if cfg.dense_weight > 0:
            for rank, sid in enumerate(self._dense(user_id, query, depth), 1):
                dense_rank[sid] = rank
                scores[sid] = scores.get(sid, 0.0) + cfg.dense_weight / (cfg.rrf_k + rank)
        if cfg.lexical_weight > 0:
            for rank, (sid, _) in enumerate(self.lexical.search(user_id, query, depth), 1):
                lexical_rank[sid] = rank
                scores[sid] = scores.get(sid, 0.0) + cfg.lexical_weight / (cfg.rrf_k + rank)
        scores = {sid: s for sid, s in scores.items() if sid in items}
        via = dict.fromkeys(scores, "fused")
        if cfg.neighbours > 0 and cfg.neighbour_share > 0:
            self._spread(user_id, items, scores, via, cfg)
        order = sorted(scores, key=lambda s: (-scores[s], dense_rank.get(s, 10**9)))[:k]
        shown = set(order)
        hits = []
        for s in order:
            context: tuple[MemoryItem, ...] = ()
            if cfg.neighbours > 0:  # each turn is shown once, with the best hit next to it
                context = tuple(n for n in self.neighbours(user_id, s, cfg.neighbours)
                                if n.source_id not in shown)
                shown.update(n.source_id for n in context)
            hits.append(MemoryHit(items[s], scores[s], dense_rank.get(s), lexical_rank.get(s),
                                  via[s], context))
        if is_temporal(query):  # dated memories first (stable: rank order kept within each)
            hits.sort(key=lambda h: h.date is None)
        return hits

    def _spread(self, user_id: str, items: dict[str, MemoryItem], scores: dict[str, float],
                via: dict[str, str], cfg: RetrievalConfig) -> None:
        """Adjacent turns of the top hits get ``neighbour_share`` of the anchor's score."""
        positions = self._by_pos.get(user_id, {})
        anchors = sorted(scores, key=scores.__getitem__, reverse=True)[:cfg.expand_from]
        bonus: dict[str, float] = {}
        for sid in anchors:
            item = items[sid]
            if item.seq is None:
                continue
            for delta in range(-cfg.neighbours, cfg.neighbours + 1):
                other = positions.get((item.session_id, item.seq + delta)) if delta else None
                if other is not None and other in items:
                    share = cfg.neighbour_share * scores[sid] / abs(delta)
                    bonus[other] = max(bonus.get(other, 0.0), share)
        for sid, extra in bonus.items():
            if sid not in scores:
                via[sid] = "neighbour"
            scores[sid] = scores.get(sid, 0.0) + extra

    def neighbours(self, user_id: str, source_id: str, n: int = 1) -> list[MemoryItem]:
        """The turns within +-n of ``source_id`` in its session, in conversation order."""
        items = self._load(user_id)
        item = items.get(source_id)
        if item is None or item.seq is None:
            return []
        positions = self._by_pos.get(user_id, {})
        ids = [positions.get((item.session_id, item.seq + d)) for d in range(-n, n + 1) if d]
        return [items[i] for i in ids if i is not None and i in items]

    def memory_block(self, user_id: str, query: str, k: int = 10, token_budget: int = 1500,
                     count_tokens: Callable[[str], int] | None = None,
                     config: RetrievalConfig | None = None) -> str:
        """The memory block for a prompt: each item with its source id and date, within
        ``token_budget`` (lowest-ranked items are dropped first)."""
        hits = self.search(user_id, query, k=k, config=config)
        return render_block(hits, token_budget=token_budget,
                            count_tokens=count_tokens or approx_tokens,
                            temporal=is_temporal(query))


def with_weights(config: RetrievalConfig, *, dense: float, lexical: float,
                 neighbours: int | None = None) -> RetrievalConfig:
    """A copy of ``config`` with other path weights (e.g. a single-retriever baseline)."""
    return replace(config, dense_weight=dense, lexical_weight=lexical,
                   neighbours=config.neighbours if neighbours is None else neighbours)

