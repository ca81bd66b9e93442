"""PII never leaves the box: one redaction step at the egress to every remote provider.

Why at the egress and not on input: text reaches a remote model on many paths (the
user's message, imported ``/v1`` history, assistant turns, document chunks and recalled
memories in the system block, citation re-asks, ``extract()``, background fact and
summary jobs, whatever comes next). An input guard sees one of them. Every path ends in
one call, ``provider.request(...)``, so that is where ``RedactingModel`` sits: wrapped
around the remote provider itself, innermost, so each retry attempt is redacted and the
reply cache (outside) still keys on what the user really asked.

Bypass is impossible by construction, in three places:

1. ``build_provider`` wraps every remote provider it builds, so the chains of
   ``build_model`` read ``BreakerModel(KillSwitchModel(RetryingModel(LedgerModel(
   RedactingModel(provider)))))``.
2. Every remote SDK provider (``SDKChatModel`` subclasses: openai, anthropic, any new
   one) has its ``request``/``arequest`` wrapped when its class is created
   (``enforce_egress``): a request that did not come through a ``RedactingModel`` is
   routed through one first. An ``OpenAIModel(...)`` handed to ``Assistant(model=...)``,
   nested in an embedder's own chain, or called directly is redacted all the same.
3. ``Assistant(model=...)`` passes the model through ``guard_egress``: a leaf model that
   says it is remote (``provider`` in ``REMOTE``) is wrapped, and the Assistant's modes
   are given to the SDK providers in a composite chain. A hand-written remote provider
   must subclass ``SDKChatModel`` or be wrapped in ``RedactingModel``: that is the rule.

Modes (``LASTMILE_PII_MODE``, per kind): ``redact`` sends ``[EMAIL]``; ``mask`` sends a
numbered placeholder (``[EMAIL_1]``, the same value the same number within a request)
and restores the value in the reply as it streams back (a placeholder split across
chunks is held until it completes); ``allow`` sends the value; ``block`` refuses the
request with ``EgressBlocked`` before any byte leaves. Counts per kind, never values,
go to the audit log (``pii_egress`` / ``pii_egress_blocked``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from assistant.audit import audit
from assistant.errors import EgressBlocked, StreamInterrupted
from assistant.layers.resilience import close_quietly
from assistant.providers.base import (
    REMOTE,
    ChatModel,
    ModelChunk,
    ModelRequest,
    ModelWrapper,
    children,
    walk,
)
from guardrails.pii import KINDS, LABELS, PIIFinding, detect, parse_modes

__all__ = ["EGRESS_KEY", "REMOTE", "RedactingModel", "Redaction", "Restorer", "enforce_egress",
           "guard_egress"]

#: Request metadata key a ``RedactingModel`` sets on what it passes on (never sent).
EGRESS_KEY = "pii_egress"
_PASSED = object()  # identity, not a value: no client text can forge it
_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(k.upper() for k in KINDS) + r")_\d{1,6}\]")
_PARTIAL = re.compile(r"\[[A-Z_]{0,12}\d{0,6}$")  # a placeholder still arriving
_MAX_HELD = 24
#: Keys of content parts that are structure or binary, not text a model reads.
_STRUCTURAL = frozenset({"type", "id", "index", "image_url", "url", "source", "data", "mime_type",
                         "source_type", "cache_control"})
_CACHED_CHARS = 8192


@functools.lru_cache(maxsize=2048)
def _cached(text: str) -> tuple[PIIFinding, ...]:
    return tuple(detect(text))


def _findings(text: str) -> tuple[PIIFinding, ...]:
    """History is re-sent every turn: each distinct (short) text is scanned once."""
    return _cached(text) if len(text) <= _CACHED_CHARS else tuple(detect(text))


def _env_modes() -> str:
    from assistant.settings import Settings

    return Settings().pii_mode


class Redaction:
    """One request's redaction: placeholders stable within it, counts per kind."""

    def __init__(self, modes: str | Mapping[str, str] | None, *, reserved: str = "") -> None:
        self.modes = parse_modes(modes)
        self.default = self.modes.pop("default", "redact")
        self.values: dict[str, str] = {}  # placeholder → original, for the reply
        self._numbers: dict[tuple[str, str], str] = {}
        self._reserved = set(_PLACEHOLDER.findall(reserved))  # already in the text: not ours
        self.counts: Counter[str] = Counter()

    def mode(self, kind: str) -> str:
        return self.modes.get(kind, self.default)

    def blocked(self, texts: list[str]) -> list[str]:
        """Kinds set to ``block`` that these texts contain."""
        return sorted({f.kind for t in texts for f in _findings(t) if self.mode(f.kind) == "block"})

    def _placeholder(self, f: PIIFinding) -> str:
        key = (f.kind, f.text)
        if key not in self._numbers:
            n = sum(1 for k in self._numbers if k[0] == f.kind)
            while True:
                n += 1
                name = f"[{f.kind.upper()}_{n}]"
                if name not in self._reserved:
                    break
            self._numbers[key], self.values[name] = name, f.text
        return self._numbers[key]

    def text(self, text: str) -> str:
        swaps: list[tuple[PIIFinding, str]] = []
        for f in _findings(text):  # numbered in reading order
            mode = self.mode(f.kind)
            self.counts[f.kind] += 1
            if mode in ("redact", "mask"):
                swaps.append((f, f"[{f.kind.upper()}]" if mode == "redact" else self._placeholder(f)))
        for f, new in reversed(swaps):
            text = text[:f.start] + new + text[f.end:]
        return text

    def value(self, obj: Any) -> Any:
        """Every text inside message content or tool-call arguments, redacted."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, dict):  # content parts: images and ids are not text
            return {k: v if k in _STRUCTURAL else self.value(v) for k, v in obj.items()}
        return obj

    def message(self, message: BaseMessage) -> BaseMessage:
        update: dict[str, Any] = {"content": self.value(message.content)}
        if isinstance(message, AIMessage) and message.tool_calls:
            update["tool_calls"] = [{**c, "args": self.value(c["args"])} for c in message.tool_calls]
        return message.model_copy(update=update)


def _texts(obj: Any) -> list[str]:
    """The strings ``Redaction.value`` would redact."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [t for k, v in obj.items() if k not in _STRUCTURAL for t in _texts(v)]
    if isinstance(obj, list):
        return [t for v in obj for t in _texts(v)]
    return []


class Restorer:
    """Puts masked values back into a streamed reply. A trailing ``[...`` that may be
    the start of a placeholder is held until the next chunk (or the end) decides."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values, self.held = dict(values), ""

    def _restore(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.values.get(m.group(), m.group()), text)

    def feed(self, text: str) -> str:
        if not self.values:
            return text
        text, self.held = self.held + text, ""
        partial = _PARTIAL.search(text)
        if partial and len(text) - partial.start() <= _MAX_HELD:
            text, self.held = text[:partial.start()], text[partial.start():]
        return self._restore(text)

    def flush(self) -> str:
        text, self.held = self.held, ""
        return self._restore(text)

    def restore(self, text: str) -> str:
        return self._restore(text) if self.values else text


class RedactingModel(ModelWrapper):
    """The egress step: redacts every message of a request bound for ``inner`` (a remote
    provider) and restores ``mask`` placeholders in its reply."""

    def __init__(self, inner: ChatModel, modes: str | Mapping[str, str] | None = None) -> None:
        super().__init__(inner)
        self.pii_modes = modes

    def _modes(self) -> str | Mapping[str, str]:
        modes = self.pii_modes if self.pii_modes is not None else getattr(self.inner, "pii_modes", None)
        return modes if modes is not None else _env_modes()

    def redact(self, request: ModelRequest) -> tuple[ModelRequest, Restorer]:
        """The request as it may leave, and the restorer for its reply. Raises
        ``EgressBlocked`` (nothing sent) when a ``block`` kind is present."""
        if request.metadata.get(EGRESS_KEY) is _PASSED:
            return request, Restorer({})  # an outer RedactingModel did it
        texts = [t for m in request.messages for t in _texts(m.content)] + [
            t for m in request.messages if isinstance(m, AIMessage) for c in m.tool_calls
            for t in _texts(c["args"])]
        redaction = Redaction(self._modes(), reserved="\n".join(texts))
        meta = request.metadata
        where = {"provider": self.label, "purpose": meta.get("purpose"),
                 "user_id": meta.get("user_id"), "session_id": meta.get("session_id")}
        if blocked := redaction.blocked(texts):
            counts = Counter(f.kind for t in texts for f in _findings(t) if f.kind in blocked)
            ref = audit("pii_egress_blocked", **where, counts=dict(counts))
            what = " and ".join(LABELS[k] for k in blocked)
            raise EgressBlocked(f"blocked personal data bound for {self.label}: {', '.join(blocked)}"
                                f" (audit ref {ref})", provider=self.label, kinds=blocked,
                                user_message=f"This conversation contains {what}, which is never "
                                "sent to the remote model; nothing was sent.")
        messages = [redaction.message(m) for m in request.messages]
        if redaction.counts:
            audit("pii_egress", **where, counts=dict(redaction.counts),
                  modes={k: redaction.mode(k) for k in redaction.counts})
        sent = dataclasses.replace(request, messages=messages,
                                   metadata={**meta, EGRESS_KEY: _PASSED})
        return sent, Restorer(redaction.values)

    @staticmethod
    def _out(chunk: ModelChunk, restorer: Restorer) -> ModelChunk | None:
        text = restorer.feed(chunk.text) if chunk.text else ""
        if chunk.finish_reason is not None or chunk.usage is not None:
            text += restorer.flush()
        if text or chunk.usage is not None or chunk.finish_reason is not None or chunk.has_meta():
            return dataclasses.replace(chunk, text=text)
        return None  # all held back, for now

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        sent, restorer = self.redact(request)
        iterator = iter(self.inner.request(sent))
        try:
            for chunk in iterator:
                if (out := self._out(chunk, restorer)) is not None:
                    yield out
        except StreamInterrupted as exc:
            exc.partial = restorer.restore(exc.partial)
            raise
        finally:
            close_quietly(iterator)
        if tail := restorer.flush():
            yield ModelChunk(text=tail)

    async def arequest(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        sent, restorer = self.redact(request)
        stream = self.inner.arequest(sent)
        try:
            async for chunk in stream:
                if (out := self._out(chunk, restorer)) is not None:
                    yield out
        except StreamInterrupted as exc:
            exc.partial = restorer.restore(exc.partial)
            raise
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator; the protocol says AsyncIterator
        if tail := restorer.flush():
            yield ModelChunk(text=tail)


def enforce_egress(cls: type[ChatModel]) -> None:
    """Make ``cls.request``/``cls.arequest`` refuse to send what no ``RedactingModel``
    passed: such a request goes through one (with the instance's ``pii_modes``) first."""
    for name in ("request", "arequest"):
        send = cls.__dict__.get(name)
        if send is None or getattr(send, "egress_enforced", False):
            continue

        def guarded(self: Any, request: ModelRequest, _send: Callable[..., Any] = send,
                    _name: str = name) -> Any:
            if request.metadata.get(EGRESS_KEY) is _PASSED:
                return _send(self, request)
            return getattr(RedactingModel(self), _name)(request)

        functools.update_wrapper(guarded, send)
        guarded.egress_enforced = True  # type: ignore[attr-defined]  # a marker on the wrapper function
        setattr(cls, name, guarded)


def guard_egress(model: ChatModel, modes: str | Mapping[str, str] | None) -> ChatModel:
    """An embedder's model as ``Assistant`` uses it: a remote leaf gets the egress layer;
    SDK providers inside a composite chain get ``modes`` (they enforce the layer
    themselves, see ``enforce_egress``)."""
    from assistant.providers.sdk import SDKChatModel

    for node in walk(model):
        if isinstance(node, SDKChatModel) and getattr(node, "pii_modes", None) is None:
            node.pii_modes = modes
    if model.provider in REMOTE and not children(model):
        return RedactingModel(model, modes)
    return model
