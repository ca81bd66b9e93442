"""Hybrid memory retrieval: dense MiniLM + lexical BM25, fused by standardised scores.

Why both: dense vectors find paraphrases ("pets" -> "my cat Pixel") but blur rare names
and numbers; BM25 nails exact names and terms but misses paraphrase.

Every choice below is a general one, made without fitting numbers to a benchmark:
- What is ranked is what is shown. Conversations cluster their evidence and a reply
  ("Yes, last Friday!") means little alone, so each hit is shown with its adjacent turns
  of the same session (neighbour expansion), and both paths score that window: BM25
  indexes each turn with its +-1 turns (document expansion), and each turn is embedded
  together with the turn before it.
- Fusion sums each path's z-scores over the user's whole corpus (``_Run``), which keeps
  how strongly a path prefers an item; reciprocal rank fusion (Cormack et al. 2009)
  stays available as ``fusion="rrf"``. Both paths weigh the same.
- The k items show k distinct windows: a candidate already shown as context of a better
  hit is skipped (``RetrievalConfig.skip_shown``).
On LoCoMo this took turn-level evidence recall@10 from 0.744 (RRF over single turns) to
~0.83 with every one of the five dev conversations above 0.80 (docs/benchmarks.md).

User scoping: dense search runs over one in-memory vector matrix per user
(``memory.dense``) and BM25 is one index per user, so neither path can return another
user's item. Items and vectors are cached in memory per user (loaded lazily from Chroma,
the source of truth, filtered by ``user_id``).

The cache rule (issue 12), with ``generations`` (``memory.generations``, the SQL side):
each search first reads the user's memory generation (one primary-key read) and, when
another writer moved it, applies the logged delta — added ids fetched from Chroma,
dropped ids removed — so every replica serves the same memory and a deleted session
never comes back. Writes then reach this cache only through that log (``add`` writes
Chroma; the store's ``mark_indexed`` logs it), never directly, so a late write cannot
resurrect a dropped id. ``cache_mb`` bounds the cache: least recently used users go.
Without ``generations`` (a benchmark, one process) writes update the cache directly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from chromadb.api import ClientAPI

from assistant.errors import VectorStoreUnavailable
from memory.dense import DIM, QUERY_CACHE, DenseIndex, chroma_dense, load_vectors
from memory.embedding_function import for_chroma
from memory.generations import Delta, MemoryGenerations
from memory.lexical import LexicalIndex
from memory.memblock import approx_tokens, render_block
from memory.memory_cache import ITEM_OVERHEAD_BYTES, CacheLedger
from memory.minilm import get_encoder

__all__ = ["HybridRetriever", "MemoryHit", "MemoryItem", "RetrievalConfig", "is_temporal"]

#: A delta adding more ids than this is applied as a reload (one filtered read, not a
#: lookup of thousands of ids).
_RELOAD_ABOVE = 2000

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
    """How the two paths are combined. The defaults are general choices, not values fitted
    to a benchmark (see the module docstring and docs/benchmarks.md)."""

    dense_weight: float = 1.0  # 0 disables the dense path
    lexical_weight: float = 1.0  # 0 disables BM25
    rrf_k: int = 60  # the constant from the RRF paper (fusion="rrf" only)
    candidates: int = 50  # depth taken from each path before fusion
    neighbours: int = 1  # +-n adjacent turns of each hit come along as its context (0: off)
    neighbour_share: float = 0.0  # fraction of a top hit's score its neighbours receive
    expand_from: int = 10  # how many top hits spread score to their neighbours
    fusion: str = "zscore"  # "zscore" (standardised scores, summed) or "rrf"
    lexical_window: bool = True  # with neighbours: BM25 ranks each turn with its +-1 turns
    skip_shown: bool = True  # a candidate already shown as a better hit's context is skipped


class _Run:
    """One path's scores over all of a user's items, standardised on demand.

    Why z-scores (distribution-based score fusion): a rank throws away how far ahead a
    path's best items are, so under RRF a rank-1 exact-name BM25 match ties with items
    ranked ~25th by both paths, and a weak path drags the fusion down. Standardising each
    path's scores over the user's whole corpus puts cosine and BM25 on one scale without
    any fitted parameter: an item counts by how many standard deviations it stands out,
    and a path with no signal for this query (no query word occurs: all BM25 scores 0)
    contributes nothing.
    """

    def __init__(self, ids: list[str], rows: dict[str, int], scores: np.ndarray) -> None:
        self.ids, self.rows = ids, rows
        self.scores = np.asarray(scores, dtype=np.float64)
        n = len(self.scores)
        self.mean = float(self.scores.mean()) if n else 0.0
        self.std = float(self.scores.std()) if n else 0.0
        self.floor = float(self.scores.min()) if n else 0.0

    def top(self, n: int, *, positive: bool = False) -> dict[str, int]:
        """source id -> 1-based rank of the n best (only scores > 0 with ``positive``)."""
        scores = self.scores
        n = min(n, len(scores))
        if n <= 0:
            return {}
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]  # best first; ties in insertion order
        if positive:
            top = top[scores[top] > 0]
        return {self.ids[i]: rank for rank, i in enumerate(top, 1)}

    def z(self, source_id: str) -> float:
        """Standard score of an item; one missing from this path scores the path's minimum."""
        if self.std <= 1e-12:
            return 0.0
        row = self.rows.get(source_id)
        value = self.scores[row] if row is not None and row < len(self.scores) else self.floor
        return (float(value) - self.mean) / self.std


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


def _item(doc: str, meta: Mapping[str, Any]) -> MemoryItem:
    ts = meta.get("created_at")
    seq = int(meta.get("seq", -1))
    return MemoryItem(source_id=str(meta["source_id"]), text=doc,
                      session_id=str(meta.get("session_id", "")), speaker=str(meta.get("speaker", "")),
                      timestamp=datetime.fromisoformat(ts) if ts else None,
                      seq=None if seq < 0 else seq, kind=str(meta.get("kind", "turn")))


class HybridRetriever:
    def __init__(self, client: ClientAPI, *, collection: str = "memories",
                 config: RetrievalConfig | None = None, embed_context: int = 1,
                 generations: MemoryGenerations | None = None,
                 cache_mb: float | None = None) -> None:
        """``embed_context``: embed each turn together with that many preceding turns of its
        session (a reply like "Yes, last Friday!" means little alone); the stored text
        and BM25 stay the turn itself. ``generations``: the SQL memory generations this
        cache follows (see the module docstring); ``cache_mb``: its size bound."""
        self.config = config or RetrievalConfig()
        self.embed_context = embed_context
        self.collection = client.get_or_create_collection(
            collection, embedding_function=for_chroma(),
            configuration={"hnsw": {"space": "cosine"}})
        self.lexical = LexicalIndex()
        self.dense = DenseIndex()  # per-user vectors, served instead of Chroma's query
        self.query_cache = QUERY_CACHE  # shared with fact search: one embedding per query
        self._items: dict[str, dict[str, MemoryItem]] = {}  # user -> source id -> item
        self._by_pos: dict[str, dict[tuple[str, int], str]] = {}  # user -> (session, seq) -> id
        self._lock = threading.RLock()
        self.generations = generations
        self.ledger = CacheLedger(None if cache_mb is None else int(cache_mb * 1_000_000))

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
        if self.generations is None:  # else the generation log brings them (module docstring)
            self._put(user_id, items, vectors)

    def _put(self, user_id: str, items: Sequence[MemoryItem], vectors: np.ndarray) -> None:
        """Add or replace cached items of a loaded user."""
        with self._lock:
            if user_id not in self._items:
                return
            for item in items:
                self._remember(user_id, item)
            self.dense.upsert(user_id, [i.source_id for i in items], vectors)
            context = self._window_context(user_id, items)
            self.lexical.add(user_id, [(i.source_id, i.text) for i in items])
            self.lexical.set_context(user_id, context)

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

    def _window_context(self, user_id: str, items: Sequence[MemoryItem]) -> dict[str, list[str]]:
        """The +-1 adjacent turns of ``items`` and of their neighbours (whose windows
        change when a turn arrives next to them), for the windowed BM25 documents."""
        positions = self._by_pos.get(user_id, {})
        affected = {(i.session_id, i.seq + d) for i in items if i.seq is not None for d in (-1, 0, 1)}
        context = {}
        for session, seq in affected:
            sid = positions.get((session, seq))
            if sid is not None:
                context[sid] = [o for d in (-1, 1) if (o := positions.get((session, seq + d)))]
        return context

    def _load(self, user_id: str) -> dict[str, MemoryItem]:
        """This user's items, current: loaded from Chroma on first use (or after an
        eviction or ``refresh``), else brought up to the user's memory generation."""
        with self._lock:
            entry = self.ledger.get(user_id)
            if user_id in self._items and entry is not None:
                if self.generations is not None:
                    self._sync(user_id, entry.generation)
                return self._items[user_id]
            generation = self.generations.current(user_id) if self.generations else 0
            got = self._fetch(where={"user_id": user_id})  # read after the generation
            hidden = self.generations.tombstones(user_id) if self.generations else set()
            items, vectors = self._rows(user_id, got, hidden)
            self._items[user_id], self._by_pos[user_id] = {}, {}
            for item in items:
                self._remember(user_id, item)
            self.dense.load(user_id, [i.source_id for i in items], vectors)
            self.lexical.drop_user(user_id)
            self.lexical.add(user_id, [(i.source_id, i.text) for i in items])
            self.lexical.set_context(user_id, self._window_context(user_id, items))
            self._account(user_id, generation)
            return self._items[user_id]

    def _fetch(self, **query: Any) -> Any:
        try:
            return self.collection.get(**query, include=["documents", "metadatas", "embeddings"])
        except Exception as exc:
            raise VectorStoreUnavailable(f"loading memories failed: {exc}") from exc

    @staticmethod
    def _rows(user_id: str, got: Any,
              hidden: AbstractSet[str] = frozenset()) -> tuple[list[MemoryItem], np.ndarray]:
        """Chroma rows of this user (metadata checked again), minus ``hidden`` ids."""
        documents, metadatas, embeddings = got["documents"], got["metadatas"], got["embeddings"]
        assert documents is not None and metadatas is not None  # asked for in `include`
        keep = [i for i, m in enumerate(metadatas)
                if m.get("user_id") == user_id and str(m.get("source_id")) not in hidden]
        items = [_item(documents[i], metadatas[i]) for i in keep]
        if not keep:
            return [], np.empty((0, DIM), np.float32)
        return items, np.asarray(embeddings, dtype=np.float32)[keep]

    def _sync(self, user_id: str, generation: int) -> None:
        """Apply what other writers changed since ``generation`` (caller holds the lock)."""
        assert self.generations is not None
        delta = self.generations.since(user_id, generation)
        if delta.empty:
            if delta.generation != generation:  # moved without a turn-memory change (facts)
                self._account(user_id, delta.generation)
            return
        if not delta.complete or len(delta.added) > _RELOAD_ABOVE:
            self._evict(user_id)
            self._load(user_id)
            return
        self._apply(user_id, delta)

    def _apply(self, user_id: str, delta: Delta) -> None:
        if delta.dropped:
            self._drop(user_id, delta.dropped)
        if delta.added:
            got = self._fetch(ids=[_chroma_id(user_id, s) for s in sorted(delta.added)])
            self._put(user_id, *self._rows(user_id, got))
        self._account(user_id, delta.generation)

    def _drop(self, user_id: str, ids: AbstractSet[str]) -> None:
        """Remove cached items; the dicts are replaced, not mutated, so a search in flight
        keeps a consistent snapshot."""
        with self._lock:
            if user_id not in self._items:
                return
            self._items[user_id] = {k: v for k, v in self._items[user_id].items() if k not in ids}
            self._by_pos[user_id] = {k: v for k, v in self._by_pos[user_id].items() if v not in ids}
            self.dense.remove(user_id, ids)
            self.lexical.remove(user_id, ids)

    def _account(self, user_id: str, generation: int) -> None:
        """Record the user's generation and size; evict the least recently used over budget."""
        items = self._items.get(user_id, {})
        nbytes = (self.dense.nbytes(user_id) + len(items) * ITEM_OVERHEAD_BYTES
                  + sum(len(i.text) for i in items.values()))
        for other in self.ledger.put(user_id, generation, nbytes):
            self._evict(other)

    def _evict(self, user_id: str) -> None:
        with self._lock:
            self._items.pop(user_id, None)
            self._by_pos.pop(user_id, None)
            self.dense.drop(user_id)
            self.lexical.drop_user(user_id)
            self.ledger.forget(user_id)

    def remove(self, user_id: str, source_ids: Iterable[str]) -> None:
        """Delete items of one user (a deleted session, a forgotten turn) from Chroma and
        the in-process indexes; unknown ids are ignored."""
        ids = list(source_ids)
        if not ids:
            return
        self._drop(user_id, set(ids))  # before Chroma: removing is always safe
        try:
            self.collection.delete(ids=[_chroma_id(user_id, sid) for sid in ids])
        except Exception as exc:
            raise VectorStoreUnavailable(f"deleting memories failed: {exc}") from exc

    def refresh(self, user_id: str) -> None:
        """Forget this user's cached state; the next use loads it from Chroma again."""
        self._evict(user_id)

    def count(self, user_id: str) -> int:
        return len(self._load(user_id))

    def next_seq(self, user_id: str, session_id: str) -> int:
        """The position after the last indexed turn of this session (issue 17: turn
        memory numbers live turns so they get neighbour windows)."""
        self._load(user_id)
        with self._lock:
            seqs = [seq for (session, seq) in self._by_pos.get(user_id, {}) if session == session_id]
        return max(seqs, default=-1) + 1

    def seq_of(self, user_id: str, source_id: str) -> int | None:
        """The position of an indexed item (None when unknown or unpositioned)."""
        item = self._load(user_id).get(source_id)
        return None if item is None else item.seq

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

    def _dense_scores(self, user_id: str, query: str) -> _Run:
        vector = self.query_cache.get(query, get_encoder().encode)
        with self._lock:
            if not self.dense.loaded(user_id):  # first search of this user: read the vectors
                self.dense.load(user_id, *load_vectors(self.collection, user_id))
        return _Run(*self.dense.scores(user_id, vector))

    def search(self, user_id: str, query: str, *, k: int = 10,
               config: RetrievalConfig | None = None) -> list[MemoryHit]:
        """The k best memories of this user for ``query``, best first."""
        cfg = config or self.config
        if cfg.fusion not in ("zscore", "rrf"):
            raise ValueError(f"unknown fusion {cfg.fusion!r}: expected 'zscore' or 'rrf'")
        items = self._load(user_id)
        if not items or k <= 0 or not query.strip():
            return []
        depth = min(max(cfg.candidates, k), len(items))
        runs: list[tuple[float, _Run]] = []
        dense_rank: dict[str, int] = {}
        lexical_rank: dict[str, int] = {}
        if cfg.dense_weight > 0:
            run = self._dense_scores(user_id, query)
            dense_rank = run.top(depth)
            runs.append((cfg.dense_weight, run))
        if cfg.lexical_weight > 0:
            windowed = cfg.lexical_window and cfg.neighbours > 0  # rank the window shown
            run = _Run(*self.lexical.scores(user_id, query, windowed=windowed))
            lexical_rank = run.top(depth, positive=True)
            runs.append((cfg.lexical_weight, run))
        scores: dict[str, float] = {}
        if cfg.fusion == "rrf":
            for weight, ranks in ((cfg.dense_weight, dense_rank), (cfg.lexical_weight, lexical_rank)):
                for sid, rank in ranks.items():
                    scores[sid] = scores.get(sid, 0.0) + weight / (cfg.rrf_k + rank)
        else:
            for sid in dict.fromkeys([*dense_rank, *lexical_rank]):  # ordered: deterministic ties
                scores[sid] = sum(weight * run.z(sid) for weight, run in runs)
        scores = {sid: s for sid, s in scores.items() if sid in items}
        via = dict.fromkeys(scores, "fused")
        if cfg.neighbours > 0 and cfg.neighbour_share > 0:
            self._spread(user_id, items, scores, via, cfg)
        ranked = sorted(scores, key=lambda s: (-scores[s], dense_rank.get(s, 10**9),
                                               lexical_rank.get(s, 10**9), s))
        hits = [MemoryHit(items[s], scores[s], dense_rank.get(s), lexical_rank.get(s), via[s],
                          context) for s, context in self._select(user_id, ranked, k, cfg)]
        if is_temporal(query):  # dated memories first (stable: rank order kept within each)
            hits.sort(key=lambda h: h.date is None)
        return hits

    def _select(self, user_id: str, ranked: list[str], k: int,
                cfg: RetrievalConfig) -> list[tuple[str, tuple[MemoryItem, ...]]]:
        """The top k of ``ranked`` with their context turns; each turn is shown once.

        With ``skip_shown`` a candidate already shown as the context of a better hit is
        passed over (it would add at most its other neighbour): the k items then show k
        distinct windows (non-maximum suppression, as in detection and MMR-style
        diversification), which matters when evidence is spread over several sessions.
        Without it, the top k are kept and never repeated as another hit's context.
        """
        if cfg.neighbours <= 0:
            return [(s, ()) for s in ranked[:k]]
        chosen: list[tuple[str, tuple[MemoryItem, ...]]] = []
        shown: set[str] = set() if cfg.skip_shown else set(ranked[:k])
        for sid in ranked if cfg.skip_shown else ranked[:k]:
            if len(chosen) == k:
                break
            if cfg.skip_shown:
                if sid in shown:
                    continue
                shown.add(sid)
            context = tuple(n for n in self.neighbours(user_id, sid, cfg.neighbours)
                            if n.source_id not in shown)
            shown.update(n.source_id for n in context)
            chosen.append((sid, context))
        return chosen

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
                    share = cfg.neighbour_share * max(scores[sid], 0.0) / abs(delta)  # z can be < 0
                    bonus[other] = max(bonus.get(other, 0.0), share)
        for sid, extra in bonus.items():
            if sid not in scores:
                via[sid] = "neighbour"
            scores[sid] = scores.get(sid, 0.0) + extra

    def neighbours(self, user_id: str, source_id: str, n: int = 1) -> list[MemoryItem]:
        """The turns within +-n of ``source_id`` in its session, in conversation order
        (from the cache as the search that asks left it: no second generation read)."""
        items = self._items.get(user_id)
        if items is None:
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

