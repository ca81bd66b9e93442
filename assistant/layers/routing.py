"""Tiered routing as a model wrapper: simple turns to a cheap chain, the rest to the strong one.

``RouterModel(cheap, strong)`` decides per request, before any call, with a documented
heuristic (``classify``): only a chat turn whose latest user message is short, single-
part, and free of code and math markers goes to the cheap chain. Everything else —
long input, code, math, several questions or a list of asks, analysis words, structured
output, non-chat purposes (summaries, extraction) — goes to the strong chain.

The cheap answer is then checked for low confidence (``low_confidence``): empty, cut
off at the token limit, a refusal, or hedging ("I'm not sure", "I don't know"). To
avoid showing a hedge that is about to be replaced, the first ``hold_chars`` characters
are held back: a refusal or hedge there escalates silently. A problem found later (a
hedge at the end, a cut-off) escalates with a ``restart`` chunk — the same signal
``FallbackModel`` uses — so the UI drops the cheap text. A failing cheap chain
escalates too. Every chunk says which tier answered in ``ModelChunk.route``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace

from langchain_core.messages import BaseMessage, HumanMessage

from assistant.errors import BudgetExceeded, ProviderError
from assistant.layers.resilience import close_quietly
from assistant.providers.base import ChatModel, ModelChunk, ModelLayer, ModelRequest

__all__ = ["RouterModel", "classify", "low_confidence"]

log = logging.getLogger(__name__)

_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+[(:]|^\s*(import|from) \w+|#include|\bfunction\b\s*\w*\(|"
                   r"=>|\{[^}]*\}|;\s*$|Traceback \(most recent"
                   r"|\b(SELECT|UPDATE|INSERT)\b.+\b(FROM|SET|INTO)\b|"
                   r"\w+\.\w+\(", re.MULTILINE)
_MATH = re.compile(r"\d\s*[-+*/^×÷=<>%]\s*\(?\d|[∑∫√π∞≤≥]|\b(integral|derivative|prove|proof|equation|"
                   r"solve|calculate|compute|probability|matrix|theorem|formula)\b", re.IGNORECASE)
_MULTI = re.compile(r"^\s*(\d+[.)]|[-*•])\s|\b(step[- ]by[- ]step|compare|contrast|analy[sz]e|explain why|"
                    r"pros and cons|trade-?offs?|in detail|design|strategy|plan for|essay)\b",
                    re.IGNORECASE | re.MULTILINE)
_REFUSAL = re.compile(r"^\W*(i'?m sorry|sorry\b|i apologi[sz]e|unfortunately|as an ai|i (cannot|can'?t|"
                      r"won'?t|am unable|'m unable|am not able) )", re.IGNORECASE)
_HEDGE = re.compile(r"\b(i'?m not (sure|certain)|i am not (sure|certain)|i don'?t know|i do not know|"
                    r"not enough (information|context)"
                    r"|i (cannot|can'?t) (be sure|determine|verify|say for sure)|"
                    r"it'?s unclear|i have no (idea|information)|i'?m unable to (answer|determine))",
                    re.IGNORECASE)
_ESCALATE_ON = (ProviderError, BudgetExceeded)


def classify(request: ModelRequest, *, max_chars: int = 400) -> tuple[str, str]:
    """``("cheap" | "strong", reason)`` for a request, from its latest user message."""
    if request.metadata.get("purpose", "chat") != "chat":
        return "strong", "not a chat turn"
    if request.response_schema is not None:
        return "strong", "structured output"
    last = request.messages[-1] if request.messages else None
    if not isinstance(last, HumanMessage):
        return "strong", "no user message last"
    text = str(last.content)
    if len(text) > max_chars:
        return "strong", f"long input ({len(text)} chars)"
    if _CODE.search(text):
        return "strong", "code"
    if _MATH.search(text):
        return "strong", "math"
    if text.count("?") > 1 or _MULTI.search(text) or text.count("\n") > 3:
        return "strong", "multi-part or analytical"
    return "cheap", "simple"


def low_confidence(text: str, finish_reason: str | None = None, *, final: bool = True) -> str | None:
    """Why a cheap reply should not stand, or ``None``; ``final=False`` for a partial text
    (only openings and hedges are judged then)."""
    if final and not text.strip():
        return "empty reply"
    if final and finish_reason == "length":
        return "cut off at the token limit"
    if _REFUSAL.search(text):
        return "refusal"
    if _HEDGE.search(text):
        return "hedging"
    return None


class RouterModel(ModelLayer):
    """Routes each request to ``cheap`` or ``strong`` (both chains), escalating when the
    cheap answer is not good enough."""

    provider = "router"

    def __init__(self, cheap: ChatModel, strong: ChatModel, *, max_chars: int = 400,
                 hold_chars: int = 160) -> None:
        self.cheap, self.strong, self.max_chars, self.hold_chars = cheap, strong, max_chars, hold_chars
        self.model = f"{cheap.label}|{strong.label}"
        self.models = [strong, cheap]  # strong first: what the orchestrator inspects (destination)

    def children(self) -> list[ChatModel]:
        return self.models

    @property
    def label(self) -> str:
        return f"router({self.cheap.label} → {self.strong.label})"

    @property
    def context_window(self) -> int:  # type: ignore[override]  # base declares a plain attribute
        return min(self.cheap.context_window, self.strong.context_window)

    def count_tokens(self, messages: Sequence[BaseMessage]) -> int:
        return self.strong.count_tokens(messages)

    def check(self) -> str | None:
        hints = [h for h in (self.cheap.check(), self.strong.check()) if h]
        return "; ".join(hints) or None

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        tier, reason = classify(request, max_chars=self.max_chars)
        if tier == "strong":
            yield from _tagged(self.strong, request, "strong", reason)
            return
        shown: list[str] = []  # cheap text the consumer has seen
        held: list[ModelChunk] = []
        text: list[str] = []
        finish: str | None = None
        why: str | None = None
        stream = _tagged(self.cheap, request, "cheap", reason)
        try:
            for chunk in stream:
                if chunk.restart:  # the cheap chain itself moved on mid-reply
                    text.clear()
                    held.clear()
                    if shown:
                        shown.clear()
                        yield chunk
                    continue
                text.append(chunk.text)
                finish = chunk.finish_reason or finish
                if shown:
                    shown.append(chunk.text)
                    yield chunk
                    continue
                held.append(chunk)
                if len(so_far := "".join(text)) >= self.hold_chars:
                    if why := low_confidence(so_far, final=False):
                        break
                    shown.extend(c.text for c in held)
                    yield from held
                    held.clear()
            else:
                why = low_confidence("".join(text), finish)
        except _ESCALATE_ON as exc:
            why = f"cheap chain failed ({type(exc).__name__})"
        finally:
            stream.close()
        if why is None:
            yield from held  # a short, confident reply: released at its end
            return
        log.info("escalating from %s to %s: %s", self.cheap.label, self.strong.label, why)
        if shown:
            yield ModelChunk(restart=True, discarded="".join(shown), provider=self.strong.label,
                             reason=f"escalated: {why}")
        yield from _tagged(self.strong, request, "strong", f"escalated: {why}")


def _tagged(model: ChatModel, request: ModelRequest, tier: str,
            reason: str) -> Generator[ModelChunk, None, None]:
    iterator = iter(model.request(request))
    try:
        for chunk in iterator:
            yield replace(chunk, provider=chunk.provider or model.label, route=tier,
                          route_reason=reason)
    finally:
        close_quietly(iterator)
