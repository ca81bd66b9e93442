"""Per-user memory generations: a replica's in-memory recall is only ever a cache.

Why: each replica holds a user's turn memory in RAM (vectors, BM25, positions), loaded
from Chroma; a turn indexed or a session deleted through one replica must reach every
other at once, and a deleted message must never come back from a warm cache.

The rule, enforced where the SQL write happens (``ConversationStore.mark_indexed``,
``delete_session``, ``set_status``; ``FactMemory``'s writes): ``bump`` runs inside the
writer's transaction, advancing the user's generation and logging the source ids added
or dropped. A cache reads the generation (one primary-key read) before it searches;
when it moved, it applies the logged delta (``since``). A drop with no later add is a
tombstone: a cold load filters Chroma's rows through ``tombstones``, so a vector whose
Chroma delete lagged or failed stays out too. Ordering that makes it safe: vectors go
into Chroma *before* their ``add`` commits; a ``drop`` commits *before* Chroma deletes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, exists, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from memory.db import reads
from memory.models import MemoryChange, MemoryGeneration, utcnow

__all__ = ["COMPACT_EVERY", "Delta", "MemoryGenerations", "bump", "message_source", "message_sources"]

#: Every this many generations of a user, ``bump`` compacts that user's log (adds older
#: than this many generations go; caches that far behind reload instead).
COMPACT_EVERY = 2000


def message_source(message_id: int) -> str:
    """The turn memory's source id of a stored message (``memory.recall`` uses it)."""
    return f"msg-{int(message_id)}"


def message_sources(message_ids: Iterable[int]) -> list[str]:
    return [message_source(i) for i in message_ids]


@dataclass(frozen=True)
class Delta:
    """What changed in a user's memory after a cached generation, up to ``generation``.
    ``complete`` False: the log no longer reaches back that far; reload the user."""

    generation: int
    added: frozenset[str] = frozenset()
    dropped: frozenset[str] = frozenset()
    complete: bool = True

    @property
    def empty(self) -> bool:
        return self.complete and not self.added and not self.dropped


def _upsert(db: Session, user_id: str) -> int:
    """Advance the counter and return it; the row stays locked to the end of the
    transaction, so writers of one user commit their generations in order."""
    now = utcnow()
    dialect = db.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        values = make(MemoryGeneration).values(user_id=user_id, generation=1, floor=0, updated_at=now)
        stmt = values.on_conflict_do_update(
            index_elements=[MemoryGeneration.user_id],
            set_={"generation": MemoryGeneration.generation + 1, "updated_at": now},
        ).returning(MemoryGeneration.generation)
        return int(db.execute(stmt).scalar_one())
    row = db.get(MemoryGeneration, user_id, with_for_update=True)
    if row is None:
        db.add(MemoryGeneration(user_id=user_id, generation=1, floor=0, updated_at=now))
        db.flush()
        return 1
    row.generation, row.updated_at = row.generation + 1, now
    db.flush()
    return row.generation


def bump(db: Session, user_id: str, *, added: Iterable[str] = (),
         dropped: Iterable[str] = ()) -> int:
    """Advance ``user_id``'s memory generation inside the caller's transaction and log
    the source ids it added or dropped; returns the new generation. Call it in the same
    transaction as the write, never after: then no reader can see one without the other."""
    generation = _upsert(db, user_id)
    rows = [{"user_id": user_id, "generation": generation, "source_id": s, "op": "add"}
            for s in dict.fromkeys(added)]
    rows += [{"user_id": user_id, "generation": generation, "source_id": s, "op": "drop"}
             for s in dict.fromkeys(dropped)]
    if rows:
        db.execute(insert(MemoryChange), rows)
    if generation % COMPACT_EVERY == 0:
        _compact(db, user_id, generation - COMPACT_EVERY)
    return generation


def _compact(db: Session, user_id: str, below: int) -> None:
    """Forget adds logged at or below ``below`` (a cold load reads Chroma anyway) and
    drops a later add cancelled; tombstones stay. Caches older than ``below`` reload."""
    later = aliased(MemoryChange)
    cancelled = exists().where(later.user_id == user_id, later.source_id == MemoryChange.source_id,
                               later.op == "add", later.generation > MemoryChange.generation)
    # Subquery on the same table: MySQL would refuse, SQLite and PostgreSQL do not.
    db.execute(delete(MemoryChange).where(MemoryChange.user_id == user_id,
                                          MemoryChange.op == "drop", cancelled))
    db.execute(delete(MemoryChange).where(MemoryChange.user_id == user_id,
                                          MemoryChange.op == "add", MemoryChange.generation <= below))
    db.execute(update(MemoryGeneration).where(MemoryGeneration.user_id == user_id)
               .values(floor=below))


class MemoryGenerations:
    """The read side: what a cache asks before it searches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def current(self, user_id: str) -> int:
        """The user's generation (0 before any memory write): one primary-key read."""
        with reads(self.engine).connect() as conn:
            value = conn.scalar(select(MemoryGeneration.generation)
                                .where(MemoryGeneration.user_id == user_id))
        return int(value or 0)

    def since(self, user_id: str, generation: int) -> Delta:
        """The net change after ``generation`` (the last logged op of each id wins)."""
        with reads(self.engine).connect() as conn:
            row = conn.execute(select(MemoryGeneration.generation, MemoryGeneration.floor)
                               .where(MemoryGeneration.user_id == user_id)).first()
            current, floor = (int(row[0]), int(row[1])) if row is not None else (0, 0)
            if current == generation:
                return Delta(current)
            if current < generation or generation < floor:  # a reset database, or compacted
                return Delta(current, complete=False)
            changes = conn.execute(
                select(MemoryChange.source_id, MemoryChange.op)
                .where(MemoryChange.user_id == user_id, MemoryChange.generation > generation,
                       MemoryChange.generation <= current)
                .order_by(MemoryChange.generation, MemoryChange.id)).all()
        last = {source: op for source, op in changes}
        return Delta(current, frozenset(s for s, op in last.items() if op == "add"),
                     frozenset(s for s, op in last.items() if op == "drop"))

    def tombstones(self, user_id: str) -> set[str]:
        """Source ids whose last logged change is a drop: never to be served again
        (unless re-added), whatever Chroma still holds."""
        later = aliased(MemoryChange)
        readded = exists().where(and_(later.user_id == user_id,
                                      later.source_id == MemoryChange.source_id,
                                      later.op == "add",
                                      later.generation > MemoryChange.generation))
        with reads(self.engine).connect() as conn:
            rows = conn.scalars(select(MemoryChange.source_id).where(
                MemoryChange.user_id == user_id, MemoryChange.op == "drop", ~readded))
            return set(rows)
