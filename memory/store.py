"""The SQL conversation store: sessions, messages and provider calls for one user at a time.

Every method takes ``user_id`` and filters by it; a session is addressed by the user's
own key, so nothing here can return another user's rows (the indexing bookkeeping at the
end serves the background workers, which act for every user). Methods return frozen
dataclasses, never ORM objects, so callers can't lazily touch a closed session.

The write path is the outbox's choke point: with an ``outbox`` (``memory.outbox``),
every message is committed in one transaction with its follow-up jobs (index entry,
facts), so a message that was acknowledged cannot lose them, whoever wrote it. A turn's
user message is written ``pending``; storing its reply (``reply_to=``) marks it
``answered`` or ``interrupted`` in the same transaction.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import DatabaseUnavailable, SessionNotFound
from assistant.records import SessionInfo, StoredMessage
from memory.db import reads, rowcount
from memory.generations import bump, message_sources
from memory.models import Conversation, Feedback, Message, ProviderCall, User, utcnow
from memory.models import aware as _aware

if TYPE_CHECKING:
    from memory.outbox import Outbox

__all__ = ["ConversationStore", "SessionInfo", "StoredMessage"]

_T = TypeVar("_T")
DEFAULT_TITLE = "New chat"
MAX_ID = 128
PENDING, ANSWERED, INTERRUPTED = "pending", "answered", "interrupted"
REPLY_STATES = (PENDING, ANSWERED, INTERRUPTED)


def _check_id(kind: str, value: object) -> None:
    """Ids are caller-chosen strings; reject what would fail (differently) per database:
    PostgreSQL refuses a NUL where SQLite stores it, and neither wants control characters
    or lone surrogates (not encodable) in a key."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID or any(
            unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError(f"{kind} must be a non-empty string of at most {MAX_ID} characters "
                         f"without control characters, got {value!r:.80}")


def _check_text(kind: str, value: str) -> None:
    """Text both databases store alike: PostgreSQL cannot hold a NUL, neither a lone
    surrogate; refusing both here keeps SQLite from silently accepting what PG rejects."""
    if not isinstance(value, str):
        raise ValueError(f"{kind} must be text, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{kind} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{kind} must be valid Unicode (no lone surrogates)") from None


def _check_tool_call(call: dict) -> dict:
    """A tool call as langchain-core's ``ToolCall`` wants it, or a clear error."""
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
        raise ValueError(f"a tool call needs a non-empty 'name', got {call!r:.120}")
    _check_id("tool call id", call.get("id"))
    args = call.get("args", {})
    if not isinstance(args, dict):
        raise ValueError(f"tool call {call['id']!r}: 'args' must be a JSON object, got {args!r:.80}")
    return {"id": call["id"], "name": call["name"], "args": args}


def _message(row: Message, key: str) -> StoredMessage:
    return StoredMessage(
        id=row.id, session_id=key, user_id=row.user_id, role=row.role, content=row.content,
        status=row.status, created_at=_aware(row.created_at), provider=row.provider,
        token_count=row.token_count, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, latency_ms=row.latency_ms, error=row.error,
        finish_reason=row.finish_reason, context=row.context, reply_state=row.reply_state,
    )


def _session(row: Conversation, count: int = 0) -> SessionInfo:
    return SessionInfo(row.key, row.user_id, row.title, _aware(row.created_at),
                       _aware(row.updated_at), count)


class ConversationStore:
    """Durable, per-user conversation history over any SQLAlchemy engine."""

    #: ``add_message(..., also=)`` runs more writes in the message's transaction.
    writes_along = True

    def __init__(self, engine: Engine, *, outbox: Outbox | None = None) -> None:
        self.engine = engine
        #: Follow-up jobs written with every message (set by ``assistant.wiring``).
        self.outbox = outbox
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        #: Sessions that only read: autocommit, no BEGIN/ROLLBACK round trips (``memory.db``).
        self._reads = sessionmaker(reads(engine), expire_on_commit=False)

    def _db(self) -> Session:
        return self._sessions()

    def _read(self) -> Session:
        return self._reads()

    def _conversation(self, db: Session, user_id: str, key: str, *, create: bool) -> Conversation:
        _check_id("user_id", user_id)
        _check_id("session_id", key)
        row = db.scalar(select(Conversation).where(Conversation.user_id == user_id,
                                                   Conversation.key == key))
        if row is not None:
            return row
        if not create:
            raise SessionNotFound(f"no session {key!r} for user {user_id!r}")
        if db.get(User, user_id) is None:
            db.add(User(id=user_id))
            db.flush()
        row = Conversation(user_id=user_id, key=key, title=DEFAULT_TITLE)
        db.add(row)
        db.flush()
        return row

    def _commit_with_retry(self, work: Callable[[Session], _T]) -> _T:
        """Run ``work(db)`` in a transaction; one retry covers a racing session create, or
        a pooled connection that dropped (the engine no longer pings on every checkout:
        ``memory.db``), since nothing of a failed transaction was kept."""
        for attempt in (1, 2):
            try:
                with self._db() as db, db.begin():
                    return work(db)
            except IntegrityError:
                if attempt == 2:
                    raise
            except OperationalError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise DatabaseUnavailable(f"database error: {exc.orig}") from exc
        raise AssertionError("unreachable")

    # sessions -----------------------------------------------------------------
    def create_session(self, user_id: str, title: str | None = None) -> SessionInfo:
        """A new session with a fresh random key."""
        key = uuid.uuid4().hex[:12]

        def work(db: Session) -> SessionInfo:
            row = self._conversation(db, user_id, key, create=True)
            if title:
                row.title = title[:200]
            return _session(row)

        return self._commit_with_retry(work)

    def ensure_session(self, user_id: str, key: str) -> SessionInfo:
        return self._commit_with_retry(lambda db: _session(self._conversation(db, user_id, key, create=True)))

    def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """This user's sessions, most recently active first."""
        counts = (select(Message.conversation_id, func.count(Message.id).label("n"))
                  .group_by(Message.conversation_id).subquery())
        stmt = (select(Conversation, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.conversation_id == Conversation.id)
                .where(Conversation.user_id == user_id)
                .order_by(Conversation.updated_at.desc(), Conversation.id.desc()))
        with self._read() as db:
            return [_session(row, n) for row, n in db.execute(stmt)]

    def rename_session(self, user_id: str, key: str, title: str) -> SessionInfo:
        title = title.strip()
        if not title:
            raise ValueError("a session title cannot be empty")
        _check_text("a session title", title)

        def work(db: Session) -> SessionInfo:
            row = self._conversation(db, user_id, key, create=False)
            row.title = title[:200]
            return _session(row)

        return self._commit_with_retry(work)

    # messages -----------------------------------------------------------------
    def add_message(self, user_id: str, key: str, role: str, content: str, *,
                    reply_to: int | None = None, also: Callable[[Connection], Any] | None = None,
                    **fields: Any) -> StoredMessage:
        """Append a message (creating the session on first use) and commit it, with its
        follow-up jobs from the outbox in the same transaction.

        ``reply_state="pending"`` (a turn's user message) marks the session's earlier
        pending messages ``interrupted``: their turn ended without a reply (a reply
        that still arrives marks its message answered again). ``reply_to``: the id of the
        user message this reply answers — ``answered`` for an ``ok`` reply, else
        ``interrupted``. ``also(connection)`` writes more in the same transaction (the
        turn's ledger rows with its reply); it may run twice (the retry)."""
        _check_text("message content", content)
        fields.setdefault("status", "ok")
        if fields.get("reply_state") not in (None, *REPLY_STATES):
            raise ValueError(f"reply_state must be one of {REPLY_STATES}, got {fields['reply_state']!r}")
        outbox = self.outbox
        kinds: list[str] = []

        def work(db: Session) -> StoredMessage:
            conv = self._conversation(db, user_id, key, create=True)
            now = utcnow()
            if role == "user" and fields.get("reply_state") == PENDING:
                db.execute(update(Message).where(Message.conversation_id == conv.id,
                                                 Message.reply_state == PENDING)
                           .values(reply_state=INTERRUPTED))
            row = Message(conversation_id=conv.id, user_id=user_id, role=role, content=content,
                          created_at=now, **fields)
            db.add(row)
            conv.updated_at = now
            if role == "user" and conv.title == DEFAULT_TITLE:
                conv.title = " ".join(content.split())[:60] or DEFAULT_TITLE
            if reply_to is not None:
                state = ANSWERED if fields["status"] == "ok" else INTERRUPTED
                db.execute(update(Message).where(Message.id == reply_to, Message.role == "user",
                                                 Message.conversation_id == conv.id)
                           .values(reply_state=state))
            db.flush()
            stored = _message(row, key)
            kinds[:] = outbox.write(db, stored) if outbox is not None else []
            if also is not None:
                also(db.connection())
            return stored

        stored = self._commit_with_retry(work)
        if outbox is not None and kinds:
            outbox.notify(kinds)
        return stored

    def add_tool_call(self, user_id: str, key: str, tool_calls: list[dict], content: str = "",
                      **fields: Any) -> StoredMessage:
        """Store an assistant message that calls tools (each ``{"id", "name", "args"}``)."""
        calls = [_check_tool_call(c) for c in tool_calls]
        if not calls:
            raise ValueError("an assistant tool-call message needs at least one tool call")
        if len({c["id"] for c in calls}) != len(calls):
            raise ValueError("tool call ids must be unique within one message")
        return self.add_message(user_id, key, "assistant", content,
                                context={**(fields.pop("context", None) or {}), "tool_calls": calls},
                                **fields)

    def add_tool_result(self, user_id: str, key: str, tool_call_id: str, content: str, *,
                        name: str | None = None, **fields: Any) -> StoredMessage:
        """Store a tool's result; it must answer a call stored earlier in this session."""
        _check_id("tool_call_id", tool_call_id)
        with self._db() as db:
            conv = self._conversation(db, user_id, key, create=False)
            rows = db.scalars(select(Message.context).where(
                Message.conversation_id == conv.id, Message.role == "assistant")
                .order_by(Message.id.desc()).limit(50))
            known = {c.get("id") for ctx in rows for c in (ctx or {}).get("tool_calls") or []}
        if tool_call_id not in known:
            raise ValueError(f"no tool call {tool_call_id!r} in session {key!r}; store the "
                             "assistant's tool call before its result")
        return self.add_message(user_id, key, "tool", content,
                                context={"tool_call_id": tool_call_id, "name": name}, **fields)

    def history(self, user_id: str, key: str) -> list[StoredMessage]:
        """All messages of a session, oldest first. Unknown session → ``SessionNotFound``."""
        with self._read() as db:
            conv = self._conversation(db, user_id, key, create=False)
            rows = db.scalars(select(Message).where(Message.conversation_id == conv.id)
                              .order_by(Message.id))
            return [_message(r, key) for r in rows]

    def recent(self, user_id: str, key: str, limit: int) -> list[StoredMessage]:
        """The newest ``limit`` messages, oldest first; empty for an unknown session.
        One statement (the session is looked up inside it): this runs every turn."""
        _check_id("user_id", user_id)
        _check_id("session_id", key)
        conv = (select(Conversation.id).where(Conversation.user_id == user_id,
                                              Conversation.key == key).scalar_subquery())
        with self._read() as db:
            rows = db.scalars(select(Message).where(Message.conversation_id == conv)
                              .order_by(Message.id.desc()).limit(limit))
            return [_message(r, key) for r in reversed(list(rows))]

    def provider_calls(self, user_id: str) -> list[dict]:
        with self._read() as db:
            rows = db.scalars(select(ProviderCall).where(ProviderCall.user_id == user_id)
                              .order_by(ProviderCall.id))
            return [{c.name: getattr(r, c.name) for c in ProviderCall.__table__.columns} for r in rows]

    # indexing bookkeeping -----------------------------------------------------------
    def unindexed(self, limit: int = 500) -> list[StoredMessage]:
        """Messages not yet in the vector index (e.g. after a crash), oldest first."""
        stmt = (select(Message, Conversation.key).join(Conversation)
                .where(Message.indexed_at.is_(None), Message.status == "ok")
                .order_by(Message.id).limit(limit))
        with self._read() as db:
            return [_message(row, key) for row, key in db.execute(stmt)]

    def mark_indexed(self, ids: Iterable[int]) -> None:
        """Record that these messages' vectors are in Chroma (call it after the upsert):
        their users' memory generations move in the same transaction, so every replica's
        cache picks them up. Generations are locked before the rows are re-read, so a
        message deleted meanwhile is never logged as added (issue 12)."""
        ids = list(ids)
        if not ids:
            return
        with self._db() as db, db.begin():
            users = sorted(set(db.scalars(select(Message.user_id).where(Message.id.in_(ids)))))
            for user_id in users:  # sorted: two writers lock in one order (no deadlock)
                live = db.scalars(select(Message.id).where(
                    Message.id.in_(ids), Message.user_id == user_id, Message.status == "ok"))
                bump(db, user_id, added=message_sources(live))
            db.execute(update(Message).where(Message.id.in_(ids)).values(indexed_at=utcnow()))

    def for_indexing(self, ids: Iterable[int]) -> tuple[list[StoredMessage], dict[int, str]]:
        """The live (``ok``) messages among ``ids`` (gone or superseded ones are left
        out), and for each reply the text of the user message it answers (so an echo of
        it is not indexed when the two arrive in different batches)."""
        wanted = list(ids)
        if not wanted:
            return [], {}
        with self._read() as db:
            rows = list(db.execute(select(Message, Conversation.key).join(Conversation)
                                   .where(Message.id.in_(wanted), Message.status == "ok")
                                   .order_by(Message.id)))
            asked: dict[int, str] = {}
            for row, _key in rows:
                if row.role == "assistant":
                    text = db.scalar(select(Message.content).where(
                        Message.conversation_id == row.conversation_id, Message.role == "user",
                        Message.id < row.id).order_by(Message.id.desc()).limit(1))
                    if text is not None:
                        asked[row.id] = text
            return [_message(row, key) for row, key in rows], asked

    def interrupt_stale(self, older_than_s: float) -> int:
        """Mark turns still ``pending`` after ``older_than_s`` seconds ``interrupted``: the
        process answering them died (any live process runs this; one small index read)."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self._db() as db, db.begin():
            return rowcount(db.execute(update(Message).where(Message.reply_state == PENDING,
                                                             Message.created_at < cutoff)
                                       .values(reply_state=INTERRUPTED)))

    # the user's own edits ------------------------------------------------------------
    def delete_session(self, user_id: str, key: str) -> list[int]:
        """Delete a session and its messages; returns their ids (to drop from indexes).
        Unknown session → ``SessionNotFound``."""

        def work(db: Session) -> list[int]:
            conv = self._conversation(db, user_id, key, create=False)
            ids = list(db.scalars(select(Message.id).where(Message.conversation_id == conv.id)))
            db.execute(delete(Message).where(Message.conversation_id == conv.id))
            db.delete(conv)
            bump(db, user_id, dropped=message_sources(ids))  # every replica's recall drops them
            return ids

        return self._commit_with_retry(work)

    def set_status(self, user_id: str, key: str, ids: Iterable[int], status: str) -> int:
        """Re-mark messages of this user's session (e.g. ``superseded`` by a regenerate)."""
        ids = list(ids)

        def work(db: Session) -> int:
            conv = self._conversation(db, user_id, key, create=False)
            result = db.execute(update(Message).where(Message.conversation_id == conv.id,
                                                      Message.id.in_(ids)).values(status=status))
            if status != "ok":  # only ok messages are memories: recall drops the others
                mine = db.scalars(select(Message.id).where(Message.conversation_id == conv.id,
                                                           Message.id.in_(ids)))
                bump(db, user_id, dropped=message_sources(mine))
            return rowcount(result)

        return self._commit_with_retry(work) if ids else 0

    def set_reply_state(self, user_id: str, key: str, message_id: int, state: str) -> int:
        """Re-mark one user message of this user's session (``pending`` again when it is
        answered anew: a regenerate)."""
        if state not in REPLY_STATES:
            raise ValueError(f"reply_state must be one of {REPLY_STATES}, got {state!r}")

        def work(db: Session) -> int:
            conv = self._conversation(db, user_id, key, create=False)
            return rowcount(db.execute(update(Message).where(
                Message.conversation_id == conv.id, Message.id == message_id,
                Message.role == "user").values(reply_state=state)))

        return self._commit_with_retry(work)

    def set_feedback(self, user_id: str, message_id: int, value: int, note: str | None = None) -> None:
        """Like (+1), dislike (-1) or clear (0) one of this user's replies."""
        if value not in (-1, 0, 1):
            raise ValueError(f"feedback must be -1, 0 or 1, got {value!r}")

        def work(db: Session) -> None:
            owner = db.scalar(select(Message.user_id).where(Message.id == message_id,
                                                            Message.role == "assistant"))
            if owner != user_id:  # another user's message is as unknown as a missing one
                raise SessionNotFound(f"no reply {message_id} for user {user_id!r}")
            db.execute(delete(Feedback).where(Feedback.user_id == user_id,
                                              Feedback.message_id == message_id))
            if value:
                db.add(Feedback(user_id=user_id, message_id=message_id, value=value,
                                note=(note or None) and note[:2000]))

        self._commit_with_retry(work)

    def feedback(self, user_id: str, key: str) -> dict[int, int]:
        """``{message_id: +1/-1}`` for this user's session."""
        stmt = (select(Feedback.message_id, Feedback.value).join(Message, Message.id == Feedback.message_id)
                .join(Conversation).where(Feedback.user_id == user_id, Conversation.key == key,
                                          Conversation.user_id == user_id))
        with self._read() as db:
            return {mid: value for mid, value in db.execute(stmt)}
