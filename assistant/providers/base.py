"""The provider contract: one small class behind one method.

A provider turns a list of langchain-core messages into a stream of ``ModelChunk``s.
It imports its SDK and translates that SDK's errors into ``assistant.errors`` at this
edge, so nothing above it ever sees an SDK type. Retrying and falling back live in
other layers, never inside a provider.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from langchain_core.messages import BaseMessage

from assistant.errors import (
    AuthenticationFailed,
    BadProviderRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from assistant.providers.registry import REMOTE

__all__ = ["REMOTE", "ChatModel", "ModelChunk", "ModelLayer", "ModelRequest", "ModelWrapper", "Usage",
           "approx_message_tokens", "approx_token_count", "children", "error_for_status",
           "first_leaf", "parse_retry_after", "walk"]

# ``REMOTE`` (the provider families that send text off this machine, whose requests pass
# the egress redaction layer) is read from the provider registry: kernel-level, so
# ``memory`` can ask whether a chain is led by a remote model without the factory.


@dataclass(frozen=True)
class Usage:
    """Token accounting for one call, as the provider reports it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ModelRequest:
    """Everything a provider needs for one call."""

    messages: Sequence[BaseMessage]
    max_tokens: int = 256
    temperature: float = 0.2
    #: A JSON schema the reply must satisfy (grammar-constrained where the provider can).
    response_schema: dict[str, Any] | None = None
    stop: Sequence[str] = ()
    #: The sampling seed where the provider takes one; a regenerate sends a fresh one so
    #: it does not repeat the previous answer word for word. None: the provider's default.
    seed: int | None = None
    #: Who and what the call is for (``purpose``, ``user_id``, ``session_id``, ``turn_id``):
    #: read by accounting layers, never sent to the provider.
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelChunk:
    """A piece of a streamed reply. The last chunk carries ``usage`` and ``finish_reason``.

    The other fields are what the model layers say about the stream, typed so a reader
    sees every one here (they used to travel in a string-keyed ``extra`` dict).
    """

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    #: Which model produced this chunk (``provider:model``; ``cache(...)``, ``retrieval``).
    provider: str | None = None
    #: A user-facing note on how the reply was made (safe mode, degraded).
    notice: str | None = None
    #: A control chunk: forget the text streamed so far (``discarded``); ``reason`` says why.
    restart: bool = False
    discarded: str = ""
    reason: str = ""
    #: On a fallback's last chunk: ``(provider, "ok" | error class)`` per member tried.
    attempts: list[tuple[str, str]] | None = None
    #: Tiered routing: which tier answered and why.
    route: str | None = None
    route_reason: str | None = None
    #: The reply cache answered: ``"exact"`` or ``"semantic"`` (with its ``similarity``).
    cached: str | None = None
    similarity: float | None = None
    #: Safe mode answered: ``"local"`` or ``"retrieval"``.
    safe_mode: str | None = None

    def has_meta(self) -> bool:
        """Whether the chunk says anything about the stream besides text, usage and finish."""
        return any(getattr(self, f.name) != f.default for f in fields(self)
                   if f.name not in _PAYLOAD)

    @property
    def extra(self) -> dict[str, Any]:
        """Deprecated: the typed fields that are set, as the old string-keyed dict."""
        warnings.warn("ModelChunk.extra is deprecated; read the typed fields", DeprecationWarning,
                      stacklevel=2)
        return {("cache" if f.name == "cached" else f.name): getattr(self, f.name)
                for f in fields(self)
                if f.name not in _PAYLOAD and getattr(self, f.name) != f.default}


_PAYLOAD = ("text", "usage", "finish_reason")


def approx_token_count(text: str) -> int:
    """A provider-neutral estimate (~4 chars per token) for models without a tokenizer here."""
    return max(1, (len(text) + 3) // 4) if text else 0


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        if (value := headers.get("retry-after")) is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def error_for_status(status: int, message: str, label: str,
                     headers: Mapping[str, str] | None = None) -> ProviderError:
    """The error-tree class for an HTTP status, the same for every HTTP provider."""
    if status == 429:
        return RateLimited(message, provider=label, retry_after=parse_retry_after(headers))
    if status in (401, 403):
        return AuthenticationFailed(message, provider=label)
    if 400 <= status < 500 and status != 408:
        return BadProviderRequest(message, provider=label)
    return ProviderUnavailable(message, provider=label)  # 5xx, 529 overloaded, 408


def approx_message_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimated prompt cost of messages: text plus a few tokens of role markup each."""
    return sum(approx_token_count(str(m.content)) + 4 for m in messages)


class ChatModel(ABC):
    """A chat model. Subclasses implement ``request``; everything else has defaults."""

    #: Provider family, e.g. ``"local"``, ``"openai"``; shown with each reply.
    provider: str = "unknown"
    #: Model name within the provider.
    model: str = ""
    #: Context window in tokens.
    context_window: int = 8192
    #: Whether the model writes reliable answers from the facts and sources in its prompt;
    #: ``False`` (the embedded tiny model) makes its chat turns lead with a verified quote
    #: (``assistant.layers.extractive``, ``LASTMILE_EXTRACTIVE_ANSWERS``).
    grounded_writer: bool = True

    @property
    def label(self) -> str:
        """``provider:model`` as users see it."""
        return f"{self.provider}:{self.model}" if self.model else self.provider

    @classmethod
    def from_spec(cls, settings: Any, model: str = "") -> ChatModel:
        """Build from the settings and the model part of a ``name[:model]`` spec: the one
        hook the provider registry calls. By default ``from_settings(settings, model=...)``."""
        from_settings = getattr(cls, "from_settings", None)
        if from_settings is None:
            raise TypeError(f"{cls.__name__} needs from_spec() or from_settings() to be registered")
        built: ChatModel = from_settings(settings, model=model.strip() or None)
        return built

    @abstractmethod
    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        """Stream the reply. Raise only ``assistant.errors.ProviderError`` subclasses."""

    async def arequest(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Async stream; by default the sync stream runs in a worker thread."""
        iterator = iter(self.request(request))
        sentinel = object()
        try:
            while True:
                chunk = await asyncio.to_thread(next, iterator, sentinel)
                if chunk is sentinel:
                    return
                yield chunk  # type: ignore[misc]  # the sentinel check narrows nothing for mypy
        finally:
            # A consumer that stops early must still release the provider (connection,
            # breaker probe slot, llama.cpp lock).
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """Prompt tokens these messages will cost. Override with the real tokenizer."""
        return approx_message_tokens(messages)

    def check(self) -> str | None:
        """Return a fix-it hint if the model cannot run here, else ``None`` (for `doctor`)."""
        return None


class ModelLayer(ChatModel):
    """A model made of models: retry, breaker, ledger, cache, router, fallback, safe mode.

    Public so an embedder's own layer joins the family: ``children()`` names the models
    it may call, and ``walk`` (the one tree walker) finds breakers, the local model or
    the chain's first provider through any stack of layers.
    """

    @abstractmethod
    def children(self) -> Sequence[ChatModel]:
        """The models this layer may call, in the order it tries them."""


class ModelWrapper(ModelLayer):
    """A single-child layer (``inner``) that looks exactly like the model it wraps (same
    label, window, tokenizer), so wrapping never changes what a caller sees."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.provider, self.model = inner.provider, inner.model
        self.context_window = inner.context_window

    def children(self) -> Sequence[ChatModel]:
        return (self.inner,)

    @property
    def label(self) -> str:
        return self.inner.label

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        return self.inner.count_tokens(messages)

    def check(self) -> str | None:
        return self.inner.check()


def children(model: object) -> tuple[Any, ...]:
    """A node's children: ``children()`` of a ``ModelLayer``; for a wrapper written before
    it (duck-typed), its ``models`` list, else its ``inner``; a provider has none."""
    if isinstance(model, ModelLayer):
        return tuple(model.children())
    members = getattr(model, "models", None)
    if isinstance(members, (list, tuple)):
        return tuple(members)
    inner = getattr(model, "inner", None)
    return (inner,) if inner is not None else ()


def walk(model: object) -> Iterator[Any]:
    """Every model in a chain, depth-first in call order (a layer before its children, a
    fallback's first member before its second), each once even if reached twice."""
    seen: set[int] = set()
    stack: list[object] = [model]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(reversed(children(node)))


def first_leaf(model: object) -> Any:
    """The provider a request reaches first when nothing fails (the leftmost leaf)."""
    return next(node for node in walk(model) if not children(node))
