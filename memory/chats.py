"""Per-chat extras the sidebar and the chat need from SQL: search across one user's
chats (title and message text), and which document collections a chat may use.

Both are scoped by ``user_id`` in the query itself, so another user's chat can neither
match a search nor have its scope read or changed. A search query is data, never
syntax: LIKE wildcards are escaped, NUL is dropped and its length is capped, so any
string a person types is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import SessionNotFound
from assistant.records import SessionInfo
from memory.db import reads
from memory.models import Conversation, Message
from memory.models import aware as _aware

__all__ = ["ATTACHED_PREFIX", "ChatHit", "Chats", "attached_collection", "in_scope"]

#: Files attached in a chat land in ``chat:<session key>``: that chat's own collection.
ATTACHED_PREFIX = "chat:"
MAX_QUERY = 200
SNIPPET = 60


def attached_collection(session_id: str) -> str:
    """The collection a chat's attached files go to."""
    return f"{ATTACHED_PREFIX}{session_id}"


def in_scope(collection: str, chosen: Sequence[str] | None, session_id: str | None) -> bool:
    """Whether a chat may draw on ``collection``: the person's choice when there is one,
    else every collection except files attached in other chats."""
    if chosen is not None:
        return collection in chosen
    return not collection.startswith(ATTACHED_PREFIX) or (
        session_id is not None and collection == attached_collection(session_id))


@dataclass(frozen=True)
class ChatHit:
    """A chat that matched a search, with where it matched (title or a message)."""

    session: SessionInfo
    snippet: str
    message_id: int | None = None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _snippet(text: str, needle: str) -> str:
    at = text.lower().find(needle)
    start = max(0, at - SNIPPET // 2) if at >= 0 else 0
    cut = " ".join(text[start:start + SNIPPET + len(needle)].split())
    return ("…" if start else "") + cut + ("…" if start + SNIPPET + len(needle) < len(text) else "")


class Chats:
    """Chat search and per-chat collection scopes over the conversation tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._reads = sessionmaker(reads(engine), expire_on_commit=False)  # no BEGIN/ROLLBACK

    def search(self, user_id: str, query: str, *, limit: int = 30) -> list[ChatHit]:
        """This user's chats whose title or a live message contains ``query`` (any case),
        most recently active first; one hit per chat. A blank query matches nothing."""
        needle = " ".join(query.replace("\0", " ").split())[:MAX_QUERY].lower()
        if not needle:
            return []
        pattern = f"%{_escape(needle)}%"
        titled = func.lower(Conversation.title).like(pattern, escape="\\")
        said = and_(Message.role.in_(("user", "assistant")), Message.status != "superseded",
                    func.lower(Message.content).like(pattern, escape="\\"))
        stmt = (select(Conversation, Message.id, Message.content)
                .outerjoin(Message, and_(Message.conversation_id == Conversation.id,
                                         Message.user_id == user_id, said))
                .where(Conversation.user_id == user_id, or_(titled, Message.id.is_not(None)))
                .order_by(Conversation.updated_at.desc(), Conversation.id.desc(), Message.id.desc()))
        hits: dict[int, ChatHit] = {}
        with self._sessions() as db:
            for conv, message_id, content in db.execute(stmt):
                if conv.id in hits:
                    continue
                info = SessionInfo(conv.key, conv.user_id, conv.title, _aware(conv.created_at),
                                   _aware(conv.updated_at))
                text = content if content is not None and needle not in conv.title.lower() else conv.title
                hits[conv.id] = ChatHit(info, _snippet(text, needle), message_id)
                if len(hits) >= limit:
                    break
        return list(hits.values())

    def _row(self, db: Session, user_id: str, session_id: str) -> Conversation:
        row = db.scalar(select(Conversation).where(
            Conversation.user_id == user_id, Conversation.key == session_id))
        if row is None:
            raise SessionNotFound(f"no session {session_id!r} for user {user_id!r}")
        return row

    def scope(self, user_id: str, session_id: str) -> tuple[str, ...] | None:
        """The collections the person chose for this chat, or None (the default)."""
        with self._reads() as db:
            row = db.scalar(select(Conversation.collections).where(
                Conversation.user_id == user_id, Conversation.key == session_id))
        return None if row is None else tuple(str(c) for c in row)

    def set_scope(self, user_id: str, session_id: str, collections: Sequence[str] | None) -> None:
        """Choose the chat's collections (None: back to the default)."""
        chosen = None if collections is None else sorted({str(c)[:128] for c in collections})
        with self._sessions() as db, db.begin():
            self._row(db, user_id, session_id).collections = chosen
