"""The one loop that reads a model chain's stream for a turn.

A chain's chunks carry more than text: who answered (``provider``), a safe-mode or
degraded ``notice``, a ``restart`` (a fallback or an escalation moved on mid-reply: the
text so far is void), and on the last one ``usage`` and ``finish_reason``. ``consume``
folds them into a ``Fold`` and yields what a reply stream shows: text pieces and
``Restart`` markers. The turn (``Assistant._turn``) and the citation re-ask
(``assistant.grounding.reask_once``) both read their streams through it, so a new chunk
field is handled in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from assistant.layers.resilience import close_quietly
from assistant.providers.base import ChatModel, ModelRequest, Usage
from assistant.reply import Restart

__all__ = ["Fold", "StreamFold", "consume"]


class Fold(Protocol):
    """Where ``consume`` writes what the stream said (the orchestrator's turn outcome
    is one; ``StreamFold`` is the plain one)."""

    provider: str
    parts: list[str]
    usage: Usage | None
    finish_reason: str | None
    notice: str | None
    restarts: int


@dataclass
class StreamFold:
    """What one stream said: its text parts (since the last restart) and its metadata."""

    provider: str = ""
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    notice: str | None = None
    restarts: int = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)


def consume(model: ChatModel, request: ModelRequest, into: Fold) -> Iterator[str | Restart]:
    """Stream ``request`` from ``model`` into ``into``; yields text and ``Restart``s.

    Errors propagate (the caller decides what a failure means); the model's stream is
    closed when the caller stops reading, so a provider frees its connection.
    """
    iterator = iter(model.request(request))
    try:
        for chunk in iterator:
            into.provider = chunk.provider or into.provider
            into.notice = chunk.notice or into.notice  # safe mode says so
            if chunk.restart:  # the next provider starts from scratch
                into.parts.clear()
                into.restarts += 1
                yield Restart(discarded=chunk.discarded, reason=chunk.reason, provider=into.provider)
                continue
            into.usage = chunk.usage or into.usage
            into.finish_reason = chunk.finish_reason or into.finish_reason
            if chunk.text:
                into.parts.append(chunk.text)
                yield chunk.text
    finally:
        close_quietly(iterator)
