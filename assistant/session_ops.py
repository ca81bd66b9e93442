"""What a person does to their own conversation besides talking: delete it, regenerate
the last reply, edit and resend the last message, like or dislike a reply.

A mixin of ``Assistant`` so the turn loop in ``orchestrator.py`` stays about turns.
Nothing is silently rewritten: a regenerated reply or an edited message stays in the
history with status ``superseded`` (shown struck out, never fed to the model again), so
an audit can still see what was said.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from assistant.errors import SessionNotFound
from assistant.reply import ReplyStream
from guardrails import GuardContext

if TYPE_CHECKING:
    from memory.store import StoredMessage

__all__ = ["SUPERSEDED", "SessionOps"]

log = logging.getLogger(__name__)
SUPERSEDED = "superseded"
_SCAN = 200


class SessionOps:
    """Mixed into ``Assistant``; uses its ``store``, ``memory``, ``guards`` and ``_turn``."""

    store: Any
    memory: Any
    guards: Any

    def delete_session(self, session_id: str, *, user_id: str = "default") -> int:
        """Delete the session, its messages and their recall entries; returns how many
        messages went. Unknown (or another user's) session → ``SessionNotFound``."""
        ids = self.store.delete_session(user_id, session_id)
        forget = getattr(self.memory, "forget_messages", None)
        if forget is not None and ids:
            try:
                forget(user_id, ids)
            except Exception:  # noqa: BLE001 - the rows are gone; a stale index entry is logged
                log.warning("could not drop deleted messages from recall", exc_info=True)
        return len(ids)

    def _last_exchange(self, user_id: str, session_id: str) -> tuple[StoredMessage, list[StoredMessage]]:
        """The newest live user message and the live messages after it."""
        recent = [m for m in self.store.recent(user_id, session_id, _SCAN) if m.status != SUPERSEDED]
        for index in range(len(recent) - 1, -1, -1):
            if recent[index].role == "user":
                return recent[index], recent[index + 1:]
        raise SessionNotFound(f"session {session_id!r} of {user_id!r} has no message to redo")

    def regenerate(self, session_id: str, *, user_id: str = "default") -> ReplyStream:
        """Answer the last user message again; the previous reply is superseded first so
        the model does not see it."""
        message, after = self._last_exchange(user_id, session_id)
        self.store.set_status(user_id, session_id, [m.id for m in after], SUPERSEDED)
        # A regenerate wants a new answer, so it never takes the cached one.
        ctx = GuardContext(user_id=user_id, session_id=session_id,
                           destination=self._destination(),  # type: ignore[attr-defined]
                           cache=False)
        return ReplyStream(self._turn(ctx, message))  # type: ignore[attr-defined]

    def edit_and_resend(self, text: str, *, session_id: str, user_id: str = "default") -> ReplyStream:
        """Replace the last user message with ``text`` and answer that instead.

        The new text is validated and stored first; only then are the old message and its
        reply superseded, so a rejected edit leaves the conversation as it was.
        """
        message, after = self._last_exchange(user_id, session_id)
        stream = self.stream(text, session_id=session_id, user_id=user_id)  # type: ignore[attr-defined]
        self.store.set_status(user_id, session_id, [message.id, *(m.id for m in after)], SUPERSEDED)
        return stream

    def session_summary(self, session_id: str, *, user_id: str = "default") -> Any:
        """The session's newest rolling summary (text, message-id range, method), or None
        when nothing has left the window yet or there is no SQL store."""
        engine = getattr(self.store, "engine", None)
        if engine is None:
            return None
        from memory.summary_store import SummaryStore

        return SummaryStore(engine).latest(user_id, session_id)

    def feedback(self, message_id: int, value: int, *, user_id: str = "default",
                 note: str | None = None) -> None:
        """Like (+1), dislike (-1) or clear (0) a reply of this user."""
        self.store.set_feedback(user_id, message_id, value, note)
