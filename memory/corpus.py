"""Document corpora: ingest files, then find the chunks that bear on a question.

``Corpus`` is the default ``assistant.protocols.Documents``. Collections belong to one
user (owner ``user:<id>``) or are shared (owner ``shared``); a query searches the
asking user's own scope plus the shared one, and nothing else — dense search reads one
vector matrix per scope (loaded from Chroma by owner, reloaded when the scope's chunks
change; Chroma's filtered query while an ingest is in flight), BM25 keeps one index per
scope, and the chunk rows themselves are read back from SQL with the same owner filter,
so another user's chunk can never reach a prompt. Dense (MiniLM) and lexical (BM25)
rankings are fused by reciprocal rank; a chunk is shown only if it is similar enough to
the question, so small talk gets no sources block at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.types import Embedding, LiteralValue, Where
from chromadb.base_types import InclusionExclusionOperator
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker

from assistant.protocols import Grounding, Scanner, SourceRef
from memory.chats import in_scope
from memory.db import exclusive, reads
from memory.dense import DIM, embed_query
from memory.embedding_function import for_chroma
from memory.ingest import IngestReport, ingest_files, prune_source
from memory.lexical import LexicalIndex
from memory.models import Chunk, Source
from memory.screening import registered_scanner
from memory.sources_block import SOURCES_HEADER, render_sources

if TYPE_CHECKING:
    from assistant.settings import Settings

__all__ = ["COLLECTION", "SHARED", "SOURCES_HEADER", "Corpus", "Hit", "SourceInfo", "owner_for",
           "render_sources"]

COLLECTION = "documents"  # the Chroma collection holding every corpus's chunk vectors
SHARED = "shared"
RRF_K = 60
INJECTION_THRESHOLD = 0.6  # the injection guard's default: a chunk at or above is marked
#: ``scanner=`` default: the scanner registered in ``memory.screening`` when ingest runs.
REGISTERED: Any = "registered"


@dataclass(frozen=True)
class SourceInfo:
    """A source as the Documents tab lists it."""

    id: int
    collection: str
    path: str
    title: str
    chunks: int
    updated_at: Any
    shared: bool


def owner_for(user_id: str | None) -> str:
    """``user:<id>`` for a user's own collections, ``shared`` for everyone's."""
    if user_id is None:
        return SHARED
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 128:
        raise ValueError(f"user_id must be a non-empty string of at most 128 characters, got {user_id!r:.80}")
    return f"user:{user_id}"


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float
    similarity: float
    title: str
    path: str
    text: str
    page: int | None
    collection: str
    #: The ingest-time injection verdict (``None``: scanned before marks existed).
    injection_score: float | None = None
    injection_rules: tuple[str, ...] = ()


class Corpus:
    """Ingest and retrieve documents; SQL rows are the truth, Chroma holds the vectors."""

    #: ``retrieve`` takes a chat's scope (``collections=``, ``chat=``; see ``turn_context``).
    scoped = True

    def __init__(self, engine: Engine, client: ClientAPI, *, k: int = 4, min_similarity: float = 0.3,
                 candidates: int = 30, max_file_bytes: int = 20_000_000, chunk_chars: int = 900,
                 chunk_overlap: int = 120, scanner: Scanner | None = REGISTERED,
                 injection_threshold: float = INJECTION_THRESHOLD) -> None:
        self.engine = engine
        # Every chunk is scanned for prompt injection as it is stored; a marked chunk is
        # audited then and reaches a prompt only through the guards (quarantined by default).
        # The scanner is the guardrails' (``memory.screening``); ``None`` scans nothing.
        self.scanner, self.injection_threshold = scanner, injection_threshold
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reads = sessionmaker(reads(engine), expire_on_commit=False)  # no BEGIN/ROLLBACK
        self.vectors = client.get_or_create_collection(
            COLLECTION, embedding_function=for_chroma(),
            configuration={"hnsw": {"space": "cosine"}})
        self.k, self.min_similarity, self.candidates = k, min_similarity, candidates
        self.max_file_bytes, self.chunk_chars, self.chunk_overlap = max_file_bytes, chunk_chars, chunk_overlap
        self.lexical = LexicalIndex()
        self._signatures: dict[str, tuple[int, int]] = {}
        #: Each scope's chunk vectors (ids, rows), read from Chroma when the scope's chunks
        #: change and kept only when complete, so a search is one matrix product rather
        #: than a filtered Chroma query plus a fetch of the BM25-only hits' vectors.
        self._matrices: dict[str, tuple[tuple[int, int], list[str], np.ndarray]] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None, *, scanner: Scanner | None = REGISTERED) -> Corpus:
        """The corpus of the configured database and Chroma (``Settings()`` by default)."""
        from assistant.settings import Settings
        from memory.db import open_engine
        from memory.vectors import open_chroma

        s = settings or Settings()
        return cls.from_settings(open_engine(s.resolved_database_url),
                                 open_chroma(s.chroma_path, s.chroma_url), s,
                                 scanner=scanner)

    @classmethod
    def from_settings(cls, engine: Engine, client: ClientAPI, settings: Settings, *,
                      scanner: Scanner | None = REGISTERED) -> Corpus:
        s = settings
        return cls(engine, client, scanner=scanner, k=s.documents_k,
                   min_similarity=s.documents_min_similarity,
                   max_file_bytes=int(s.ingest_max_file_mb * 1_000_000),
                   chunk_chars=s.chunk_chars, chunk_overlap=s.chunk_overlap_chars)

    # ingest -------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path], *, collection: str, user_id: str | None = None,
               progress: bool = False) -> IngestReport:
        """Add, update or remove the files under ``paths`` in ``collection`` (the user's own,
        or shared when ``user_id`` is None). Bad files are skipped and listed in the report."""
        if not collection or not collection.strip() or len(collection) > 128:
            raise ValueError("collection must be a non-empty name of at most 128 characters, "
                             f"got {collection!r:.80}")
        # One ingest of a collection at a time across replicas (two starting together
        # ingested the sample corpus at once: a UniqueViolation); the second sees it done.
        try:
            with exclusive(self.engine, f"ingest:{owner_for(user_id)}:{collection.strip()}"):
                report = self._ingest(paths, collection, user_id, progress)
        finally:  # this process's searches reload the scope's vectors
            self._forget_matrix(owner_for(user_id))
        return report

    def _ingest(self, paths: Iterable[str | Path], collection: str, user_id: str | None,
                progress: bool) -> IngestReport:
        report = ingest_files(self._sessions, self.vectors, [Path(p) for p in paths],
                              owner=owner_for(user_id), collection=collection.strip(),
                              max_bytes=self.max_file_bytes, chunk_chars=self.chunk_chars,
                              overlap=self.chunk_overlap, progress=progress,
                              scanner=(registered_scanner() if self.scanner is REGISTERED
                                       else self.scanner), threshold=self.injection_threshold)
        return report

    def collections(self, user_id: str | None) -> dict[str, int]:
        """Collection name -> source count, for one scope (the user's own, or shared)."""
        stmt = (select(Source.collection, func.count(Source.id)).where(Source.owner == owner_for(user_id))
                .group_by(Source.collection))
        with self._reads() as db:
            return {name: n for name, n in db.execute(stmt)}

    def has_documents(self, user_id: str | None = None) -> bool:
        scopes = [SHARED] if user_id is None else [SHARED, owner_for(user_id)]
        with self._reads() as db:
            return db.scalar(select(Chunk.id).where(Chunk.owner.in_(scopes)).limit(1)) is not None

    def sources(self, user_id: str) -> list[SourceInfo]:
        """The user's own sources, then the shared ones, each collection by path."""
        own = owner_for(user_id)
        stmt = (select(Source).where(Source.owner.in_([own, SHARED]))
                .order_by(Source.owner != own, Source.collection, Source.path))
        with self._reads() as db:
            return [SourceInfo(s.id, s.collection, s.path, s.title, s.chunk_count, s.ingested_at,
                               s.owner == SHARED) for s in db.scalars(stmt)]

    def delete_source(self, user_id: str, source_id: int) -> bool:
        """Remove one of the user's own sources (rows and vectors). Shared sources and other
        users' are not theirs to delete: ``False``, as for an unknown id."""
        with self._sessions() as db, db.begin():
            row = db.scalar(select(Source).where(Source.id == source_id,
                                                 Source.owner == owner_for(user_id)))
            if row is None:
                return False
            ids = prune_source(db, row)
            db.delete(row)
        if ids:
            self.vectors.delete(ids=ids)
        self._forget_matrix(owner_for(user_id))
        return True

    # retrieval ----------------------------------------------------------------------
    def _lexical_ready(self, scopes: list[str]) -> None:
        """(Re)build a scope's BM25 index when its chunks changed (any process may ingest)."""
        stmt = (select(Chunk.owner, func.count(Chunk.id), func.max(Chunk.id))
                .where(Chunk.owner.in_(scopes)).group_by(Chunk.owner))
        with self._reads() as db:
            current = {owner: (n, top or 0) for owner, n, top in db.execute(stmt)}
            with self._lock:
                for scope in scopes:
                    sig = current.get(scope, (0, 0))
                    if self._signatures.get(scope) == sig:
                        continue
                    self.lexical.drop_user(scope)
                    rows = db.execute(select(Chunk.id, Chunk.text).where(Chunk.owner == scope))
                    self.lexical.add(scope, ((f"chunk-{i}", t) for i, t in rows))
                    self._signatures[scope] = sig

    def _forget_matrix(self, scope: str) -> None:
        with self._lock:
            self._matrices.pop(scope, None)

    def _matrix(self, scope: str) -> tuple[list[str], np.ndarray] | None:
        """The scope's chunk vectors as of its current signature (that of the BM25 index
        ``_lexical_ready`` just checked against SQL), or None while they are incomplete:
        an ingest commits its rows before their vectors, and a search meanwhile asks
        Chroma directly. A matrix is kept only when its ids are exactly the scope's rows."""
        sig = self._signatures.get(scope, (0, 0))
        with self._lock:
            held = self._matrices.get(scope)
        if held is not None and held[0] == sig:
            return held[1], held[2]
        if not sig[0]:
            ids, rows = [], np.empty((0, DIM), np.float32)
        else:
            got = self.vectors.get(where={"owner": scope}, include=["embeddings"])
            embeddings = got["embeddings"]
            assert embeddings is not None  # asked for in `include`
            ids, rows = list(got["ids"]), np.asarray(embeddings, dtype=np.float32).reshape(-1, DIM)
            with self._reads() as db:
                live = {f"chunk-{i}" for i in db.scalars(select(Chunk.id).where(Chunk.owner == scope))}
            if len(live) != sig[0] or set(ids) != live:
                return None  # vectors (or rows) in flight: not kept
        with self._lock:
            self._matrices[scope] = (sig, ids, rows)
        return ids, rows

    def _dense(self, scopes: list[str], qvec: np.ndarray,
               lexical_ids: set[str]) -> tuple[list[str], dict[str, float]] | None:
        """The best ``candidates`` chunks of ``scopes`` (best first, as Chroma's
        nearest-neighbour query returns them) and the cosine similarity of those and of
        the BM25 hits among the rest; None when a scope's vectors are not all in yet."""
        found = [self._matrix(scope) for scope in scopes]
        if any(f is None for f in found):
            return None
        ids = [cid for f in found if f is not None for cid in f[0]]
        if not ids:
            return [], {}
        scores = np.concatenate([f[1] @ qvec for f in found if f is not None])
        n = min(self.candidates, len(ids))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(ids) else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        dense = {ids[i]: float(scores[i]) for i in top}
        nearest = list(dense)
        wanted = lexical_ids - dense.keys()
        for i, cid in enumerate(ids):
            if cid in wanted:
                dense[cid] = float(scores[i])
        return nearest, dense

    def _chroma_dense(self, scopes: list[str], qvec: Embedding,
                      lexical_ids: set[str]) -> tuple[list[str], dict[str, float]]:
        """``_dense`` through Chroma (while an ingest is in flight)."""
        owners: dict[InclusionExclusionOperator, list[LiteralValue]] = {"$in": list(scopes)}
        where: Where = {"owner": owners}
        found = self.vectors.query(query_embeddings=[qvec], n_results=self.candidates,
                                   where=where, include=["distances"])
        distances = found["distances"]
        assert distances is not None  # asked for in `include`
        dense = {cid: 1.0 - float(d) for cid, d in zip(found["ids"][0], distances[0], strict=True)}
        nearest = list(dense)
        missing = [cid for cid in lexical_ids if cid not in dense]
        if missing:  # BM25-only hits: score their similarity from the stored vectors
            got = self.vectors.get(ids=missing, include=["embeddings"])
            vectors = got["embeddings"]
            assert vectors is not None  # asked for in `include`
            for cid, vec in zip(got["ids"], vectors, strict=True):
                dense[cid] = float(np.asarray(vec, dtype=np.float32) @ qvec)
        return nearest, dense

    def search(self, user_id: str, query: str, k: int | None = None, *,
               collections: Sequence[str] | None = None, chat: str | None = None) -> list[Hit]:
        """Best chunks for ``query`` among this user's and the shared collections, within
        a chat's scope (``memory.chats.in_scope``: ``collections`` when chosen, else all
        but the files attached in chats other than ``chat``)."""
        k = self.k if k is None else k
        scopes = [owner_for(user_id), SHARED]
        if not query.strip() or k <= 0:
            return []
        self._lexical_ready(scopes)
        if not any(self._signatures.get(scope, (0, 0))[0] for scope in scopes):
            return []  # nothing this user may see: no query embedding, no Chroma call
        # The turn's one query embedding, shared with memory and facts (``QUERY_CACHE``).
        qvec = np.asarray(embed_query(query), dtype=np.float32)
        lexical = [self.lexical.search(scope, query, self.candidates) for scope in scopes]
        lexical_ids = {cid for lex in lexical for cid, _ in lex}
        found = self._dense(scopes, qvec, lexical_ids)
        nearest, dense = found if found is not None else self._chroma_dense(
            scopes, qvec, lexical_ids)
        fused: dict[str, float] = {}
        for ranking in [nearest, *([cid for cid, _ in lex] for lex in lexical)]:
            for rank, cid in enumerate(ranking, 1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
        keep = [cid for cid in fused if dense.get(cid, -1.0) >= self.min_similarity
                or (cid in lexical_ids and dense.get(cid, -1.0) >= self.min_similarity - 0.1)]
        keep.sort(key=lambda cid: -fused[cid])
        return self._hits(keep, k, scopes, fused, dense, collections, chat)

    def _hits(self, ids: list[str], k: int, scopes: list[str], fused: dict[str, float],
              dense: dict[str, float], collections: Sequence[str] | None,
              chat: str | None) -> list[Hit]:
        """The first ``k`` of ``ids`` within the chat's scope (``memory.chats.in_scope``)
        whose rows are this user's or shared, as hits: one query for the candidates'
        rows, then the scope and the owner checked in that order on them."""
        if not ids:
            return []
        numeric = {cid: int(cid.split("-", 1)[1]) for cid in ids}
        stmt = (select(Chunk.id, Chunk.collection, Chunk.owner, Chunk.text, Chunk.page,
                       Chunk.injection_score, Chunk.injection_rules, Source.id, Source.title,
                       Source.path)
                .outerjoin(Source, Source.id == Chunk.source_id)
                .where(Chunk.id.in_(list(numeric.values()))))
        with self._reads() as db:
            rows = {row[0]: row for row in db.execute(stmt)}
        allowed = [cid for cid in ids if numeric[cid] in rows
                   and in_scope(rows[numeric[cid]][1], collections, chat)]
        hits = []
        for cid in allowed[:k]:
            (n, collection, owner, text, page, injection_score, injection_rules, source_id, title,
             path) = rows[numeric[cid]]
            # isolation, again; a vector whose row (or source) is gone is ignored
            if owner in scopes and source_id is not None:
                hits.append(Hit(n, fused[cid], dense.get(cid, 0.0), title, path, text, page,
                                collection, injection_score,
                                tuple(filter(None, (injection_rules or "").split(",")))))
        return hits

    def retrieve(self, user_id: str, query: str, *, token_budget: int,
                 count_tokens: Callable[[str], int], collections: Sequence[str] | None = None,
                 chat: str | None = None) -> Grounding:
        """The ``Documents`` protocol: numbered sources within ``token_budget`` tokens,
        from the collections the chat may use (see ``search``)."""
        if token_budget <= 0:
            return Grounding()
        refs: list[SourceRef] = []
        for hit in self.search(user_id, query, collections=collections, chat=chat):
            marked = hit.injection_score is not None and hit.injection_score >= self.injection_threshold
            ref = SourceRef(id=str(len(refs) + 1), chunk_id=f"chunk-{hit.chunk_id}", title=hit.title,
                            path=_display_path(hit.path), text=hit.text, page=hit.page,
                            collection=hit.collection,
                            injection_score=hit.injection_score if marked else None,
                            injection_rules=hit.injection_rules if marked else ())
            if count_tokens(render_sources([*refs, ref])) <= token_budget:
                refs.append(ref)
                continue
            if not refs:  # the best chunk alone is too long: show as much of it as fits
                room = token_budget - count_tokens(render_sources([_with_text(ref, "")]))
                if room > 20:
                    refs.append(_with_text(ref, hit.text[: room * 3].rsplit(" ", 1)[0] + " …"))
            break
        return Grounding(render_sources(refs), refs)


def _with_text(ref: SourceRef, text: str) -> SourceRef:
    from dataclasses import replace

    return replace(ref, text=text)


def _display_path(path: str) -> str:
    """Paths under the working directory are shown relative (shorter prompts, no home dirs)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
