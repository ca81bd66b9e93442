"""Which chats have a reply streaming right now, and what was sent meanwhile.

One registry per app (every browser tab of every user shares it), keyed by
``(user_id, session_id)``, so the Stop button of one tab finds the stream another
request started, and a message sent while a reply streams waits for it instead of
being dropped. The handler that started a turn drains the queue when its reply ends:
one runner per chat at a time, decided under one lock, so a message arriving just as
a reply finishes is either taken by that runner or starts its own turn — never lost.
Queued text lives only here (it is stored once its turn starts), so leaving the chat
hands it back (``drop``) for the page to say so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from assistant.reply import ReplyStream

__all__ = ["Queued", "Turns"]

Key = tuple[str, str]


@dataclass(frozen=True)
class Queued:
    """A message waiting for the reply before it: its text, attached files and the
    lines for files the page kept back from it (too big)."""

    text: str
    files: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


@dataclass
class _Chat:
    stream: ReplyStream | None = None
    queue: list[Queued] = field(default_factory=list)
    partial: str = ""  # the reply so far, for a page that renders while it streams


class Turns:
    """Running turns and their queues (thread-safe; Gradio runs handlers in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chats: dict[Key, _Chat] = {}

    def claim_or_queue(self, user_id: str, session_id: str, item: Queued) -> object | None:
        """A runner token when no turn runs in this chat (the caller now runs one), or
        None: one runs, and ``item`` waits in its queue."""
        with self._lock:
            chat = self._chats.get((user_id, session_id))
            if chat is None:
                chat = self._chats[(user_id, session_id)] = _Chat()
                return chat
            chat.queue.append(item)
            return None

    def claim(self, user_id: str, session_id: str) -> object | None:
        """A runner token, or None while a turn runs in this chat (nothing is queued)."""
        with self._lock:
            if (user_id, session_id) in self._chats:
                return None
            chat = self._chats[(user_id, session_id)] = _Chat()
            return chat

    def started(self, token: object, stream: ReplyStream) -> None:
        """The runner's current stream (what Stop stops)."""
        with self._lock:
            if isinstance(token, _Chat):
                token.stream, token.partial = stream, ""

    def progress(self, token: object, partial: str) -> None:
        if isinstance(token, _Chat):
            token.partial = partial

    def partial(self, user_id: str, session_id: str) -> str | None:
        """The streaming reply's text so far, or None when no reply streams."""
        with self._lock:
            chat = self._chats.get((user_id, session_id))
            return chat.partial if chat is not None and chat.stream is not None else None

    def next_or_release(self, user_id: str, session_id: str, token: object) -> Queued | None:
        """The runner's reply ended: the next queued message, or None (and the chat is
        free again). A runner whose chat was left (``drop``) gets None."""
        with self._lock:
            chat = self._chats.get((user_id, session_id))
            if chat is None or chat is not token:
                return None
            chat.stream = None
            if chat.queue:
                return chat.queue.pop(0)
            del self._chats[(user_id, session_id)]
            return None

    def abandon(self, user_id: str, session_id: str, token: object) -> list[Queued]:
        """The runner failed: free the chat and hand back what was still queued."""
        with self._lock:
            if self._chats.get((user_id, session_id)) is not token:
                return []
            return self._chats.pop((user_id, session_id)).queue

    def queued(self, user_id: str, session_id: str) -> list[Queued]:
        with self._lock:
            chat = self._chats.get((user_id, session_id))
            return list(chat.queue) if chat is not None else []

    def stop(self, user_id: str, session_id: str) -> bool:
        """Stop the chat's streaming reply; False when none streams (harmless)."""
        with self._lock:
            chat = self._chats.get((user_id, session_id))
            stream = chat.stream if chat is not None else None
        if stream is None or stream.stopped or stream.reply is not None:
            return False
        stream.stop()
        return True

    def drop(self, user_id: str, session_id: str) -> list[Queued]:
        """Leaving the chat: stop its reply, forget the runner, hand back the queue."""
        self.stop(user_id, session_id)
        with self._lock:
            chat = self._chats.pop((user_id, session_id), None)
        return chat.queue if chat is not None else []
