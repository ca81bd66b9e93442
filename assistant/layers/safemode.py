"""Safe mode: what the assistant says while remote models are switched off (or all down).

``SafeModeModel`` is the outermost wrapper of the chain. With the kill switch off it is
transparent. With it on, it answers from the chain's local model, or — when there is no
local model or it fails — *retrieval-only*: a deterministic reply that quotes the
memory/document snippets the turn retrieved (``request.metadata["snippets"]``, dicts
with ``id``, ``text``, ``source``, ``date``) with their sources, or honestly says it
cannot answer. Every chunk it produces carries a ``notice``, which the
orchestrator puts on ``Reply.notice`` so the UI can tell the user which mode answered.

Only chat turns get a retrieval-only reply: a summary or fact-extraction call must not
store "I can't answer" as its result, so those get ``RemoteCallsDisabled`` and wait.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from assistant.errors import LastmileError, ProviderError, RemoteCallsDisabled
from assistant.layers.resilience import stream_closing
from assistant.providers.base import (
    ChatModel,
    ModelChunk,
    ModelRequest,
    ModelWrapper,
    Usage,
)

__all__ = ["RETRIEVAL_LABEL", "SafeModeModel", "retrieval_reply"]

log = logging.getLogger(__name__)
RETRIEVAL_LABEL = "safe-mode:retrieval"
SWITCHED_OFF = "Safe mode: remote models are switched off"
ALL_DOWN = "Degraded: no model could be reached"
MAX_SNIPPETS, MAX_SNIPPET_CHARS = 5, 300
_PIECES = re.compile(r"[^\n]*\n?")


def _field(snippet: Any, name: str) -> str:
    value = snippet.get(name) if isinstance(snippet, Mapping) else getattr(snippet, name, None)
    return " ".join(str(value).split()) if value not in (None, "") else ""


def retrieval_reply(snippets: Sequence[Any] | None, *, reason: str) -> str:
    """Quote up to five snippets with source and date; no snippets: an honest "can't"."""
    quoted: list[str] = []
    for snippet in snippets or ():
        text = _field(snippet, "text")
        if not text:
            continue
        if len(text) > MAX_SNIPPET_CHARS:
            text = text[: MAX_SNIPPET_CHARS - 1].rstrip() + "…"
        source, ident = _field(snippet, "source"), _field(snippet, "id")
        if source and ident and ident != source:
            source = f"{source} ({ident})"
        where = ", ".join(p for p in (source or ident, _field(snippet, "date")) if p)
        quoted.append(f'{len(quoted) + 1}. "{text}" — {where or "unknown source"}')
        if len(quoted) == MAX_SNIPPETS:
            break
    if not quoted:
        return (f"I can't answer right now: {reason}, and nothing in your memories or documents "
                "matches your message. Your message is saved; please ask again later.")
    return (f"I can't write a full answer right now ({reason}). This is what your memories and "
            "documents say that may help:\n\n" + "\n".join(quoted)
            + "\n\nYour message is saved; ask again later for a complete answer.")


class SafeModeModel(ModelWrapper):
    """Transparent until the kill switch is on; then local model, else retrieval-only.

    ``on_outage``: also answer retrieval-only (instead of an error) when the whole chain
    fails on a chat turn.
    """

    def __init__(self, inner: ChatModel, flags: Any, *, local: ChatModel | None = None,
                 on_outage: bool = False) -> None:
        super().__init__(inner)
        self.flags, self.local, self.on_outage = flags, local, on_outage

    def children(self) -> tuple[ChatModel, ...]:
        """The chain, then the local model it answers from while the switch is on."""
        return (self.inner,) if self.local is None else (self.inner, self.local)

    @property
    def models(self) -> list[ChatModel]:
        """The chain's members, as if unwrapped (kept for older code; ``walk`` sees through)."""
        return list(getattr(self.inner, "models", [self.inner]))

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        if self.flags.kill_switch():
            yield from self._safe(request)
            return
        chat = request.metadata.get("purpose", "chat") == "chat"
        if not (self.on_outage and chat):
            yield from stream_closing(self.inner, request)
            return
        sent: list[str] = []
        try:
            for chunk in stream_closing(self.inner, request):
                sent.append(chunk.text)
                yield chunk
        except ProviderError as exc:
            log.warning("every provider failed (%s); answering retrieval-only", exc)
            yield from self._retrieval(request, ALL_DOWN, "every model is unreachable",
                                       discarded="".join(sent), why=exc)

    def _safe(self, request: ModelRequest) -> Iterator[ModelChunk]:
        chat = request.metadata.get("purpose", "chat") == "chat"
        if self.local is not None:
            notice = f"{SWITCHED_OFF}; answering from the local model ({self.local.label})."
            sent: list[str] = []
            try:
                for chunk in stream_closing(self.local, request):
                    sent.append(chunk.text)
                    yield replace(chunk, provider=self.local.label, notice=notice,
                                  safe_mode="local")
                return
            except LastmileError as exc:  # a missing model file too: quote rather than fail
                if not chat:
                    raise
                log.warning("safe mode: the local model failed (%s); answering retrieval-only", exc)
                yield from self._retrieval(request, SWITCHED_OFF, "remote models are switched off",
                                           discarded="".join(sent), why=exc)
                return
        if not chat:
            raise RemoteCallsDisabled("kill switch is on and no local model is configured",
                                      provider=self.label)
        yield from self._retrieval(request, SWITCHED_OFF, "remote models are switched off")

    def _retrieval(self, request: ModelRequest, headline: str, reason: str, *,
                   discarded: str = "", why: BaseException | None = None) -> Iterator[ModelChunk]:
        snippets = request.metadata.get("snippets") or []
        found = any(_field(s, "text") for s in snippets)
        notice = (f"{headline}; answering with quoted snippets from your memories and documents only."
                  if found else f"{headline}; your message is saved.")
        tag = ModelChunk(provider=RETRIEVAL_LABEL, notice=notice, safe_mode="retrieval")
        if discarded:  # a stream broke mid-reply: the UI drops that text first
            yield ModelChunk(restart=True, discarded=discarded, provider=RETRIEVAL_LABEL,
                             reason=f"{type(why).__name__}: {why}")
        text = retrieval_reply(snippets, reason=reason)
        for piece in _PIECES.findall(text):
            if piece:
                yield replace(tag, text=piece)
        yield replace(tag, usage=Usage(0, 0), finish_reason="stop")
