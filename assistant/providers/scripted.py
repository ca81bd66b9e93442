"""A scripted chat model shipped in the package, for deterministic tests and demos.

Like llm's ``MockModel.enqueue`` or pydantic-ai's ``FunctionModel``: queue replies (or
errors, or replies that break mid-stream), or give a function of the messages. It
honours the whole ``ChatModel`` contract, so tests exercise the real orchestrator.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from assistant.errors import ProviderError, ProviderUnavailable, StreamInterrupted
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, Usage

__all__ = ["ScriptedModel", "ScriptedReply"]

Responder = Callable[[Sequence[BaseMessage]], str]
_PIECES = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class ScriptedReply:
    """A reply that may fail: after ``fail_after`` chunks, raise ``error``."""

    text: str
    fail_after: int | None = None
    error: ProviderError | None = None


class ScriptedModel(ChatModel):
    """Replies from a queue (``enqueue``) or a function; records every request it saw."""

    def __init__(
        self,
        replies: Sequence[str | ScriptedReply | Exception] = (),
        *,
        fn: Responder | None = None,
        provider: str = "scripted",
        model: str = "",
        context_window: int = 4096,
    ) -> None:
        self.provider = provider
        self.model = model
        self.context_window = context_window
        self._queue: deque[str | ScriptedReply | Exception] = deque(replies)
        self._fn = fn
        self._lock = threading.Lock()
        self.requests: list[ModelRequest] = []
        self.prompt_log: Path | None = None
        self.delay_s = 0.0

    @classmethod
    def from_spec(cls, settings: Any, model: str = "") -> ScriptedModel:
        """``scripted`` in ``LASTMILE_PROVIDERS``: echoes the message (no model needed).
        Options for tests of real processes, ``scripted:log=PATH;delay=S``: append every
        prompt to the JSONL file PATH (what went into the prompt, without putting it in
        the reply), and wait S seconds before each streamed piece (turns in flight)."""
        options = dict(part.partition("=")[::2] for part in model.split(";") if part.strip())
        unknown = set(options) - {"log", "delay"}
        if unknown:
            raise ValueError(f"scripted: unknown option(s) {sorted(unknown)}; use log=PATH;delay=S")
        made = cls(fn=lambda messages: f"(scripted) you said: {messages[-1].content}")
        made.prompt_log = Path(options["log"]) if options.get("log") else None
        made.delay_s = float(options.get("delay") or 0.0)
        return made

    def enqueue(self, *items: str | ScriptedReply | Exception) -> ScriptedModel:
        """Add replies (or errors to raise) to the end of the queue."""
        with self._lock:
            self._queue.extend(items)
        return self

    def _next(self, request: ModelRequest) -> str | ScriptedReply | Exception:
        with self._lock:
            self.requests.append(request)
            if self.prompt_log is not None:
                line = json.dumps({"messages": [{"role": m.type, "content": str(m.content)}
                                                for m in request.messages]})
                with self.prompt_log.open("a", encoding="utf-8") as log:
                    log.write(line + "\n")
            if self._queue:
                return self._queue.popleft()
        if self._fn is not None:
            return self._fn(request.messages)
        return ProviderUnavailable("scripted model has no reply queued", provider=self.label)

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        item = self._next(request)
        if isinstance(item, Exception):
            raise item
        reply = item if isinstance(item, ScriptedReply) else ScriptedReply(item)
        pieces = _PIECES.findall(reply.text)[: request.max_tokens]
        sent: list[str] = []
        for index, piece in enumerate(pieces):
            if reply.fail_after is not None and index >= reply.fail_after:
                break
            if self.delay_s:
                time.sleep(self.delay_s)
            sent.append(piece)
            yield ModelChunk(text=piece)
        if reply.fail_after is not None:
            error = reply.error or StreamInterrupted(
                "scripted stream interrupted", provider=self.label, partial="".join(sent)
            )
            raise error
        usage = Usage(self.count_tokens(request.messages), len(pieces))
        finish = "length" if len(pieces) < len(_PIECES.findall(reply.text)) else "stop"
        yield ModelChunk(usage=usage, finish_reason=finish)

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Whitespace tokens plus a per-message overhead: deterministic and cheap."""
        return sum(len(str(m.content).split()) + 3 for m in messages)
