"""``bot.sessions``: what a person does with their conversations besides talking — start,
list, rename and delete one, read its history and rolling summary, regenerate the last
reply, edit and resend the last message, like or dislike a reply.

Nothing is silently rewritten: a regenerated reply or an edited message stays in the
history with status ``superseded`` (shown struck out, never fed to the model again), so
an audit can still see what was said. Every call is scoped to ``user_id``.
"""

from __future__ import annotations

import builtins
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from assistant.errors import SessionNotFound
from assistant.protocols import MessageStore, Recall
from assistant.records import SessionInfo, StoredMessage
from assistant.reply import ReplyStream

__all__ = ["SUPERSEDED", "SessionStore", "Sessions"]

log = logging.getLogger(__name__)
SUPERSEDED = "superseded"
_SCAN = 200

class SessionStore(MessageStore, Protocol):
    """A ``MessageStore`` that can also delete, supersede and rate messages
    (``memory.store.ConversationStore`` is one)."""

    def delete_session(self, user_id: str, key: str) -> builtins.list[int]: ...
    def set_status(self, user_id: str, key: str, ids: Iterable[int], status: str) -> int: ...
    def set_feedback(self, user_id: str, message_id: int, value: int,
                     note: str | None = None) -> None: ...


#: ``stream(text, session_id=, user_id=)``: store the message and answer it (the turn loop).
Stream = Callable[..., ReplyStream]
#: ``redo(user_id, session_id, message)``: answer a stored user message again, uncached.
Redo = Callable[[str, str, StoredMessage], ReplyStream]


class Sessions:
    """The session API of one ``Assistant``; the turn loop comes in as two callables, so
    this never reaches into the assistant."""

    def __init__(self, store: SessionStore, memory: Recall | None, *, stream: Stream,
                 redo: Redo) -> None:
        self.store = store
        self.memory = memory
        self._stream, self._redo = stream, redo

    def new(self, user_id: str = "default", title: str | None = None) -> SessionInfo:
        return self.store.create_session(user_id, title)

    def list(self, user_id: str = "default") -> builtins.list[SessionInfo]:
        """The user's sessions, newest first."""
        return self.store.list_sessions(user_id)

    def __call__(self, user_id: str = "default") -> builtins.list[SessionInfo]:
        """Deprecated: ``bot.sessions(user_id)`` was a method; use ``bot.sessions.list``."""
        warnings.warn("bot.sessions(user_id) is deprecated; use bot.sessions.list(user_id)",
                      DeprecationWarning, stacklevel=2)
        return self.list(user_id)

    def rename(self, session_id: str, title: str, *, user_id: str = "default") -> SessionInfo:
        return self.store.rename_session(user_id, session_id, title)

    def history(self, session_id: str, user_id: str = "default") -> builtins.list[StoredMessage]:
        """Every stored message of the session, oldest first."""
        return self.store.history(user_id, session_id)

    def delete(self, session_id: str, *, user_id: str = "default") -> int:
        """Delete the session, its messages and their recall entries; returns how many
        messages went. Unknown (or another user's) session → ``SessionNotFound``."""
        ids = self.store.delete_session(user_id, session_id)
        forget = getattr(self.memory, "forget_messages", None)
        if forget is not None and ids:
            try:
                forget(user_id, ids)
            except Exception:  # the rows are gone; a stale index entry is logged, not raised
                log.warning("could not drop deleted messages from recall", exc_info=True)
        return len(ids)

    def _last_exchange(self, user_id: str,
                       session_id: str) -> tuple[StoredMessage, builtins.list[StoredMessage]]:
        """The newest live user message and the live messages after it."""
        recent = [m for m in self.store.recent(user_id, session_id, _SCAN) if m.status != SUPERSEDED]
        for index in range(len(recent) - 1, -1, -1):
            if recent[index].role == "user":
                return recent[index], recent[index + 1:]
        raise SessionNotFound(f"session {session_id!r} of {user_id!r} has no message to redo")

    def regenerate(self, session_id: str, *, user_id: str = "default") -> ReplyStream:
        """Answer the last user message again; the previous reply is superseded first so
        the model does not see it (and a regenerate never takes the cached answer)."""
        message, after = self._last_exchange(user_id, session_id)
        self.store.set_status(user_id, session_id, [m.id for m in after], SUPERSEDED)
        return self._redo(user_id, session_id, message)

    def edit_and_resend(self, text: str, *, session_id: str, user_id: str = "default") -> ReplyStream:
        """Replace the last user message with ``text`` and answer that instead.

        The new text is validated and stored first; only then are the old message and its
        reply superseded, so a rejected edit leaves the conversation as it was.
        """
        message, after = self._last_exchange(user_id, session_id)
        stream = self._stream(text, session_id=session_id, user_id=user_id)
        self.store.set_status(user_id, session_id, [message.id, *(m.id for m in after)], SUPERSEDED)
        return stream

    def feedback(self, message_id: int, value: int, *, user_id: str = "default",
                 note: str | None = None) -> None:
        """Like (+1), dislike (-1) or clear (0) a reply of this user."""
        self.store.set_feedback(user_id, message_id, value, note)

    def summary(self, session_id: str, *, user_id: str = "default") -> Any:
        """The session's newest rolling summary (text, message-id range, method), or None
        when nothing has left the window yet or there is no SQL store."""
        engine = getattr(self.store, "engine", None)
        if engine is None:
            return None
        from memory.summary_store import SummaryStore

        return SummaryStore(engine).latest(user_id, session_id)
