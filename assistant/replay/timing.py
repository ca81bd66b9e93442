"""Thin wrappers that time what the stored stage timings cannot show, for replays.

The orchestrator stores ``stages_ms`` (guards, context, model, verification, the user
message's storage) with each reply; the replay adds, from the outside: storage of both
messages (the reply's own write cannot be in the row it writes), the model's first
token, and the whole turn. It hands the ``Assistant`` a timed store (which also stamps
messages with the replayed conversation's own timestamps) and a timed model, and reads
one ``Clock`` per turn. The orchestrator carries no replay code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update

from assistant.providers import ChatModel, ModelChunk, ModelRequest
from assistant.providers.base import ModelWrapper
from memory.models import Message
from memory.store import ConversationStore, StoredMessage

__all__ = ["Clock", "ScriptedReplies", "TimedModel", "TimedStore", "stages_ms"]


class Clock:
    """Per-turn stopwatch the wrappers write into."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ms: dict[str, float] = {"storage": 0.0}
        self.model_start: float | None = None
        self.first_token: float | None = None
        self.model_end: float | None = None
        self.last_message: str | None = None  # the chat prompt's last message, as sent


class TimedStore(ConversationStore):
    """The real store; stamps messages with the replayed time and times each write."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        super().__init__(engine)
        self.clock = clock
        self.stamp: datetime | None = None
        self.last_user: StoredMessage | None = None

    def add_message(self, user_id: str, key: str, role: str, content: str,
                    **fields: Any) -> StoredMessage:
        started = time.perf_counter()
        stored = super().add_message(user_id, key, role, content, **fields)
        self.clock.ms["storage"] += (time.perf_counter() - started) * 1000
        if self.stamp is not None:
            with self.engine.begin() as conn:  # replay bookkeeping, not timed
                conn.execute(update(Message).where(Message.id == stored.id).values(created_at=self.stamp))
            stored = replace(stored, created_at=self.stamp)
        if role == "user":
            self.last_user = stored
        return stored


class TimedModel(ModelWrapper):
    """Times chat requests (first token, end); background calls pass through untimed."""

    def __init__(self, inner: ChatModel, clock: Clock) -> None:
        super().__init__(inner)
        self.clock = clock

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        if request.metadata.get("purpose") != "chat":
            yield from self.inner.request(request)
            return
        clock = self.clock
        if clock.model_start is None:  # a turn's first chat call (a re-ask may follow)
            clock.model_start = time.perf_counter()
            clock.last_message = str(request.messages[-1].content) if request.messages else ""
        try:
            for chunk in self.inner.request(request):
                if chunk.text and clock.first_token is None:
                    clock.first_token = time.perf_counter()
                yield chunk
        finally:
            clock.model_end = time.perf_counter()


class ScriptedReplies:
    """The scripted model's responder: says whatever the replay set as ``next`` (the
    recorded reply of the turn, or a deterministic stand-in)."""

    def __init__(self) -> None:
        self.next = "Noted."

    def __call__(self, messages: Sequence[Any]) -> str:
        return self.next


def stages_ms(clock: Clock, streamed: float, done: float, started: float) -> dict[str, float]:
    """One turn's stages in ms as seen from outside: ``started`` before
    ``Assistant.stream`` (guards, user message stored), ``streamed`` when it returned,
    ``done`` when the reply was stored. "context" runs from the stored user message to
    the model request (a fallback for orchestrators that store no ``stages_ms``)."""
    ms = dict(clock.ms)
    if clock.model_start is not None:
        ms["context"] = (clock.model_start - streamed) * 1000
        end = clock.model_end or done
        ms["model"] = (end - clock.model_start) * 1000
        if clock.first_token is not None:
            ms["model_first_token"] = (clock.first_token - clock.model_start) * 1000
    ms["total"] = (done - started) * 1000
    return {k: round(v, 3) for k, v in ms.items()}
