"""Versioned session summaries in SQL, scoped by user like every other store.

A summary version covers messages ``from_id..to_id`` of one session; each fold writes a
new version (the old ones stay, for audit and for the "show a session's summary" API).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from memory.db import reads
from memory.forgotten import suppressed
from memory.models import Conversation, Message, SessionSummary
from memory.store import StoredMessage, _message

__all__ = ["SummaryRecord", "SummaryStore"]


@dataclass(frozen=True)
class SummaryRecord:
    session_id: str
    user_id: str
    version: int
    from_id: int
    to_id: int
    text: str
    method: str
    model: str | None
    token_count: int
    created_at: datetime
    error: str | None = None


def _record(row: SessionSummary, key: str) -> SummaryRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return SummaryRecord(key, row.user_id, row.version, row.from_id, row.to_id, row.text,
                         row.method, row.model, row.token_count, created, row.error)


class SummaryStore:
    """Read and append summary versions; every call names the user."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reads = sessionmaker(reads(engine), expire_on_commit=False)  # no BEGIN/ROLLBACK

    def _conversation_id(self, db: Session, user_id: str, key: str) -> int | None:
        return db.scalar(select(Conversation.id).where(Conversation.user_id == user_id,
                                                       Conversation.key == key))

    def versions(self, user_id: str, key: str) -> list[SummaryRecord]:
        """Every version of the session's summary, oldest first ([] if none / not yours)."""
        with self._reads() as db:
            conv = self._conversation_id(db, user_id, key)
            if conv is None:
                return []
            rows = db.scalars(select(SessionSummary).where(
                SessionSummary.conversation_id == conv, SessionSummary.user_id == user_id)
                .order_by(SessionSummary.version))
            return [_record(r, key) for r in rows]

    def latest(self, user_id: str, key: str) -> SummaryRecord | None:
        """The newest version (None: no summary, or not this user's session); one
        statement, read every turn."""
        conv = select(Conversation.id).where(Conversation.user_id == user_id,
                                             Conversation.key == key).scalar_subquery()
        with self._reads() as db:
            row = db.scalar(select(SessionSummary).where(
                SessionSummary.conversation_id == conv, SessionSummary.user_id == user_id)
                .order_by(SessionSummary.version.desc()).limit(1))
            return None if row is None else _record(row, key)

    def turns(self, user_id: str, key: str, after_id: int, upto_id: int,
              limit: int = 200) -> list[StoredMessage]:
        """Usable messages with ``after_id < id <= upto_id``, oldest first."""
        with self._reads() as db:
            conv = self._conversation_id(db, user_id, key)
            if conv is None:
                return []
            rows = list(db.scalars(select(Message).where(
                Message.conversation_id == conv, Message.user_id == user_id,
                Message.id > after_id, Message.id <= upto_id).order_by(Message.id).limit(limit)))
        hidden = suppressed(self.engine, user_id) if rows else set()  # forget means gone
        return [_message(r, key) for r in rows
                if (r.role == "user" or r.status == "ok") and r.id not in hidden]

    def drop_covering(self, user_id: str, message_ids: Collection[int]) -> int:
        """Delete every summary version folded from one of ``message_ids`` (a forgotten
        fact's sources and restatements); the next turn refolds the session without them."""
        ids = {int(i) for i in message_ids}
        if not ids:
            return 0
        with self._sessions() as db, db.begin():
            where = dict(db.execute(select(Message.id, Message.conversation_id).where(
                Message.id.in_(ids), Message.user_id == user_id)).all())
            rows = db.scalars(select(SessionSummary).where(
                SessionSummary.user_id == user_id,
                SessionSummary.conversation_id.in_(set(where.values()))))
            stale = [r for r in rows if any(c == r.conversation_id and r.from_id <= i <= r.to_id
                                            for i, c in where.items())]
            for row in stale:
                db.delete(row)
        return len(stale)

    def save(self, user_id: str, key: str, *, version: int, from_id: int, to_id: int, text: str,
             method: str, model: str | None, token_count: int,
             error: str | None = None) -> SummaryRecord | None:
        """Append ``version``; ``None`` if another worker wrote that version first."""
        try:
            with self._sessions() as db, db.begin():
                conv = self._conversation_id(db, user_id, key)
                if conv is None:
                    return None
                row = SessionSummary(conversation_id=conv, user_id=user_id, version=version,
                                     from_id=from_id, to_id=to_id, text=text, method=method,
                                     model=model, token_count=token_count, error=error)
                db.add(row)
                db.flush()
                return _record(row, key)
        except IntegrityError:
            return None
