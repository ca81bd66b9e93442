"""Fact memory with provenance: what a user told us about themself, and its history.

Every fact is a versioned row in SQL (``facts``: history and audit) and, while it is
valid, a vector in Chroma (search by meaning, filtered by ``user_id``). Candidates
from ``memory.facts_extract`` are reconciled against the user's existing facts:

- ADD     a new fact;
- UPDATE  a new value of a one-value attribute (home, employer, name ...): the old row
          keeps its text, gets ``valid_to`` and status ``superseded`` and points to the
          new row (``superseded_by``), which points back (``supersedes``);
- DELETE  the user asked to forget it (status ``forgotten``) or withdrew / contradicted
          it ("I no longer live in Porto": status ``invalid``); the row stays;
- NOOP    a repeat (same key and value, or MiniLM-similar text): the new source message
          id is added to the existing fact.

Nothing is ever deleted from SQL, and only ``valid`` facts ever reach a prompt. But
forgetting erases: a forgotten fact, and every earlier version of it, keeps its id, key,
dates, status and provenance ids, and the sha256 of its text (``text_sha256``); its text
and value are emptied in SQL and it leaves Chroma and the embedding cache. The caller of
the forget gets the text once, in the returned snapshot, to say what was forgotten.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from chromadb.api import ClientAPI
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import FactNotFound, VectorStoreUnavailable
from assistant.protocols import WriteGuard
from assistant.turn import TurnState
from memory.db import reads
from memory.dense import embed_query
from memory.embedding_function import MiniLMEmbeddingFunction, for_chroma
from memory.facts_extract import (
    CONTRADICTS,
    FORGET_ALL,
    MULTI_VALUED,
    Candidate,
    fact_text,
    norm_value,
)
from memory.generations import bump
from memory.models import Conversation, Message, User, utcnow
from memory.models import Fact as FactRow
from memory.models import aware as _aware
from memory.store import StoredMessage

__all__ = ["Change", "FactInfo", "FactMemory"]

log = logging.getLogger(__name__)
COLLECTION = "facts"




@dataclass(frozen=True)
class FactInfo:
    """One version of one fact (a snapshot, never a live ORM row)."""

    id: int
    user_id: str
    key: str
    value: str
    text: str
    source_ids: list[int]
    confidence: float
    status: str  # valid / superseded / forgotten / invalid
    valid_from: datetime
    valid_to: datetime | None = None
    supersedes: int | None = None
    superseded_by: int | None = None
    extractor: str | None = None
    reason: str | None = None
    text_sha256: str | None = None  # set once the text is erased (forgotten)


def _info(row: FactRow) -> FactInfo:
    return FactInfo(row.id, row.user_id, row.key, row.value, row.text,
                    [int(i) for i in row.source_ids or []], row.confidence, row.status,
                    _aware(row.valid_from), _aware(row.valid_to), row.supersedes,
                    row.superseded_by, row.extractor, row.reason, row.text_sha256)


@dataclass(frozen=True)
class Change:
    """What reconciling one candidate did: ``op`` ADD / UPDATE / DELETE / NOOP."""

    op: str
    fact: FactInfo | None = None  # the added / updated-to / repeated fact
    previous: list[FactInfo] = field(default_factory=list)  # superseded or deleted rows


@dataclass
class _Draft:
    """What the memory-write guards see (and may redact) before anything is stored."""

    key: str
    value: str
    text: str


def _same(a: str, b: str, *, loose: bool = False) -> bool:
    """Equal values (after normalising); ``loose`` also accepts one value's words
    inside the other's ("sushi" / "sushi rolls"), which is fine for withdrawing a fact
    but not for calling a new one a repeat ("Porto" / "Porto Alegre")."""
    a, b = norm_value(a), norm_value(b)
    if not (a and b):
        return False
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    return loose and f" {short} " in f" {long} "  # whole words: "cat" is not in "catalan"


T = TypeVar("T")


class _Unguarded:
    """No memory-write guards: every item is stored as it is (tests, tools)."""

    def before_memory_write(self, ctx: TurnState, item: T) -> T | None:
        return item


class FactMemory:
    """Per-user facts over a SQL engine and (optionally) a Chroma client."""

    def __init__(self, engine: Engine, chroma: ClientAPI | None = None, *,
                 guards: WriteGuard | None = None, similarity: float = 0.9,
                 collection: str = COLLECTION) -> None:
        self.engine = engine
        self.guards: WriteGuard = guards or _Unguarded()  # the Assistant passes its guard chain
        self.similarity = similarity
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reads = sessionmaker(reads(engine), expire_on_commit=False)  # no BEGIN/ROLLBACK
        self._embedder = MiniLMEmbeddingFunction()
        self._vectors: OrderedDict[str, Any] = OrderedDict()  # text -> embedding (LRU)
        self._lock = threading.Lock()
        # Reconciling reads, then writes: on PostgreSQL a row lock on the user serialises
        # workers; elsewhere (SQLite) writers in this process take turns here.
        self._serial: Any = (contextlib.nullcontext() if engine.dialect.name == "postgresql"
                             else threading.Lock())
        self.collection = None if chroma is None else chroma.get_or_create_collection(
            collection, embedding_function=for_chroma(self._embedder),
            configuration={"hnsw": {"space": "cosine"}})

    def _embed(self, texts: Sequence[str]) -> list[Any]:
        """MiniLM vectors, each text embedded once: a fact is searched for (NOOP check)
        and then stored, and on two cores each forward pass counts."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        fresh = dict(zip(missing, self._embedder(missing), strict=True)) if missing else {}
        with self._lock:
            self._vectors.update(fresh)
            found = [self._vectors[t] for t in texts]
            for text in texts:
                self._vectors.move_to_end(text)
            while len(self._vectors) > 512:
                self._vectors.popitem(last=False)
        return found

    # -- reconcile -------------------------------------------------------------------
    def apply(self, user_id: str, candidates: Iterable[Candidate], *, source: StoredMessage,
              extractor: str = "rules") -> list[Change]:
        """Reconcile candidates drawn from ``source`` (a message of ``user_id``); each
        passes the memory-write guards first (a guard may redact it or keep it out)."""
        ctx = TurnState(user_id=user_id, session_id=source.session_id, destination="memory")
        changes: list[Change] = []
        for candidate in candidates:
            draft = self._guarded(ctx, candidate)
            if draft is None:
                continue
            with self._serial, self._sessions() as db, db.begin():
                self._lock_user(db, user_id, erasing=candidate.op == "forget")
                change = (self._forget(db, user_id, candidate, draft, source)
                          if candidate.op != "add"
                          else self._add(db, user_id, candidate, draft, source, extractor))
                if change is not None:
                    bump(db, user_id)  # the user's memory generation (memory.generations)
            if change is not None:
                changes.append(change)
                self._index([c for c in (change.fact, *change.previous) if c is not None])
        if any(p.status == "forgotten" for c in changes for p in c.previous):
            self._after_forget(user_id)
        return changes

    def _guarded(self, ctx: TurnState, candidate: Candidate) -> _Draft | None:
        text = fact_text(candidate.key, candidate.value) if candidate.value else ""
        draft = self.guards.before_memory_write(ctx, _Draft(candidate.key, candidate.value, text))
        if draft is None:
            log.info("a guard kept a %r fact out of memory", candidate.key)
            return None
        value = self.guards.before_memory_write(ctx, draft.value) if draft.value else ""
        if value is None:
            return None
        return _Draft(draft.key, value, draft.text)

    def _valid(self, db: Session, user_id: str, key: str | None = None) -> list[FactRow]:
        stmt = select(FactRow).where(FactRow.user_id == user_id, FactRow.status == "valid")
        if key is not None:
            stmt = stmt.where(FactRow.key == key)
        return list(db.scalars(stmt.order_by(FactRow.valid_from, FactRow.id)))

    def _lock_user(self, db: Session, user_id: str, *, erasing: bool = False) -> None:
        """Serialise reconciles of one user across workers (PostgreSQL row lock;
        SQLite serialises writers anyway), so two jobs cannot both "update" a home.
        ``erasing``: on SQLite, the bytes an erased text leaves in its page are zeroed."""
        if self.engine.dialect.name == "postgresql":
            db.execute(select(User.id).where(User.id == user_id).with_for_update())
        elif erasing and self.engine.dialect.name == "sqlite":
            db.connection().exec_driver_sql("PRAGMA secure_delete = ON")

    def _count(self, db: Session, user_id: str) -> int:
        return int(db.scalar(select(func.count(FactRow.id)).where(
            FactRow.user_id == user_id, FactRow.status == "valid")) or 0)

    def _close(self, rows: Sequence[FactRow], status: str, when: datetime, reason: str,
               superseded_by: int | None = None) -> list[FactInfo]:
        """Close ``rows``; a ``forgotten`` one is erased (the snapshot still has its text)."""
        closed = []
        for row in rows:
            row.status, row.reason, row.updated_at = status, reason, utcnow()
            row.valid_to = row.valid_to or when
            if superseded_by is not None:
                row.superseded_by = superseded_by
            closed.append(_info(row))
            if status == "forgotten":
                self._erase([row])
        return closed

    def _erase(self, rows: Iterable[FactRow]) -> None:
        """Empty text and value, keep their hash; drop the cached embedding of the text."""
        for row in rows:
            if row.text:
                row.text_sha256 = hashlib.sha256(row.text.encode("utf-8")).hexdigest()
                with self._lock:
                    self._vectors.pop(row.text, None)
            row.text, row.value = "", ""

    def _earlier(self, db: Session, rows: Iterable[FactRow]) -> list[FactRow]:
        """Every earlier version of ``rows`` (their ``supersedes`` chains, same user)."""
        found: dict[int, FactRow] = {}
        for row in rows:
            older = db.get(FactRow, row.supersedes) if row.supersedes is not None else None
            while older is not None and older.user_id == row.user_id and older.id not in found:
                found[older.id] = older
                older = db.get(FactRow, older.supersedes) if older.supersedes is not None else None
        return list(found.values())

    def _forget(self, db: Session, user_id: str, candidate: Candidate, draft: _Draft,
                source: StoredMessage) -> Change | None:
        when = source.created_at
        request = candidate.op == "forget"  # "forget ...", not a negation ("retract")
        # Forgetting takes the attribute's history too ("forget where I live" covers the
        # old addresses); a retraction only ends the current value.
        stmt = select(FactRow).where(FactRow.user_id == user_id, FactRow.status.in_(
            ("valid", "superseded") if request else ("valid",)))
        if candidate.key != FORGET_ALL:
            stmt = stmt.where(FactRow.key == candidate.key)
        rows = [r for r in db.scalars(stmt.order_by(FactRow.id))
                if _aware(r.valid_from) <= when
                and (not draft.value or _same(r.value, draft.value, loose=True))]
        if not rows:
            return None
        status = "forgotten" if request else "invalid"
        reason = (f"user asked to forget it (msg-{source.id})" if request
                  else f"user withdrew it (msg-{source.id})")
        if request:
            self._erase(self._earlier(db, rows))
        return Change("DELETE", None, self._close(rows, status, when, reason))

    def _add(self, db: Session, user_id: str, candidate: Candidate, draft: _Draft,
             source: StoredMessage, extractor: str) -> Change:
        same_key = self._valid(db, user_id, draft.key)
        repeat = next((r for r in same_key if _same(r.value, draft.value)), None)
        if repeat is None and len(same_key) < self._count(db, user_id) \
                and (similar := self._similar(user_id, draft.text)) is not None \
                and norm_value(draft.value) in norm_value(similar.text):
            repeat = db.get(FactRow, similar.id)  # same fact under another key name
        if repeat is not None and repeat.status == "valid":
            if source.id not in (repeat.source_ids or []):
                repeat.source_ids = [*(repeat.source_ids or []), source.id]
            repeat.confidence = max(repeat.confidence, candidate.confidence)
            repeat.updated_at = utcnow()
            return Change("NOOP", _info(repeat))
        when = source.created_at
        row = FactRow(user_id=user_id, key=draft.key, value=draft.value, text=draft.text,
                      source_ids=[source.id], confidence=candidate.confidence, status="valid",
                      extractor=extractor, valid_from=when, created_at=utcnow(), updated_at=utcnow())
        previous: list[FactInfo] = []
        if (opposite := CONTRADICTS.get(draft.key)) is not None:
            clash = [r for r in self._valid(db, user_id, opposite)
                     if _same(r.value, draft.value, loose=True)]
            previous += self._close(clash, "invalid", when, f"contradicted by msg-{source.id}")
        older = [r for r in same_key if _aware(r.valid_from) <= when]
        newer = [r for r in same_key if _aware(r.valid_from) > when]
        if draft.key in MULTI_VALUED or not same_key:
            db.add(row)
            db.flush()
            return Change("ADD", _info(row), previous)
        if newer:
            # A late job for an older message: it is history, not the current value.
            row.status, row.valid_to, row.superseded_by = "superseded", newer[0].valid_from, newer[0].id
            row.reason = "already superseded when it was recorded"
            db.add(row)
            db.flush()
            return Change("ADD", _info(row), previous)  # history only: current facts unchanged
        row.supersedes = older[-1].id
        db.add(row)
        db.flush()
        previous += self._close(older, "superseded", when, f"updated by msg-{source.id}", row.id)
        return Change("UPDATE", _info(row), previous)

    # -- the people API --------------------------------------------------------------
    def facts(self, user_id: str, *, include_history: bool = False) -> list[FactInfo]:
        """The user's valid facts (or every version with ``include_history``), oldest first."""
        with self._reads() as db:
            stmt = select(FactRow).where(FactRow.user_id == user_id)
            if not include_history:
                stmt = stmt.where(FactRow.status == "valid")
            return [_info(r) for r in db.scalars(stmt.order_by(FactRow.valid_from, FactRow.id))]

    def get(self, user_id: str, fact_id: int) -> FactInfo:
        with self._sessions() as db:
            return _info(self._own(db, user_id, fact_id))

    def _own(self, db: Session, user_id: str, fact_id: int) -> FactRow:
        row = db.get(FactRow, fact_id) if isinstance(fact_id, int) else None
        if row is None or row.user_id != user_id:
            raise FactNotFound(f"no fact {fact_id!r} for user {user_id!r}")
        return row

    def edit(self, user_id: str, fact_id: int, text: str) -> FactInfo:
        """A corrected version of a valid fact: the new row supersedes the old one and
        keeps its source messages (the user's edit is the reason)."""
        text = " ".join(str(text).split())
        if not text or len(text) > 1000:
            raise ValueError("a fact's text must be 1-1000 characters")
        ctx = TurnState(user_id=user_id, session_id="", destination="memory")
        with self._serial, self._sessions() as db, db.begin():
            self._lock_user(db, user_id)
            old = self._own(db, user_id, fact_id)
            if old.status != "valid":
                raise ValueError(f"fact {fact_id} is {old.status}; only a valid fact can be edited")
            draft = self.guards.before_memory_write(ctx, _Draft(old.key, text, text))
            if draft is None:
                raise ValueError("that text cannot be stored in memory (blocked by a guard)")
            now = utcnow()
            row = FactRow(user_id=user_id, key=old.key, value=draft.value, text=draft.text,
                          source_ids=list(old.source_ids or []), confidence=1.0, status="valid",
                          extractor="user-edit", valid_from=now, supersedes=old.id,
                          created_at=now, updated_at=now)
            db.add(row)
            db.flush()
            previous = self._close([old], "superseded", now, "edited by the user", row.id)
            new = _info(row)
            bump(db, user_id)
        self._index([new, *previous])
        return new

    def forget_ids(self, user_id: str, fact_ids: Sequence[int], reason: str) -> list[FactInfo]:
        """Mark these facts forgotten and erase them and every earlier version of them
        (those keep their status); returns the facts asked for, as they were."""
        with self._serial, self._sessions() as db, db.begin():
            self._lock_user(db, user_id, erasing=True)
            asked = [self._own(db, user_id, i) for i in fact_ids]
            self._erase(self._earlier(db, asked))
            rows = [r for r in asked if r.status != "forgotten"]
            done = self._close(rows, "forgotten", utcnow(), reason)
            bump(db, user_id)
        self._index(done)
        if done:
            self._after_forget(user_id)
        return done

    def drop_sources(self, user_id: str, message_ids: Collection[int]) -> list[FactInfo]:
        """The messages were deleted: facts resting on nothing else are forgotten
        (their rows stay, for the audit); returns those."""
        gone = {int(i) for i in message_ids}
        with self._serial, self._sessions() as db, db.begin():
            self._lock_user(db, user_id, erasing=True)
            rows = db.scalars(select(FactRow).where(FactRow.user_id == user_id,
                                                    FactRow.status.in_(("valid", "superseded"))))
            orphans = [r for r in rows if r.source_ids and set(map(int, r.source_ids)) <= gone]
            done = self._close(orphans, "forgotten", utcnow(), "its source messages were deleted")
            if done:
                bump(db, user_id)
        self._index(done)
        if done:
            self._after_forget(user_id)
        return done

    def _after_forget(self, user_id: str) -> None:
        """Copies elsewhere: a cached reply may quote what was just forgotten ("Enjoy
        Porto!"), so the user's cached replies go (the next miss costs one model call), and
        so does every session summary folded from a suppressed message (refolded without it);
        on SQLite the write-ahead log, which still holds the old page, is folded in."""
        from memory.response_cache import ResponseCache
        from memory.summary_store import SummaryStore

        try:
            ResponseCache(self.engine, ttl_s=0).purge(user_id=user_id, expired_only=False)
            SummaryStore(self.engine).drop_covering(user_id, self.suppressed_sources(user_id))
            if self.engine.dialect.name == "sqlite":
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:  # the facts are forgotten either way
            log.warning("could not clear the copies of a forgotten fact", exc_info=True)

    def sources(self, user_id: str, fact_id: int) -> list[StoredMessage]:
        """The stored messages a fact was drawn from (only this user's)."""
        fact = self.get(user_id, fact_id)
        return self.messages(user_id, fact.source_ids)

    def messages(self, user_id: str, ids: Sequence[int]) -> list[StoredMessage]:
        if not ids:
            return []
        with self._reads() as db:
            rows = db.execute(select(Message, Conversation.key)
                              .join(Conversation, Conversation.id == Message.conversation_id)
                              .where(Message.id.in_(list(ids)), Message.user_id == user_id)
                              .order_by(Message.id)).all()
        return [StoredMessage(id=m.id, session_id=key, user_id=m.user_id, role=m.role,
                              content=m.content, status=m.status,
                              created_at=_aware(m.created_at), provider=m.provider)
                for m, key in rows]

    def suppressed_sources(self, user_id: str) -> set[int]:
        """Messages behind forgotten facts, the reply after each and every restatement
        (``memory.forgotten.suppressed``): kept out of recall and summaries."""
        from memory.forgotten import suppressed

        return suppressed(self.engine, user_id)

    # -- Chroma ----------------------------------------------------------------------
    def _index(self, facts: Sequence[FactInfo]) -> None:
        """Valid facts in Chroma, every other version out of it (SQL decides). Only the
        vector goes in, never the text: SQL holds that, and Chroma keeps each write in
        its log for a while after a delete, so a forgotten fact's text would linger."""
        if self.collection is None or not facts:
            return
        keep = [f for f in facts if f.status == "valid"]
        drop = [f"fact-{f.id}" for f in facts if f.status != "valid"]
        try:
            if keep:
                self.collection.upsert(
                    ids=[f"fact-{f.id}" for f in keep],
                    embeddings=self._embed([f.text for f in keep]),
                    metadatas=[{"user_id": f.user_id, "fact_id": f.id, "key": f.key} for f in keep])
            if drop:
                self.collection.delete(ids=drop)
        except Exception as exc:
            raise VectorStoreUnavailable(f"indexing facts failed: {exc}") from exc

    def sync(self, user_id: str) -> None:
        """Make Chroma match SQL for one user (after a failed index write)."""
        if self.collection is None:
            return
        valid = self.facts(user_id)
        try:
            stored = set(self.collection.get(where={"user_id": user_id}, include=[])["ids"])
        except Exception as exc:
            raise VectorStoreUnavailable(f"reading facts failed: {exc}") from exc
        wanted = {f"fact-{f.id}" for f in valid}
        self._index(valid)
        if extra := sorted(stored - wanted):
            self.collection.delete(ids=extra)

    def search(self, user_id: str, text: str, k: int = 5) -> list[tuple[FactInfo, float]]:
        """This user's valid facts nearest ``text`` in meaning, with cosine similarity."""
        if self.collection is None or not text.strip():
            return []
        try:
            got: Any = self.collection.query(query_embeddings=[embed_query(text)], n_results=k,
                                             where={"user_id": user_id}, include=["distances"])
        except Exception as exc:
            raise VectorStoreUnavailable(f"searching facts failed: {exc}") from exc
        scores = {int(i.removeprefix("fact-")): 1.0 - d
                  for i, d in zip(got["ids"][0], got["distances"][0], strict=True)}
        if not scores:
            return []
        with self._reads() as db:  # SQL has the last word on what is valid (and whose)
            rows = db.scalars(select(FactRow).where(FactRow.id.in_(list(scores)),
                                                    FactRow.user_id == user_id,
                                                    FactRow.status == "valid"))
            found = [(_info(r), scores[r.id]) for r in rows]
        return sorted(found, key=lambda pair: -pair[1])

    def _similar(self, user_id: str, text: str) -> FactInfo | None:
        hits = self.search(user_id, text, k=1)
        return hits[0][0] if hits and hits[0][1] >= self.similarity else None
