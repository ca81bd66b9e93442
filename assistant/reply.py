"""What a turn returns, and the stream objects that deliver it piece by piece."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass

from assistant.context import ContextReport
from assistant.providers.base import Usage

__all__ = ["Reply", "ReplyStream", "AsyncReplyStream", "Restart"]


class Restart(str):
    """An empty chunk meaning "forget the text streamed so far": a provider failed
    mid-reply and the next one starts over.

    It is a ``str`` (and empty) so ``"".join(stream)`` stays right for consumers that
    don't care; a UI checks ``isinstance(chunk, Restart)`` to clear its partial text and
    tell the user why.
    """

    discarded: str
    reason: str
    provider: str

    def __new__(cls, *, discarded: str = "", reason: str = "", provider: str = "") -> Restart:
        chunk = super().__new__(cls, "")
        chunk.discarded, chunk.reason, chunk.provider = discarded, reason, provider
        return chunk


@dataclass(frozen=True)
class Reply:
    """The outcome of one turn.

    ``status`` is ``ok``, ``incomplete`` (the stream broke; ``text`` holds the partial
    reply) or ``error`` (no reply). ``error`` is a sentence fit to show the user.
    """

    text: str
    provider: str
    session_id: str
    message_id: int | None
    user_message_id: int
    usage: Usage
    status: str = "ok"
    error: str | None = None
    latency_ms: float = 0.0
    context: ContextReport | None = None
    #: ``stop`` or ``length`` (hit ``max_reply_tokens``), as the provider reported it.
    finish_reason: str | None = None

    @property
    def truncated(self) -> bool:
        """The reply is whole as far as it goes but stopped at the token limit."""
        return self.finish_reason == "length"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ReplyStream:
    """Iterate for text chunks; afterwards ``.reply`` holds the stored ``Reply``."""

    def __init__(self, generator: Generator[str, None, Reply]) -> None:
        self._generator = generator
        self.reply: Reply | None = None

    def __iter__(self) -> Iterator[str]:
        self.reply = yield from self._generator

    def text(self) -> str:
        """Drain the stream and return the full text (handy in scripts)."""
        return "".join(self)


class AsyncReplyStream:
    """Async twin of ``ReplyStream``: the sync turn runs in a worker thread.

    The database and llama.cpp calls are blocking, so one thread per turn is the honest
    way to keep an event loop (Gradio's, a web server's) responsive.
    """

    _DONE = object()

    def __init__(self, stream: ReplyStream) -> None:
        self._stream = stream
        self.reply: Reply | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def pump() -> None:
            try:
                for chunk in self._stream:
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, self._DONE)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the loop below
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        threading.Thread(target=pump, name="lastmile-turn", daemon=True).start()
        while True:
            item = await queue.get()
            if item is self._DONE:
                self.reply = self._stream.reply
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
