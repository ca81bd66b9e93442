"""Reply caches as a model wrapper: exact (request hash) and semantic (similar question,
identical context), always per user, with a TTL, a per-turn bypass and hit-rate logging.

``CacheModel`` wraps the whole chain (inside ``SafeModeModel``, so nothing is cached
or served while the kill switch is on). What it keys on, and why:

- **exact**: SHA-256 of the normalised request — model label, every message *including
  the system prompt with its memory / document blocks*, temperature, max tokens, stop
  sequences and response schema. Normalising only drops what cannot change an answer
  (CRLF, trailing spaces on a line, Unicode composition), never indentation or case.
- **semantic**: only when the *context* (the same request minus the latest user
  message) hashes identically — same system prompt, same memory and document blocks,
  same earlier turns — and the latest message is short, MiniLM cosine similarity
  >= ``LASTMILE_CACHE_SEMANTIC_THRESHOLD`` *and* a lexical guard agree
  (``same_question``). Embeddings rate "is it safe" / "is it not safe" at 0.99 and
  "Celsius to Fahrenheit" / "Fahrenheit to Celsius" at 0.995, so similarity alone is
  not trusted: a wrong hit is worse than a miss.

Only complete, successful replies are stored: finish reason ``stop``, non-empty, not
restarted mid-stream, not answered by a fallback member after a failure (a degraded
answer must not outlive the outage), and only for ``purpose == "chat"``. A lookup or
store that fails (database, Chroma) is logged and the turn proceeds uncached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from langchain_core.messages import HumanMessage

from assistant import metrics
from assistant.layers.resilience import close_quietly
from assistant.providers.base import (
    ChatModel,
    ModelChunk,
    ModelRequest,
    ModelWrapper,
    Usage,
)
from memory.response_cache import CachedReply, ResponseCache

__all__ = ["CacheModel", "request_key", "same_question"]

log = logging.getLogger(__name__)
_PIECES = re.compile(r"\S+\s*|\s+")
_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
#: Words whose presence never changes what is asked.
_STOP = frozenset(("a an the is are was were be been am do does did of in on at to for into about "  # noqa: SIM905
                   "with from by please").split())
#: Words that flip or re-target a question: they must match exactly.
_CRITICAL = frozenset((  # noqa: SIM905 - word lists read better as words
    "not no never none nothing nobody nor without cannot neither "  # negation
    "i me my mine myself you your yours we us our he him his she her hers they them their it its "
    "this that these those or "  # who / which
    "today tomorrow yesterday tonight now current currently latest recent next last ago before after "
    "morning evening week month year").split())


def _text(content: Any) -> str:
    if not isinstance(content, str):
        content = json.dumps(content, sort_keys=True, ensure_ascii=False)
    content = unicodedata.normalize("NFC", content.replace("\r\n", "\n"))
    return "\n".join(line.rstrip() for line in content.split("\n")).strip()


def request_key(request: ModelRequest, label: str) -> tuple[str, str, str]:
    """``(key, context_fp, latest user text)`` of a request for the model ``label``."""
    messages = [{"role": m.type, "content": _text(m.content)} for m in request.messages]
    params = {"v": 1, "model": label, "temperature": round(float(request.temperature), 4),
              "max_tokens": request.max_tokens, "stop": list(request.stop),
              "schema": request.response_schema}

    def digest(items: list[dict[str, str]]) -> str:
        blob = json.dumps({**params, "messages": items}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    prompt = messages[-1]["content"] if messages else ""
    return digest(messages), digest(messages[:-1]), prompt


def _words(text: str) -> list[str]:
    words = []
    for word in _WORDS.findall(unicodedata.normalize("NFKC", text).lower().replace("’", "'")):
        if word.endswith("n't"):
            words += [word[:-3], "not"]
        else:
            words.append(word.split("'")[0])
    return words


def same_question(new: str, cached: str) -> bool:
    """The lexical guard on a semantic hit. Numbers, negations, pronouns, "or" and time
    words must match exactly; content words may not be swapped for others nor reordered,
    and one question may add at most one content word ("capital" / "capital city")."""
    a, b = _words(new), _words(cached)
    critical = [w for w in a if w in _CRITICAL or w.isdigit()]
    if sorted(critical) != sorted(w for w in b if w in _CRITICAL or w.isdigit()):
        return False
    content_a = [w for w in a if w not in _STOP and w not in _CRITICAL]
    content_b = [w for w in b if w not in _STOP and w not in _CRITICAL]
    short, long_ = sorted((content_a, content_b), key=len)
    if len(long_) - len(short) > 1 or not set(short) <= set(long_):
        return False
    shared = [w for w in long_ if w in set(short)]
    return shared == short  # same order


class CacheModel(ModelWrapper):
    """Serves a cached reply for a repeated (or, semantic mode, re-worded) chat turn."""

    def __init__(self, inner: ChatModel, store: ResponseCache, *, semantic: bool = False,
                 threshold: float = 0.95, semantic_max_chars: int = 300) -> None:
        super().__init__(inner)
        self.store, self.semantic = store, semantic
        self.threshold, self.semantic_max_chars = threshold, semantic_max_chars

    @property
    def models(self) -> list[ChatModel]:
        """The chain's members, as if unwrapped (kept for older code; ``walk`` sees through)."""
        return list(getattr(self.inner, "models", [self.inner]))

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        meta = request.metadata
        user = meta.get("user_id")
        eligible = (meta.get("purpose", "chat") == "chat" and user and request.messages
                    and isinstance(request.messages[-1], HumanMessage))
        if not eligible:
            yield from self._through(request, None)
            return
        if meta.get("cache") is False:
            self._safely(self.store.record, user, "none", "bypass")
            metrics.cache_lookup("none", "bypass")
            yield from self._through(request, None)
            return
        key, context_fp, prompt = request_key(request, self.inner.label)
        semantic = self.semantic and len(prompt) <= self.semantic_max_chars
        hit = self._safely(self.store.exact, user, key)
        if hit is None and semantic:
            hit = self._safely(self.store.similar, user, context_fp, self.inner.label, prompt,
                               threshold=self.threshold, accept=same_question)
        kind = hit.kind if hit else ("semantic" if semantic else "exact")
        metrics.cache_lookup(kind, "hit" if hit else "miss")
        self._safely(self.store.record, user, kind, "hit" if hit else "miss",
                     hit.prompt_tokens + hit.completion_tokens if hit else 0)
        if hit is not None:
            yield from self._replay(hit)
            return
        yield from self._through(request, {"user_id": user, "key": key, "context_fp": context_fp,
                                           "model": self.inner.label, "prompt": prompt,
                                           "semantic": semantic})

    def _through(self, request: ModelRequest, entry: dict[str, Any] | None) -> Iterator[ModelChunk]:
        """Stream the inner model; with ``entry``, store the reply if it is cacheable."""
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        provider, clean = self.inner.label, True
        iterator = iter(self.inner.request(request))
        try:
            for chunk in iterator:
                provider = chunk.provider or provider
                if chunk.restart or chunk.notice or any(
                        status != "ok" for _, status in chunk.attempts or ()):
                    clean = False
                parts.append(chunk.text)
                usage, finish = chunk.usage or usage, chunk.finish_reason or finish
                yield chunk
        finally:
            close_quietly(iterator)
        text = "".join(parts)
        if entry is not None and clean and finish == "stop" and text.strip():
            self._safely(self.store.put, **entry, reply=text, provider=provider,
                         finish_reason=finish, prompt_tokens=usage.prompt_tokens if usage else 0,
                         completion_tokens=usage.completion_tokens if usage else 0)

    @staticmethod
    def _replay(hit: CachedReply) -> Iterator[ModelChunk]:
        """The cached text, streamed in word pieces like a live reply; it cost no tokens."""
        tag = ModelChunk(provider=f"cache({hit.provider})", cached=hit.kind,
                         similarity=round(hit.similarity, 4))
        for piece in _PIECES.findall(hit.reply):
            yield replace(tag, text=piece)
        yield replace(tag, usage=Usage(0, 0), finish_reason=hit.finish_reason or "stop")

    @staticmethod
    def _safely(fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A cache problem costs a miss, never the turn."""
        try:
            return fn(*args, **kwargs)
        except Exception:  # SQL or Chroma, whichever failed
            log.warning("reply cache: %s failed; continuing without it", fn.__name__, exc_info=True)
            return None
