"""``bot.chats``: what the chat page does with whole conversations besides talking —
search across them, export one (Markdown or JSON, citations and verdicts included),
switch between regenerated versions of the last reply, and choose which document
collections a chat may use.

Every call is scoped to ``user_id``; another user's session id is ``SessionNotFound``.
Regenerated replies are never deleted (``assistant.sessions``): a version switch only
moves the ``superseded`` mark from one to another.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assistant.errors import SessionNotFound
from assistant.records import SessionInfo, StoredMessage
from assistant.reply import STOPPED
from assistant.reply_record import ReplyRecord
from assistant.sessions import SUPERSEDED, Sessions, SessionStore

if TYPE_CHECKING:
    from memory.chats import ChatHit
    from memory.chats import Chats as SqlChats

__all__ = ["ChatExtras", "Versions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Versions:
    """The replies to the last message: ``ids`` oldest first, ``current`` the shown one."""

    ids: tuple[int, ...]
    current: int | None

    @property
    def index(self) -> int:
        """1-based position of the shown version (0 when none is shown)."""
        return self.ids.index(self.current) + 1 if self.current in self.ids else 0


def _status_when_restored(msg: StoredMessage) -> str:
    """A superseded reply forgot its status; its stored error says what it was."""
    if not msg.error:
        return "ok"
    return "incomplete" if msg.content else "error"


class ChatExtras:
    """Search, export, reply versions and collection scopes for one ``Assistant``."""

    def __init__(self, store: SessionStore, sessions: Sessions) -> None:
        self.store, self.sessions = store, sessions
        engine = getattr(store, "engine", None)
        self._sql: SqlChats | None = None
        if engine is not None:
            from memory.chats import Chats

            self._sql = Chats(engine)

    # search ------------------------------------------------------------------------
    def search(self, user_id: str, query: str, *, limit: int = 30) -> list[ChatHit]:
        """The user's chats whose title or messages contain ``query`` (empty without SQL)."""
        return self._sql.search(user_id, query, limit=limit) if self._sql is not None else []

    # scope -------------------------------------------------------------------------
    def scope(self, session_id: str, *, user_id: str) -> tuple[str, ...] | None:
        """The collections chosen for this chat, or None (the default scope)."""
        return self._sql.scope(user_id, session_id) if self._sql is not None else None

    def set_scope(self, session_id: str, collections: Sequence[str] | None, *,
                  user_id: str) -> None:
        if self._sql is None:
            raise SessionNotFound("collection scopes need the SQL store")
        self._sql.set_scope(user_id, session_id, collections)

    # versions ----------------------------------------------------------------------
    def _last_turn(self, user_id: str, session_id: str) -> list[StoredMessage]:
        """The replies (every version) after the newest live user message."""
        history = self.sessions.history(session_id, user_id=user_id)
        last = next((i for i in range(len(history) - 1, -1, -1)
                     if history[i].role == "user" and history[i].status != SUPERSEDED), None)
        if last is None:
            return []
        return [m for m in history[last + 1:] if m.role == "assistant" and not m.tool_calls]

    def versions(self, session_id: str, *, user_id: str) -> Versions:
        replies = self._last_turn(user_id, session_id)
        shown = next((m.id for m in reversed(replies) if m.status != SUPERSEDED), None)
        return Versions(tuple(m.id for m in replies), shown)

    def choose_version(self, session_id: str, message_id: int, *, user_id: str) -> Versions:
        """Show reply ``message_id`` (one of the last message's versions) instead of the
        current one; an id that is not a version changes nothing.

        The version put away leaves turn memory (``set_status`` drops it from recall);
        the one brought back is a memory again: its follow-up work is queued anew (the
        outbox's ``index`` job, deduplicated while one is queued), so recall finds what
        the chat now shows — whether or not it had been indexed before it was superseded."""
        replies = {m.id: m for m in self._last_turn(user_id, session_id)}
        chosen = replies.get(message_id)
        if chosen is not None and chosen.status == SUPERSEDED:
            others = [i for i, m in replies.items() if i != message_id and m.status != SUPERSEDED]
            restored = dataclasses.replace(chosen, status=_status_when_restored(chosen))
            self.store.set_status(user_id, session_id, others, SUPERSEDED)
            self.store.set_status(user_id, session_id, [message_id], restored.status)
            self._reindex(restored)
        return self.versions(session_id, user_id=user_id)

    def _reindex(self, message: StoredMessage) -> None:
        """Queue a restored reply's follow-ups (its ``index`` job when it is ``ok``)."""
        outbox = getattr(self.store, "outbox", None)
        if outbox is None:  # no job queue (an embedder's store): nothing indexes turns here
            return
        try:
            outbox.submit([message])
        except Exception:  # the switch is stored; a missing memory is logged, not raised
            log.warning("could not queue re-indexing of restored reply %s", message.id, exc_info=True)

    # export ------------------------------------------------------------------------
    def _session(self, user_id: str, session_id: str) -> SessionInfo:
        found = next((s for s in self.sessions.list(user_id) if s.session_id == session_id), None)
        if found is None:
            raise SessionNotFound(f"no session {session_id!r} for user {user_id!r}")
        return found

    def export(self, session_id: str, *, user_id: str) -> dict[str, Any]:
        """The chat as plain data: live messages with each reply's citations and
        verdicts (regenerated-away and edited-away messages are left out)."""
        info = self._session(user_id, session_id)
        messages = []
        for m in self.sessions.history(session_id, user_id=user_id):
            if m.status == SUPERSEDED or m.role not in ("user", "assistant") or m.tool_calls:
                continue
            item: dict[str, Any] = {"id": m.id, "role": m.role, "content": m.content,
                                    "created_at": m.created_at.isoformat(), "status": m.status}
            if m.role == "assistant":
                record = ReplyRecord.from_dict(m.context)
                item.update(provider=m.provider, stopped=m.error == STOPPED,
                            citations=[dataclasses.asdict(c) for c in record.citations or ()],
                            checks=[dataclasses.asdict(c) for c in record.checks or ()])
            messages.append(item)
        return {"session_id": info.session_id, "title": info.title,
                "exported_at": datetime.now(UTC).isoformat(), "messages": messages}

    def export_json(self, session_id: str, *, user_id: str) -> str:
        return json.dumps(self.export(session_id, user_id=user_id), indent=2, ensure_ascii=False)

    def export_markdown(self, session_id: str, *, user_id: str) -> str:
        data = self.export(session_id, user_id=user_id)
        lines = [f"# {data['title']}", "", f"_Exported from lastmile, {data['exported_at'][:16]} UTC._"]
        for m in data["messages"]:
            who = "You" if m["role"] == "user" else f"lastmile ({m.get('provider') or 'unknown'})"
            note = " · stopped" if m.get("stopped") else "" if m["status"] == "ok" else f" · {m['status']}"
            lines += ["", f"## {who}{note}", "", m["content"]]
            verdicts = [c for c in m.get("checks", ()) if c.get("claim", True)]
            if verdicts:
                lines += ["", "Verdicts:"]
                lines += [f"- {c.get('status') or c['verdict']}: {c['text']}" for c in verdicts]
            if m.get("citations"):
                lines += ["", "Sources:"]
                for c in m["citations"]:
                    lines.append(f"- [{c['source_id']}] {c['title'] or c['path']} ({c['verdict']})")
                    if c.get("snippet"):
                        lines.append(f"  > {' '.join(str(c['snippet']).split())[:300]}")
        return "\n".join(lines) + "\n"
