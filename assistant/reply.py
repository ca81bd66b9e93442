"""What a turn returns, and the stream objects that deliver it piece by piece."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass

from assistant.providers.base import Usage
from assistant.records import ContextReport

__all__ = ["STOPPED", "AsyncReplyStream", "Citation", "Reply", "ReplyStream", "Restart",
           "SentenceCheck"]

#: ``messages.error`` of a reply the person stopped: status ``incomplete``, partial kept.
STOPPED = "stopped by the user"


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
class SentenceCheck:
    """One sentence of a grounded answer and what the citation check made of it:
    ``verdict`` is supported / unsupported / uncited / invalid_citation. ``origin``:
    ``model`` (the model wrote the citation, or none) or ``attributed`` (the model cited
    nothing and lastmile found a shown source that passes the same check; see
    ``guardrails.attribution`` -- supported by construction, not independent evidence)."""

    text: str
    cited: tuple[str, ...]
    verdict: str
    score: float
    claim: bool = True
    origin: str = "model"
    #: The calibrated verdict a person reads (``guardrails.citations.STATUSES``): supported
    #: / partial / not_supported / not_checkable / invalid_citation ("" in older rows).
    status: str = ""
    #: (source id, start, end) of the evidence sentence in that source, for highlighting.
    span: tuple[str, int, int] | None = None
    #: Why it is not supported ("binding:45", "number", "partial:...", "uncited").
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Citation:
    """One source the answer cites. ``verdict``: ``supported`` (every sentence citing it
    is), ``partial``, ``unsupported``, or ``invalid_citation`` (no such source was shown).
    ``origin``: ``model`` when the model cited it, ``attributed`` when only lastmile did
    (post-hoc, for sentences the model left uncited; see ``SentenceCheck.origin``)."""

    source_id: str
    title: str
    path: str
    snippet: str
    verdict: str
    page: int | None = None
    chunk_id: str = ""
    sentences: tuple[SentenceCheck, ...] = ()
    origin: str = "model"


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
    #: A sentence for the user about how this turn was answered, e.g. in safe mode
    #: ("Safe mode: remote models are switched off; answering from the local model").
    notice: str | None = None
    #: Sources the answer cites, with verdicts (empty when no documents were shown).
    citations: tuple[Citation, ...] = ()
    #: Every sentence's citation verdict, uncited ones included.
    checks: tuple[SentenceCheck, ...] = ()
    #: 0..1 when something bears on it (groundedness, a fallback to the local model,
    #: failed validation); ``None`` when nothing does.
    confidence: float | None = None
    #: ``pending`` while a human reviewer has not yet approved this answer, else ``None``.
    review_status: str | None = None

    @property
    def truncated(self) -> bool:
        """The reply is whole as far as it goes but stopped at the token limit."""
        return self.finish_reason == "length"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ReplyStream:
    """Iterate for text chunks; afterwards ``.reply`` holds the stored ``Reply``.

    ``stop()`` may come from another thread (a Stop button): the turn ends before its
    next chunk and stores what it has, marked stopped. Stopping twice, or after the end,
    does nothing."""

    def __init__(self, generator: Generator[str, None, Reply]) -> None:
        self._generator = generator
        self._stopped = threading.Event()
        self.reply: Reply | None = None

    def stop(self) -> None:
        """Ask the turn to end at its next chunk, keeping the partial reply."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def __iter__(self) -> Iterator[str]:
        from assistant.errors import TurnStopped

        generator = self._generator
        while True:
            try:
                # A turn not yet started runs to its first chunk, so it has a turn to end.
                started = inspect.getgeneratorstate(generator) != inspect.GEN_CREATED
                chunk = (generator.throw(TurnStopped(STOPPED))
                         if self._stopped.is_set() and started else next(generator))
            except StopIteration as done:
                self.reply = done.value
                return
            try:
                yield chunk
            except GeneratorExit:  # closed early (a page that left): the turn ends too
                generator.close()
                raise

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
            yield item  # type: ignore[misc]  # the queue holds chunks, _DONE or an exception
