"""The human review queue: answers we cannot trust and risky memory writes wait here.

An answer goes in when its confidence is below ``LASTMILE_REVIEW_THRESHOLD`` (weak
grounding, the tiny local model answering after a remote one failed, a failed
validation). The stored reply is marked ``review_status: pending`` in its ``context``
until a reviewer decides: ``approve`` clears the mark, ``edit`` replaces the stored text
with the reviewer's, ``reject`` replaces it with a polite note. A memory write the
guard ``guardrails.review_gate.ReviewGate`` holds (prompt-injection text, sensitive
identifiers) is written only on approval, through the applier registered for its kind.
Every decision is an audit row (``review_decisions``) with the reviewer's id and note.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import sessionmaker

from assistant.errors import ReviewNotFound
from memory.db import rowcount
from memory.models import Conversation, Message, ReviewDecision, ReviewItem, aware, utcnow

__all__ = ["DECISIONS", "REJECTED_NOTE", "ReviewInfo", "ReviewQueue"]

DECISIONS = ("approve", "edit", "reject")
REJECTED_NOTE = ("A reviewer withdrew this answer because it could not be verified. "
                 "Please ask again or rephrase; we're sorry for the trouble.")
_STATUS = {"approve": "approved", "edit": "edited", "reject": "rejected"}


@dataclass(frozen=True)
class ReviewInfo:
    """A review item with what a reviewer needs to judge it."""

    id: int
    kind: str
    status: str
    user_id: str
    session_id: str | None
    message_id: int | None
    question: str | None
    content: str
    reason: str
    confidence: float | None
    details: dict
    created_at: datetime
    decided_at: datetime | None = None


def _info(row: ReviewItem) -> ReviewInfo:
    return ReviewInfo(row.id, row.kind, row.status, row.user_id, row.session_key, row.message_id,
                      row.question, row.content, row.reason, row.confidence, row.details or {},
                      aware(row.created_at), aware(row.decided_at))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: dataclasses.asdict(o)
                                 if dataclasses.is_dataclass(o) and not isinstance(o, type) else str(o)))


class ReviewQueue:
    """Submit, list and decide review items in the SQL database."""

    def __init__(self, engine: Engine, *,
                 appliers: dict[str, Callable[[ReviewInfo, str], None]] | None = None) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        #: kind -> called with (item, final text) when an item of that kind is approved/edited.
        self.appliers = dict(appliers or {})

    def submit(self, *, kind: str, user_id: str, content: str, reason: str,
               session_id: str | None = None, message_id: int | None = None,
               question: str | None = None, confidence: float | None = None,
               details: dict | None = None) -> ReviewInfo:
        """Queue one item; an answer's stored message is marked pending in the same transaction."""
        with self._sessions() as db, db.begin():
            row = ReviewItem(kind=kind, status="pending", user_id=user_id, session_key=session_id,
                             message_id=message_id, question=question, content=content,
                             reason=reason[:500], confidence=confidence,
                             details=_jsonable(details or {}), created_at=utcnow())
            db.add(row)
            db.flush()
            if message_id is not None:
                self._mark(db, message_id, {"review_status": "pending", "review_id": row.id})
            return _info(row)

    @staticmethod
    def _mark(db: Any, message_id: int, values: dict, **columns: Any) -> None:
        message = db.get(Message, message_id)
        if message is not None:
            message.context = {**(message.context or {}), **values}  # reassign: JSON change tracked
            for name, value in columns.items():
                setattr(message, name, value)

    def pending(self, *, reviewer_id: str | None = None, user_id: str | None = None,
                kind: str | None = None, limit: int = 50) -> list[ReviewInfo]:
        """Oldest pending items first. ``reviewer_id`` is recorded for the UI's roles to
        filter on later; today every reviewer sees the whole queue."""
        stmt = select(ReviewItem).where(ReviewItem.status == "pending")
        if user_id is not None:
            stmt = stmt.where(ReviewItem.user_id == user_id)
        if kind is not None:
            stmt = stmt.where(ReviewItem.kind == kind)
        with self._sessions() as db:
            return [_info(r) for r in db.scalars(stmt.order_by(ReviewItem.id).limit(limit))]

    def get(self, item_id: int) -> ReviewInfo:
        with self._sessions() as db:
            row = db.get(ReviewItem, item_id)
            if row is None:
                raise ReviewNotFound(f"no review item {item_id}")
            return _info(row)

    def decisions(self, item_id: int) -> list[dict]:
        """The audit trail of one item, oldest first."""
        with self._sessions() as db:
            rows = db.scalars(select(ReviewDecision).where(ReviewDecision.item_id == item_id)
                              .order_by(ReviewDecision.id))
            return [{c.name: getattr(r, c.name) for c in ReviewDecision.__table__.columns} for r in rows]

    def decide(self, item_id: int, decision: str, *, reviewer_id: str, note: str | None = None,
               edited_text: str | None = None) -> ReviewInfo:
        """Approve, edit (with ``edited_text``) or reject a pending item."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        if not isinstance(reviewer_id, str) or not reviewer_id.strip():
            raise ValueError("a decision needs the reviewer's id")
        if decision == "edit" and not (edited_text or "").strip():
            raise ValueError("an edit needs the corrected text (edited_text)")
        with self._sessions() as db, db.begin():
            # The status guard makes two reviewers racing on one item safe: one wins.
            won = rowcount(db.execute(update(ReviewItem).where(ReviewItem.id == item_id,
                                                      ReviewItem.status == "pending")
                             .values(status=_STATUS[decision], decided_at=utcnow())))
            if not won:
                raise ReviewNotFound(f"no pending review item {item_id}")
            row = db.get_one(ReviewItem, item_id)  # the update above found it
            db.add(ReviewDecision(item_id=item_id, reviewer_id=reviewer_id, decision=decision,
                                  note=note, edited_text=edited_text if decision == "edit" else None,
                                  created_at=utcnow()))
            if row.message_id is not None:
                final = {"approve": None, "edit": edited_text, "reject": REJECTED_NOTE}[decision]
                columns = {} if final is None else {"content": final, "token_count": None,
                                                    "indexed_at": None}  # re-index the new text
                self._mark(db, row.message_id, {"review_status": _STATUS[decision]}, **columns)
            info = _info(row)
        applier = self.appliers.get(info.kind)
        if applier is not None and decision != "reject":
            applier(info, edited_text if decision == "edit" and edited_text is not None else info.content)
        return info

    def status_for(self, user_id: str, session_id: str) -> dict[int, str]:
        """``{message_id: review status}`` for one user's session (for history views)."""
        stmt = (select(ReviewItem.message_id, ReviewItem.status)
                .join(Message, Message.id == ReviewItem.message_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.user_id == user_id, Conversation.key == session_id))
        with self._sessions() as db:
            return {mid: status for mid, status in db.execute(stmt) if mid is not None}
